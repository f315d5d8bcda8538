"""The ``rawchat`` command: chat from a terminal, and see the protocol doing it.

    rawchat ask "What is SSE?"         stream one answer to stdout (--api responses:
                                       the same through POST /responses)
    rawchat chat                       a multi-turn conversation
    rawchat curl "What is SSE?"        the same request as a curl command
    rawchat replay capture.sse         parse a saved stream, flag protocol faults
    rawchat doctor                     check configuration, DNS, TCP, TLS, key, model
    rawchat models                     the models the endpoint lists
    rawchat serve                      the simulator, for any client to use
    rawchat batch in.jsonl out.jsonl   many requests in parallel, resumable
    rawchat demo                       a guided tour against the simulator
    rawchat eval-memory                what each memory strategy forgets, measured
    rawchat transcribe question.wav    audio to text (speak: text to audio)
    rawchat talk question.wav --out reply.wav
                                       a spoken turn, with each stage's latency

Global options (``--trace``, ``--profile`` ...) go before or after the
command. ``--trace`` prints every exchange to stderr: the request with its
key redacted, the response head, and each raw body piece with its time.

With no API key and no base URL configured, ``ask``, ``chat``, ``models``,
``batch``, ``demo``, ``transcribe``, ``speak`` and ``talk`` answer from an
in-process simulator and say so on stderr; ``--profile simulator`` asks for
it outright.

Exit codes: 0 success, 1 the API answered with an error or a broken stream
(or ``replay``/``doctor`` found a fault), 2 usage or configuration error,
3 network error or timeout, 130 interrupted; a closed stdout (``| head``)
ends the command quietly with 141, as SIGPIPE would.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ..client.client import Client
from ..client.trace import HARTrace, JSONLinesTrace, MultiTrace, TextTrace, Trace
from ..errors import APIConnectionError, ConfigError, InvalidRequestError, RawchatError
from ..policies import KeyPool, Pacer, Policies, RetryBudget, UsageMeter
from ..protocol.settings import PROFILES, Settings
from ..version import __version__
from .console import (
    EXIT_API,
    EXIT_INTERRUPTED,
    EXIT_NETWORK,
    EXIT_OK,
    EXIT_USAGE,
    Style,
    print_error,
    request_params,
    typewrite,
)

__all__ = [
    "EXIT_API",
    "EXIT_NETWORK",
    "EXIT_OK",
    "EXIT_USAGE",
    "client_for",
    "main",
    "request_params",
]


SIMULATOR_KEY = "sk-rawchat-simulator"
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a killed writer

EXAMPLES = """\
examples:
  rawchat ask "Explain server-sent events in one sentence"
  echo "Summarise this" | rawchat ask -
  rawchat --trace ask --max-tokens 5 "hi"
  rawchat --profile deepseek ask --model deepseek-chat "你好"
  OPENAI_BASE_URL=http://localhost:11434/v1 rawchat models
  rawchat doctor --model gpt-4o-mini
  curl -sN ... > capture.sse && rawchat replay capture.sse
  rawchat serve --port 8765 --fault "429*2"

