"""The ``rawchat`` command: chat from a terminal, or run the simulator.

    rawchat ask "What is SSE?"         stream one answer to stdout
    rawchat chat                       a multi-turn conversation
    rawchat models                     the models the endpoint lists
    rawchat serve                      the simulator, for any client to use

With no API key and no base URL configured, ``ask`` and ``chat`` answer
from an in-process simulator and say so on stderr, so the command works
offline straight after installing.

Exit codes: 0 success, 1 the API answered with an error or a broken
stream, 2 usage or configuration error, 3 network error or timeout,
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from typing import Any, Dict, List, Optional, Sequence, TextIO

from . import __version__
from .client import Client
from .config import PROFILES
from .errors import (
    APIConnectionError,
    APIError,
    ConfigError,
    InvalidRequestError,
    RawchatError,
)

__all__ = ["main"]

EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_NETWORK, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

SIMULATOR_KEY = "sk-rawchat-simulator"

EXAMPLES = """\
examples:
  rawchat ask "Explain server-sent events in one sentence"
  echo "Summarise this" | rawchat ask -
  rawchat --profile deepseek ask --model deepseek-chat "你好"
  OPENAI_BASE_URL=http://localhost:11434/v1 rawchat models
  rawchat serve --port 8765
"""


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _show_warning
    if args.verbose:
        logging.basicConfig(
            level=logging.DEBUG if args.verbose > 1 else logging.INFO,
            format="rawchat: %(message)s",
        )
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.run(args) or EXIT_OK)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ConfigError, InvalidRequestError) as exc:
        _error(exc)
        return EXIT_USAGE
    except APIConnectionError as exc:
        _error(exc)
        return EXIT_NETWORK
    except RawchatError as exc:
        _error(exc)
        return EXIT_API


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rawchat",
        description="The OpenAI Chat Completions protocol by hand: raw HTTP, hand-written SSE.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rawchat {__version__}")
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        help="provider defaults (base URL, key variable, model)",
    )
    parser.add_argument(
        "--base-url",
        help="API base URL, e.g. http://localhost:11434/v1 (default: OPENAI_BASE_URL)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="read timeout in seconds (default 600)",
    )
    parser.add_argument(
        "--max-retries",
        type=int,
        default=2,
        help="retries after a 429, 5xx or network error (default 2)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log retries (-v) and every request (-vv)",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")

    ask = commands.add_parser(
        "ask",
        help="ask one question, stream the answer",
        epilog='examples:\n  rawchat ask "hi"\n'
        '  cat notes.txt | rawchat ask - --system "Summarise"',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ask.add_argument("prompt", nargs="?", default="-", help="the question; - (default) reads stdin")
    _add_model_options(ask)
    ask.add_argument(
        "--no-stream", action="store_true", help="one plain request instead of a stream"
    )
    ask.add_argument("--json", action="store_true", help="print the raw completion JSON")
    ask.set_defaults(run=_ask)

    chat = commands.add_parser("chat", help="a multi-turn conversation (/reset, /exit)")
    _add_model_options(chat)
    chat.set_defaults(run=_chat)

    models = commands.add_parser("models", help="list the models the endpoint offers")
    models.set_defaults(run=_models)

    serve = commands.add_parser(
        "serve",
        help="run the OpenAI-compatible simulator",
        epilog="example:\n  rawchat serve --port 8765 &\n"
        "  OPENAI_BASE_URL=http://127.0.0.1:8765/v1 OPENAI_API_KEY=sk-x rawchat ask hi",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)"
    )
    serve.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        help="accept only this key (repeatable)",
    )
    serve.add_argument(
        "--chunk-interval",
        type=float,
        default=0.0,
        help="seconds between streamed chunks",
    )
    serve.set_defaults(run=_serve)
    return parser


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-m", "--model", help="model name (default: RAWCHAT_MODEL or the profile's)"
    )
    parser.add_argument("-s", "--system", help="system prompt")
    parser.add_argument("-t", "--temperature", type=float, help="sampling temperature")
    parser.add_argument("--max-tokens", type=int, help="cap on the answer's length in tokens")


# -- setting up a client ----------------------------------------------------


def _client(args: argparse.Namespace, *, simulator_ok: bool = False) -> Client:
    options: Dict[str, Any] = {"max_retries": args.max_retries, "profile": args.profile}
    if args.timeout is not None:
        options["timeout"] = (min(10.0, args.timeout), args.timeout)
    if simulator_ok and _nothing_configured(args):
        from .simulator import Simulator

        sim = Simulator().start()
        print(
            f"rawchat: no API key or base URL set, so answers come from the built-in "
            f"simulator at {sim.base_url} (set OPENAI_API_KEY to use OpenAI)",
            file=sys.stderr,
        )
        return Client(SIMULATOR_KEY, sim.base_url, **dict(options, profile="simulator"))
    return Client(base_url=args.base_url, **options)


def _nothing_configured(args: argparse.Namespace) -> bool:
    if args.base_url or args.profile:
        return False
    names = (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "RAWCHAT_PROFILE",
        "AZURE_OPENAI_ENDPOINT",
    )
    return not any(os.environ.get(name, "").strip() for name in names)


def _params(args: argparse.Namespace) -> Dict[str, Any]:
    params: Dict[str, Any] = {}
    if args.model:
        params["model"] = args.model
    if args.temperature is not None:
        params["temperature"] = args.temperature
    if args.max_tokens is not None:
        params["max_tokens"] = args.max_tokens
    return params


# -- commands -----------------------------------------------------------------


def _ask(args: argparse.Namespace) -> int:
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    if not prompt.strip():
        raise InvalidRequestError("the prompt is empty", hint='rawchat ask "your question"')
    messages: List[Dict[str, Any]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": prompt})
    with _client(args, simulator_ok=True) as client:
        if args.no_stream or args.json:
            completion = client.chat(messages, **_params(args))
            if args.json:
                print(json.dumps(completion.raw, indent=2, ensure_ascii=False))
            else:
                print(completion.content)
            return EXIT_OK
        _typewrite(client, messages, _params(args), sys.stdout)
    return EXIT_OK


def _typewrite(
    client: Client, messages: List[Dict[str, Any]], params: Dict[str, Any], out: TextIO
) -> Any:
    """Stream one answer to ``out``; return its ``Completion``."""
    with client.stream(messages, **params) as stream:
        try:
            for text in stream.text():
                out.write(text)
                out.flush()
        finally:
            out.write("\n")
            out.flush()
        return stream.completion


def _chat(args: argparse.Namespace) -> int:
    messages: List[Dict[str, Any]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    with _client(args, simulator_ok=True) as client:
        print(
            "rawchat chat: type a message; /reset clears the history, /exit or Ctrl-D quits.",
            file=sys.stderr,
        )
        while True:
            try:
                line = input("you> ")
            except EOFError:
                print(file=sys.stderr)
                return EXIT_OK
            text = line.strip()
            if not text:
                continue
            if text in ("/exit", "/quit"):
                return EXIT_OK
            if text == "/reset":
                del messages[1 if args.system else 0 :]
                print("(history cleared)", file=sys.stderr)
                continue
            turn = [*messages, {"role": "user", "content": text}]
            try:
                completion = _typewrite(client, turn, _params(args), sys.stdout)
            except KeyboardInterrupt:
                print("(answer cancelled; the conversation is as before)", file=sys.stderr)
                continue
            except APIError as exc:
                _error(exc)
                continue
            # Committed only now: a failed or cancelled answer leaves no half-turn.
            messages[:] = [*turn, completion.message.to_dict()]


def _models(args: argparse.Namespace) -> int:
    with _client(args) as client:
        for model in sorted(client.models(), key=lambda m: str(m.get("id"))):
            print(model.get("id"))
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    from .simulator import Simulator

    sim = Simulator(
        args.host,
        args.port,
        api_keys=args.api_keys,
        chunk_interval=args.chunk_interval,
        verbose=True,
    ).bind()
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


def _show_warning(message: Any, category: Any, *_: Any, **__: Any) -> None:
    print(f"rawchat: warning: {message}", file=sys.stderr)


def _error(exc: BaseException) -> None:
    print(f"rawchat: error: {exc}", file=sys.stderr)
    partial = getattr(exc, "partial", None)
    if partial is not None and partial.content:
        print(
            f"rawchat: {len(partial.content)} characters arrived before the error",
            file=sys.stderr,
        )