colour: --color auto (the default) colours a terminal only; NO_COLOR set in
the environment turns colour off, even with --color always.
"""


COMMAND_EXAMPLES = {
    "ask": """\
  rawchat ask "hi"
  cat notes.txt | rawchat ask - --system "Summarise"
  rawchat ask --json --no-stream hi
  rawchat ask --api responses "hi"          (POST /responses, named events)""",
    "chat": """\
  rawchat chat
  rawchat chat --system 'You are terse.'
  rawchat chat --strategy relevant              (what is sent once the history is long)
  (in the chat, /help lists /reset /system /save /load /usage /trace)""",
    "curl": """\
  rawchat curl "hi"
  rawchat curl --api responses "hi"
  rawchat --profile deepseek curl -m deepseek-chat "hi" | sh""",
    "replay": """\
  rawchat replay capture.sse
  curl -sN URL ... | rawchat replay -""",
    "doctor": """\
  rawchat doctor
  rawchat --profile ollama doctor -m llama3.2""",
    "models": """\
  rawchat models""",
    "serve": """\
  rawchat serve --port 8765 &
  OPENAI_BASE_URL=http://127.0.0.1:8765/v1 OPENAI_API_KEY=sk-x rawchat ask hi
  rawchat serve --fault "429*2,crlf*"    (the fault table: pydoc rawchat.simulator.faults)""",
    "demo": """\
  rawchat demo""",
    "batch": """\
  rawchat batch questions.jsonl answers.jsonl --workers 8
  rawchat batch in.jsonl out.jsonl --rpm 500     (rerun after a crash: it resumes)
  OPENAI_API_KEYS=sk-a...,sk-b... rawchat batch in.jsonl out.jsonl
  rawchat --redis redis://host:6379/0 batch in.jsonl out.jsonl --rpm 500
                                                 (every process on that Redis: 500 in all)
  rawchat batch in.jsonl out.jsonl --remote      (the Batch API: half price, within 24 h)
  rawchat batch in.jsonl out.jsonl --remote --dry-run    (the files and batches, unsent)
  rawchat batch in.jsonl out.jsonl --remote --no-wait    (then --status; rerun to collect)
  rawchat batch in.jsonl out.jsonl --remote --cancel""",
    "eval-memory": """\
  rawchat eval-memory                           (offline: tables, results.json, two SVG plots)
  rawchat eval-memory --strategies drop-oldest,relevant --budgets 25 --turns 80 --seed 3
  rawchat --profile deepseek eval-memory --live -m deepseek-chat --judge deepseek-reasoner""",
    "transcribe": """\
  rawchat transcribe question.wav
  rawchat transcribe talk.mp3 --format srt --language en > talk.srt
  rawchat transcribe question.wav --stream -m gpt-4o-transcribe
  rawchat transcribe question.wav --curl           (the upload as curl -F parts)""",
    "speak": """\
  rawchat speak "What is SSE?" --out question.wav
  echo "Hello!" | rawchat speak - --out hello.mp3 --voice coral
  rawchat speak "Hi" --out hi.wav --stream-format sse --curl""",
    "talk": """\
  rawchat speak "What is SSE?" --out question.wav && rawchat talk question.wav --out reply.wav
  rawchat talk question.wav --out reply.wav --compare   (beside the same turn done serially)
  rawchat talk q1.wav q2.wav --out reply.wav --turns 6  (replies: reply-1.wav ...)
  rawchat talk --web                                    (a page on 127.0.0.1:8766 to talk to)""",
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``rawchat ask hi | head -c 10``). Python would
        # report the failed flush at exit, so stdout is pointed at devnull.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code


def _main(argv: Optional[Sequence[str]]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _show_warning
    if args.verbose:
        level = logging.DEBUG if args.verbose > 1 else logging.INFO
        logging.basicConfig(level=level, format="rawchat: %(message)s")
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    args.style = Style(sys.stderr, args.color)
    args.trace = _trace(args)
    try:
        return int(args.run(args) or EXIT_OK)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ConfigError, InvalidRequestError) as exc:
        print_error(exc, args.style)
        return EXIT_USAGE
    except APIConnectionError as exc:
        print_error(exc, args.style)
        return EXIT_NETWORK
    except RawchatError as exc:
        print_error(exc, args.style)
        return EXIT_API
    finally:
        if args.trace is not None:
            args.trace.close()


def _seconds(text: str) -> float:
    """An argparse type: a number of seconds above 0, as a timeout must be."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 86400:  # NaN fails this too
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds above 0 (at most a day)"
        )
    return value


def _global_options(parser: Any, default: Any = None) -> None:
    """The options every command takes; ``default=SUPPRESS`` on a command's
    copy keeps it from overwriting a value given before the command."""

    def given(value: Any) -> Any:
        return value if default is None else default

    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default=given(None),
        help="provider defaults (base URL, key variable); simulator: the built-in one",
    )
    parser.add_argument(
        "--base-url",
        default=given(None),
        help="API base URL (default: OPENAI_BASE_URL or the profile's)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=given(None),
        help="read timeout in seconds (default 600)",
    )
    parser.add_argument(
        "--max-retries",
        type=int,
        default=given(2),
        help="retries after 429, 5xx, network errors (2)",
    )
    parser.add_argument(
        "--trace", action="store_true", default=given(False), help="print every exchange to stderr"
    )
    parser.add_argument(
        "--trace-file", metavar="PATH", default=given(None), help="write the trace as JSON lines"
    )
    parser.add_argument(
        "--har", metavar="PATH", default=given(None), help="write the exchanges as a HAR 1.2 file"
    )
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default=given("auto"),
        help="colour output (auto; NO_COLOR set turns it off, even with always)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=given(0),
        help="log retries (-v), requests (-vv)",
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        default=given(None),
        help="share --rpm/--tpm pacing and the key pool's health with other processes "
        "through Redis (default: RAWCHAT_REDIS_URL; needs rawchat[redis])",
    )


def _parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="rawchat",
        description="The OpenAI protocols by hand: raw HTTP, hand-written SSE, multipart, polling.",
        epilog=EXAMPLES,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"rawchat {__version__}")
    _global_options(parser)
    shared = argparse.ArgumentParser(add_help=False)
    _global_options(shared.add_argument_group("global options"), default=argparse.SUPPRESS)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")

    def command(name: str, help: str, notes: str = "") -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help,
            description=help,
            epilog=f"{notes}examples:\n{COMMAND_EXAMPLES[name]}",
            formatter_class=formatter,
            parents=[shared],
        )

    ask = command("ask", "ask one question, stream the answer")
    ask.add_argument("prompt", nargs="?", default="-", help="the question; - (default) reads stdin")
    _model_options(ask)
    _pacing_options(ask)
    ask.add_argument("--no-stream", action="store_true", help="one plain request, not a stream")
    ask.add_argument("--json", action="store_true", help="print the raw completion JSON")
    ask.set_defaults(run=_ask)

    chat = command("chat", "a multi-turn conversation with a streaming typewriter")
    _model_options(chat)
    _pacing_options(chat)
    from ..protocol.trimming import STRATEGIES

    chat.add_argument(
        "--strategy",
        choices=list(STRATEGIES),
        default="drop-oldest",
        help="what is sent once the history outgrows the context window (drop-oldest)",
    )
    chat.set_defaults(run=_chat)

    curl = command("curl", "print the equivalent curl command (the key stays $VARIABLE)")
    curl.add_argument("prompt", help="the question")
    _model_options(curl)
    curl.add_argument("--no-stream", action="store_true", help="a plain request, not a stream")
    curl.set_defaults(run=_curl)

    replay = command("replay", "parse a saved SSE capture: events, chunks, the message, faults")
    replay.add_argument("file", help="the capture; - reads stdin")
    replay.set_defaults(run=_replay)

    doctor = command("doctor", "check configuration, DNS, TCP, TLS, the key, the model, streaming")
    doctor.add_argument(
        "-m", "--model", help="model to try (default: RAWCHAT_MODEL or the profile's)"
    )
    doctor.set_defaults(run=_doctor)

    models = command("models", "list the models the endpoint offers")
    models.set_defaults(run=_models)

    serve = command("serve", "run the OpenAI-compatible simulator")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port (8765; 0 picks a free one)")
    serve.add_argument("--api-key", action="append", dest="api_keys", help="accept only this key")
    serve.add_argument("--chunk-interval", type=float, default=0.0, help="seconds between chunks")
    serve.add_argument("--fault", default="", help="a fault script for every request")
    serve.add_argument("--rpm", type=float, help="rate-limit each key to this many requests/min")
    serve.add_argument("--burst", type=float, help="requests a key may send at once (--rpm)")
    serve.set_defaults(run=_serve)

    from .batch import INPUT_FORMAT

    batch = command(
        "batch",
        "answer a JSON-lines file of requests in parallel, resumably",
        notes=INPUT_FORMAT + "\n\n",
    )
    batch.add_argument("input", help="requests, one JSON object a line")
    batch.add_argument("output", help="results, in input order (appended to when resuming)")
    batch.add_argument("--workers", type=int, default=4, help="requests in parallel (4)")
    batch.add_argument("-m", "--model", help="model for lines that name none")
    _pacing_options(batch)
    remote = batch.add_argument_group(
        "the Batch API (--remote)",
        'half price, within 24 h; lines with "input" or "api": "responses" go to\n'
        "/v1/responses; OUTPUT.state.json records the job: a rerun resumes it, and\n"
        "submits nothing twice",
    )
    remote.add_argument(
        "--remote", action="store_true", help="upload the lines and run them as batches"
    )
    remote.add_argument(
        "--dry-run", action="store_true", help="show the files and requests, send nothing"
    )
    remote.add_argument("--no-wait", action="store_true", help="submit, then exit")
    remote.add_argument("--status", action="store_true", help="show where the job's batches are")
    remote.add_argument("--cancel", action="store_true", help="cancel the job's batches")
    remote.add_argument(
        "--poll",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="first wait between polls, growing to 60 s (5)",
    )
    batch.set_defaults(run=_batch)

    demo = command("demo", "a guided tour of the protocol against the simulator")
    demo.set_defaults(run=_demo)

    evaluate = command(
        "eval-memory",
        "measure what each memory strategy forgets, offline (or --live with a real model)",
    )
    evaluate.add_argument(
        "--strategies", default=",".join(STRATEGIES), help="comma-separated (all of them)"
    )
    evaluate.add_argument(
        "--budgets", default="25,50,75", help="percent of the whole history's tokens (25,50,75)"
    )
    evaluate.add_argument("--turns", type=int, default=60, help="turns per conversation (60)")
    evaluate.add_argument("--seed", type=int, default=0, help="the conversations' seed (0)")
    evaluate.add_argument("--out", default="eval-memory", help="where to write (./eval-memory/)")
    evaluate.add_argument(
        "--live", action="store_true", help="a real model answers (the configured endpoint)"
    )
    evaluate.add_argument("-m", "--model", help="--live: the model answering")
    evaluate.add_argument("--judge", metavar="MODEL", help="also grade each answer with MODEL")
    evaluate.add_argument(
        "--token-budget",
        type=int,
        default=2_000_000,
        help="--live: start no new cell once this many tokens are spent (2,000,000)",
    )
    evaluate.add_argument(
        "--no-reader", action="store_true", help="measure what is sent only (no HTTP at all)"
    )
    evaluate.set_defaults(run=_eval_memory)

    from .voice import add_voice_commands

    # transcribe, speak, talk. It returns their parsers by name: options that
    # other modules add to them (a --web for talk, say) go on those, here.
    voice = add_voice_commands(command, _voice)
    from .talk_web import add_web_options

    add_web_options(voice["talk"])
    return parser


def _pacing_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rpm", type=float, help="pace to this many requests per minute per key")
    parser.add_argument("--tpm", type=float, help="pace to this many tokens per minute per key")


def _pacer(args: argparse.Namespace, burst: float) -> Optional[Pacer]:
    """The ``--rpm``/``--tpm`` pacer (``client_for`` shares it with ``--redis``)."""
    return Pacer(args.rpm, args.tpm, burst=burst) if args.rpm or args.tpm else None


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-m", "--model", help="model name (default: RAWCHAT_MODEL or the profile's)"
    )
    parser.add_argument(
        "--api",
        choices=("chat", "responses"),
        default="chat",
        help="POST /chat/completions (chat, the default) or POST /responses",
    )
    parser.add_argument("-s", "--system", help="system prompt")
    parser.add_argument("-t", "--temperature", type=float, help="sampling temperature")
    parser.add_argument("--max-tokens", type=int, help="cap on the answer's length in tokens")


def _trace(args: argparse.Namespace) -> Optional[Trace]:
    traces: List[Trace] = []
    if args.trace:
        traces.append(TextTrace(sys.stderr, color=Style(sys.stderr, args.color).enabled))
    if args.trace_file:
        traces.append(JSONLinesTrace(open(args.trace_file, "w", encoding="utf-8")))  # noqa: SIM115
    if args.har:
        traces.append(HARTrace(args.har))
    if not traces:
        return None
    return traces[0] if len(traces) == 1 else MultiTrace(traces)


# -- setting up a client ----------------------------------------------------


def client_for(
    args: argparse.Namespace,
    *,
    simulator_ok: bool = False,
    simulator: Optional[Mapping[str, Any]] = None,
    policies: Optional[Policies] = None,
    **extra: Any,
) -> Client:
    """The client the options describe (the simulator's, if nothing is set and
    allowed; ``simulator``: its settings)."""
    options: Dict[str, Any] = {"max_retries": args.max_retries, "profile": args.profile}
    options["trace"] = args.trace
    if args.timeout is not None:
        options["timeout"] = (min(10.0, args.timeout), args.timeout)
    options.update(extra)
    policies = policies or Policies()
    if os.environ.get("OPENAI_API_KEYS", "").strip() and policies.keys is None:
        policies = dataclasses.replace(policies, keys=KeyPool.from_env(os.environ))
    redis_url = getattr(args, "redis", None) or os.environ.get("RAWCHAT_REDIS_URL", "").strip()
    if redis_url:
        from ..policies.shared_pacing import shared

        policies = shared(policies, redis_url)
    options["policies"] = policies
    chosen = _simulator_chosen(args)
    if chosen or (simulator_ok and _nothing_configured(args)):
        from ..simulator import Simulator

        sim = Simulator(**(simulator or {})).start()
        if chosen:
            note = f"rawchat: answers come from the built-in simulator at {sim.base_url}"
        else:
            note = (
                f"rawchat: no API key or base URL set, so answers come from the built-in "
                f"simulator at {sim.base_url} (set OPENAI_API_KEY to use OpenAI)"
            )
        print(note, file=sys.stderr)
        return Client(SIMULATOR_KEY, sim.base_url, **dict(options, profile="simulator"))
    return Client(base_url=args.base_url, **options)


def _simulator_chosen(args: argparse.Namespace) -> bool:
    """The simulator profile names no address: the built-in simulator is meant."""
    profile = args.profile or os.environ.get("RAWCHAT_PROFILE", "").strip()
    return profile == "simulator" and not args.base_url


def _nothing_configured(args: argparse.Namespace) -> bool:
    if args.base_url or args.profile:
        return False
    names = (
        "OPENAI_API_KEY",
        "OPENAI_API_KEYS",
        "OPENAI_BASE_URL",
        "RAWCHAT_PROFILE",
        "AZURE_OPENAI_ENDPOINT",
    )
    return not any(os.environ.get(name, "").strip() for name in names)


def _first_messages(args: argparse.Namespace, prompt: Optional[str]) -> List[Dict[str, Any]]:
    messages: List[Dict[str, Any]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    if prompt is not None:
        if not prompt.strip():
            raise InvalidRequestError("the prompt is empty", hint='rawchat ask "your question"')
        messages.append({"role": "user", "content": prompt})
    return messages


def _read_stdin() -> str:
    """A piped prompt, without a byte-order mark or the newline that ends it."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:  # a text stream put in place of stdin
        text = sys.stdin.read()
    else:
        try:
            text = stream.read().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequestError("the input is not UTF-8") from exc
    return text.lstrip("\ufeff").rstrip("\r\n")


# -- commands -----------------------------------------------------------------


def _ask(args: argparse.Namespace) -> int:
    prompt = _read_stdin() if args.prompt == "-" else args.prompt
    messages = _first_messages(args, prompt)
    policies = Policies(pacer=_pacer(args, burst=1))
    with client_for(args, simulator_ok=True, policies=policies) as client:
        if args.api == "responses":
            return _ask_responses(client, args, messages)
        if args.no_stream or args.json:
            completion = client.chat(messages, **request_params(args))
            if args.json:
                print(json.dumps(completion.raw, indent=2, ensure_ascii=False))
            else:
                print(completion.content)
            return EXIT_OK
        typewrite(client, messages, request_params(args), sys.stdout)
    return EXIT_OK


def _ask_responses(client: Client, args: argparse.Namespace, messages: List[Dict[str, Any]]) -> int:
    """``ask --api responses``: the question as input, the system prompt as instructions."""
    params = request_params(args)
    if args.system:
        params["instructions"] = args.system
    question = messages[-1]["content"]
    if args.no_stream or args.json:
        response = client.respond(question, **params)
        if args.json:
            print(json.dumps(response.raw, indent=2, ensure_ascii=False))
        else:
            print(response.output_text)
        return EXIT_OK
    with client.respond_stream(question, **params) as stream:
        try:
            for text in stream.text():
                sys.stdout.write(text)
                sys.stdout.flush()
        finally:
            sys.stdout.write("\n")
            sys.stdout.flush()
        stream.response  # noqa: B018 -- reads to the terminal event, or raises
    return EXIT_OK


def _chat(args: argparse.Namespace) -> int:
    from .repl import Repl

    # The session's tokens and cost, for /usage.
    policies = Policies(usage=UsageMeter(), pacer=_pacer(args, burst=1))
    with client_for(args, simulator_ok=True, policies=policies) as client:
        return Repl(client, args).run()


def _curl_settings(args: argparse.Namespace) -> Settings:
    """The settings a printed curl command uses: its key is always ``$VARIABLE``."""
    settings = Settings.resolve(base_url=args.base_url, profile=args.profile, environ=os.environ)
    profile = PROFILES.get(settings.profile)
    if settings.api_key is None and (profile is None or profile.key_required):
        # The command names the key's variable whether or not it is set here.
        settings = dataclasses.replace(settings, api_key="unset")
    return settings


def _curl(args: argparse.Namespace) -> int:
    from ..protocol.request import build_chat_request
    from ..protocol.responses import build_responses_request

    settings = _curl_settings(args)
    params = request_params(args)
    messages = _first_messages(args, args.prompt)
    if args.api == "responses":
        if args.system:
            params["instructions"] = args.system
        request = build_responses_request(
            settings, messages[-1]["content"], stream=not args.no_stream, **params
        )
    else:
        request = build_chat_request(settings, messages, stream=not args.no_stream, **params)
    print(request.to_curl(key_variable=settings.key_variable))
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    from .replay import analyse

    if args.file == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            with open(args.file, "rb") as capture:
                data = capture.read()
        except OSError as exc:
            raise ConfigError(f"cannot read {args.file}: {exc.strerror}") from exc
    report = analyse(data)
    style = Style(sys.stdout, args.color)
    endings = ", ".join(f"{count} {name}" for name, count in report.line_endings) or "none"
    print(style.bold(f"capture: {report.size} bytes, {len(report.events)} events, "
                     f"{report.comments} comments, line endings: {endings}"))  # fmt: skip
    for event in report.events:
        kind = "" if event.event == "message" else f"event: {event.event}  "
        line = f"  #{event.number:<4} {kind}{event.summary}"
        print(style.bad(f"{line}  <- {event.fault}") if event.fault else line)
    if report.response is not None:
        _print_response(report.response, style)
    else:
        done = report.completion
        usage = done.usage
        tokens = (
            f", usage {usage.prompt_tokens}+{usage.completion_tokens}={usage.total_tokens}"
            if usage
            else ""
        )
        print(style.bold(f"assembled: finish_reason={done.finish_reason}{tokens}"))
        if done.reasoning:
            print(f"  reasoning: {done.reasoning}")
        if done.content:
            print(f"  content: {done.content}")
        for call in done.tool_calls:
            print(f"  tool call {call.id} {call.function.name}({call.function.arguments})")
    if not report.faults:
        print(style.good("faults: none"))
        return EXIT_OK
    print(style.bad(f"faults: {len(report.faults)}"))
    for fault in report.faults:
        print(style.bad(f"  - {fault}"))
    return EXIT_API


def _print_response(response: Any, style: Style) -> None:
    """The assembled answer of a Responses capture."""
    usage = response.usage
    tokens = (
        f", usage {usage.input_tokens}+{usage.output_tokens}={usage.total_tokens}" if usage else ""
    )
    print(style.bold(f"assembled (Responses API): status={response.status or None}{tokens}"))
    if response.reasoning:
        print(f"  reasoning: {response.reasoning}")
    if response.output_text:
        print(f"  output_text: {response.output_text}")
    for call in response.tool_calls:
        given = getattr(call, "arguments", None)
        given = given if given is not None else getattr(call, "input", "")
        print(f"  tool call {call.call_id} {call.name}({given})")


def _doctor(args: argparse.Namespace) -> int:
    from . import doctor

    style = Style(sys.stdout, args.color)
    key = None
    if _simulator_chosen(args):
        # Check the built-in simulator, which the other commands would use.
        from ..simulator import Simulator

        args.base_url, key = Simulator().start().base_url, SIMULATOR_KEY
    settings = Settings.resolve(
        key, args.base_url, profile=args.profile, model=args.model, environ=os.environ
    )
    marks = {doctor.OK: style.good("ok  "), doctor.WARN: style.warn("warn"),
             doctor.FAIL: style.bad("FAIL"), doctor.SKIP: style.dim("skip")}  # fmt: skip
    failed = None
    for check in doctor.run(
        lambda: client_for(args, max_retries=0, api_key=key),
        settings,
        model=settings.model,
        timeout=args.timeout or 10.0,
    ):
        took = f" ({check.ms:.1f} ms)" if check.ms is not None else ""
        print(f"{marks[check.status]} {check.step:<15}{check.detail}{style.dim(took)}", flush=True)
        if check.fix:
            print(f"     {'':<15}fix: {check.fix}")
        if check.status == doctor.FAIL and failed is None:
            failed = check.step
    if failed is None:
        print(style.good("all checks passed"))
        return EXIT_OK
    if failed == "configuration":
        return EXIT_USAGE
    if failed in ("DNS", "TCP", "TLS"):
        return EXIT_NETWORK
    return EXIT_API


def _models(args: argparse.Namespace) -> int:
    with client_for(args, simulator_ok=True) as client:
        for model in sorted(client.models(), key=lambda m: str(m.get("id"))):
            print(model.get("id"))
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    from ..simulator import Simulator
    from ..simulator.faults import FaultError

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a port number (0 to 65535)")
    try:
        sim = Simulator(
            args.host, args.port, api_keys=args.api_keys, chunk_interval=args.chunk_interval,
            faults=args.fault, requests_per_minute=args.rpm, burst=args.burst, verbose=True,
        ).bind()  # fmt: skip
    except FaultError as exc:
        raise ConfigError(
            str(exc), hint="the fault table is in `pydoc rawchat.simulator.faults`"
        ) from exc
    except OSError as exc:  # the port is taken, or the address is not this host's
        raise ConfigError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc} "
            "(--port 0 picks a free port)"
        ) from exc
    print(f"rawchat simulator on {sim.base_url} (Ctrl-C stops it)", file=sys.stderr)
    print(
        f"  try: OPENAI_BASE_URL={sim.base_url} OPENAI_API_KEY=sk-anything rawchat ask hello",
        file=sys.stderr,
    )
    try:
        sim.serve_forever()
    except KeyboardInterrupt:
        print(file=sys.stderr)
    return EXIT_OK


def _batch(args: argparse.Namespace) -> int:
    from .batch import run_batch

    if args.remote:
        from . import remote_batch

        return remote_batch.run(
            args, lambda: client_for(args, simulator_ok=True), sys.stdout, sys.stderr
        )
    if args.dry_run or args.no_wait or args.status or args.cancel:
        raise ConfigError(
            "--dry-run, --no-wait, --status and --cancel go with --remote",
            hint=f"rawchat batch {args.input} {args.output} --remote ...",
        )
    # A burst of one request per worker: paced evenly, not a minute's worth at once.
    policies = Policies(pacer=_pacer(args, burst=args.workers), retry_budget=RetryBudget())
    with client_for(args, simulator_ok=True, policies=policies) as client:
        summary = run_batch(
            client, args.input, args.output, workers=args.workers, model=args.model,
            progress=sys.stderr,
        )  # fmt: skip
    if summary.interrupted:
        print(
            f"rawchat: interrupted: {summary.skipped + summary.done} of {summary.total} lines "
            "written; rerun the same command to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return EXIT_OK if summary.errors == 0 else EXIT_API


def _demo(args: argparse.Namespace) -> int:
    from .demo import run

    return run(args, sys.stdout)


def _eval_memory(args: argparse.Namespace) -> int:
    from .eval_memory import run

    return run(args, lambda: client_for(args))


#: The simulator standing in for a provider in ``talk``: every answer waits
#: 0.3 s for its first byte and streams 30 ms a piece, as a model's would, so
#: that the latencies ``talk --compare`` prints compare the two pipelines.
TALK_SIMULATOR = {"chunk_interval": 0.03, "faults": "delay=0.3*"}


def _voice(args: argparse.Namespace) -> int:
    """``transcribe``, ``speak``, ``talk`` (``voice.py``), told how to reach the API."""
    simulator = TALK_SIMULATOR if args.command == "talk" else None
    return int(
        args.voice_command(
            args,
            lambda: client_for(args, simulator_ok=True, simulator=simulator),
            lambda: _curl_settings(args),
        )
    )


def _show_warning(message: Any, category: Any, *_: Any, **__: Any) -> None:
    print(f"rawchat: warning: {message}", file=sys.stderr)
