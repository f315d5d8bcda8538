"""``Client``: the data path of one chat call, from messages to a ``Completion``.

One call, top to bottom (https://platform.openai.com/docs/api-reference/chat)::

    Client(...)                     once: Settings.resolve() (protocol/settings.py) over
                                    the arguments and os.environ; the Policies resolved;
                                    one Transport (transport.py) for every endpoint
    chat(messages) / stream(messages)
      Route                         policies/fallback.py  the primary, each fallback in
                                                          turn, then the response cache
        build_chat_request()        protocol/request.py   messages -> HTTPRequest
        UsageMeter.check()          policies/usage.py     a budget refuses before sending
        Call.send() / open_stream() attempts.py           keys, pacing, breaker, retries
          Transport.open()          transport.py          HTTPRequest -> status + headers
          error_from_response()     protocol/response.py  4xx/5xx -> typed error
        completion_from_response()  protocol/response.py  body -> Completion (chat)
        Stream                      stream.py             bytes -> chunks -> Completion
      _account()                    the reported usage corrects the token estimates,
                                    the pacer and the meter
      Route.answered()              marked degraded if it is, remembered in the cache

The Responses API (https://platform.openai.com/docs/api-reference/responses)
walks the same path with its own request, answer and decoder:
``respond()`` / ``respond_stream()`` build with ``build_responses_request()``,
map errors with ``responses_error()`` (its hints: no stored state, no
``/responses`` at all), read with ``response_from_http()`` or a
``ResponseStream``; the usage it reports (``input_tokens``,
``output_tokens``) goes to the same meter and corrections as chat's.

Audio (``transcribe()``, ``translate()``, ``transcribe_stream()``,
``speak()``) builds with ``protocol/audio.py`` and ``client/audio.py`` (the
upload read once, a random multipart boundary) and takes the attempt loop
with ``audio_error``'s hints, but no route: a fallback is a chat model.

``chat()`` and ``stream()`` walk the same path; a stream's response is
handed over once its headers are in, and a stream that breaks off before
any content reached the caller goes back through its attempt loop and its
route. A ``Client`` is safe to share across threads: one pooled
``requests.Session``, and every policy keeps its state behind a lock.

``BaseClient`` is all of that but the waiting: the settings, the policies,
the route, request building, the attempt loop's ``Call`` and the usage
accounting, written once. ``Client`` drives it with blocking I/O;
``AsyncClient`` (``aio.py``) drives the same steps on an event loop.

Time and chance come in as one ``Clock`` (``clock.py``), so tests run whole
retry schedules without waiting.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import fields, replace
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)
from urllib.parse import quote

from ..errors import APIError, ConfigError, InvalidRequestError, InvalidResponseError
from ..policies import CircuitBreaker, Hooks, Policies
from ..policies.fallback import FALL_THROUGH, Fallback, Route, Target, cache_key
from ..protocol.audio import (
    MAX_UPLOAD_BYTES,
    Transcription,
    audio_error,
    build_speech_request,
    transcription_from_http,
)
from ..protocol.completion import Completion, Usage
from ..protocol.http import Headers, HTTPRequest, HTTPResponse, fingerprint, redact_url
from ..protocol.request import build_chat_request, build_request
from ..protocol.response import (
    ErrorContext,
    completion_from_response,
    error_from_response,
    parse_completion,
)
from ..protocol.responses import (
    Response,
    ResponseUsage,
    build_responses_request,
    response_from_http,
    responses_error,
)
from ..protocol.retry import RetryPolicy
from ..protocol.settings import DEFAULT_TIMEOUT, PROFILES, Settings, TimeoutLike
from ..protocol.tokens import Calibration, estimate_messages
from .attempts import Call, Endpoint
from .audio import AudioFile, AudioOpening, SpeechStream, TranscriptStream, transcription_request
from .batches import Batches, Files
from .clock import Clock, Deadline
from .stream import ResponseStream, Stream
from .transport import Transport

if TYPE_CHECKING:  # pragma: no cover
    from .trace import Trace

__all__ = ["BaseClient", "Client"]

#: An answer of either API: what accounting and routes handle alike.
Answer = TypeVar("Answer", Completion, Response)
#: A stream handle of either kind, blocking or asyncio.
Handle = TypeVar("Handle")
#: How a failed response becomes a typed error.
ErrorMapping = Callable[[HTTPResponse, ErrorContext], Any]


class BaseClient:
    """What ``Client`` and ``AsyncClient`` share: everything but the I/O.

    It resolves the settings and policies, builds each endpoint on the
    transport ``transport(clock)`` makes, and for every method builds the
    request, the route of fallbacks and the ``Call``, and accounts for the
    usage reported. The subclasses only send and wait.
    """

    def __init__(
        self,
        api_key: Optional[str],
        base_url: Optional[str],
        *,
        transport: Callable[[Clock], Any],
        profile: Optional[str],
        model: Optional[str],
        organization: Optional[str],
        project: Optional[str],
        api_version: Optional[str],
        default_headers: Optional[Mapping[str, str]],
        timeout: TimeoutLike,
        max_retries: int,
        deadline: Optional[float],
        policies: Optional[Policies],
        clock: Optional[Clock],
        removed: Mapping[str, Any],
    ) -> None:
        _refuse_removed(type(self).__name__, removed, clock)
        if policies is not None and not isinstance(policies, Policies):
            raise ConfigError(
                f"policies must be a Policies value, got {type(policies).__name__}",
                hint="from rawchat.policies import Policies; Client(policies=Policies(...))",
            )
        policies = policies or Policies()
        if policies.keys is not None and api_key is None and policies.keys.keys:
            api_key = policies.keys.keys[0].key  # for settings; each attempt picks from the pool
        self.settings = _settings(
            api_key, base_url, profile=profile, model=model, organization=organization,
            project=project, api_version=api_version, timeout=timeout,
            max_retries=max_retries, headers=default_headers,
        )  # fmt: skip
        self.deadline = _checked_deadline(deadline)
        self.clock = clock or Clock()
        self.policies = _resolved(policies, max_retries, self.settings.base_url)
        #: Per-model correction of token estimates, from the usage servers report.
        self.calibration = Calibration()
        self._calibration_lock = threading.Lock()
        self.transport = transport(self.clock)
        self.endpoint = Endpoint(self.settings, self.transport, self.policies)
        self._fallbacks: List[Tuple[Endpoint, Optional[str]]] = [
            (self._fallback_endpoint(fallback, timeout), fallback.model)
            for fallback in self.policies.fallbacks
        ]

    def _fallback_endpoint(self, fallback: Fallback, timeout: TimeoutLike) -> Endpoint:
        """Another model here is this endpoint; another endpoint has its own key and breaker."""
        if fallback.same_endpoint:
            return self.endpoint
        own = self.policies
        assert own.retry is not None
        settings = _settings(
            fallback.api_key, fallback.base_url, profile=fallback.profile, timeout=timeout,
            max_retries=own.retry.max_retries,
        )  # fmt: skip
        breaker = CircuitBreaker(settings.base_url) if own.breaker is not None else None
        policies = Policies(retry=own.retry, breaker=breaker, hooks=own.hooks, usage=own.usage)
        return Endpoint(settings, self.transport, policies)

    def __repr__(self) -> str:
        key = fingerprint(self.settings.api_key) if self.settings.api_key else None
        base_url = redact_url(self.settings.base_url)
        return f"{type(self).__name__}(base_url={base_url!r}, api_key={key!r})"

    def estimate_prompt(self, model: str, messages: Sequence[Any], tools: Any = None) -> int:
        """Estimated prompt tokens, corrected by what this model's usage has shown."""
        count = estimate_messages(messages, tools=tools, model=model)
        return self.calibration.correct(model, count)

    # -- each method's call, built (no I/O) ----------------------------------

    def _chat(
        self,
        messages: Sequence[Any],
        model: Optional[str],
        extra_headers: Optional[Mapping[str, str]],
        retry: Optional[RetryPolicy],
        params: Dict[str, Any],
    ) -> _WholeCall:
        if "stream" in params or "include_usage" in params:
            raise InvalidRequestError(
                "chat() returns a whole answer; 'stream' is not one of its parameters",
                hint="call client.stream(...) for a streamed answer",
            )
        retry = _checked_retry(retry)
        route = self._route(model or self.settings.model, messages, params)

        def request_for(target: Target[Endpoint]) -> HTTPRequest:
            return build_chat_request(
                target.endpoint.settings, messages, model=target.model,
                extra_headers=extra_headers, **params,
            )  # fmt: skip

        return _WholeCall(
            self, route, request_for, params, retry, error_from_response,
            completion_from_response, parse_completion,
        )  # fmt: skip

    def _respond(
        self,
        input: Union[str, Sequence[Any]],
        model: Optional[str],
        extra_headers: Optional[Mapping[str, str]],
        retry: Optional[RetryPolicy],
        params: Dict[str, Any],
    ) -> _WholeCall:
        if "stream" in params:
            raise InvalidRequestError(
                "respond() returns a whole answer; 'stream' is not one of its parameters",
                hint="call client.respond_stream(...) for a streamed answer",
            )
        retry = _checked_retry(retry)
        route = self._route(model or self.settings.model, _as_items(input), params, cache=False)

        def request_for(target: Target[Endpoint]) -> HTTPRequest:
            return build_responses_request(
                target.endpoint.settings, input, model=target.model,
                extra_headers=extra_headers, **params,
            )  # fmt: skip

        return _WholeCall(
            self, route, request_for, params, retry, responses_error, response_from_http,
            _not_cached,
        )  # fmt: skip

    def _chat_stream(
        self,
        messages: Sequence[Any],
        model: Optional[str],
        include_usage: bool,
        extra_headers: Optional[Mapping[str, str]],
        on_complete: Optional[Callable[[Completion], Any]],
        retry: Optional[RetryPolicy],
        params: Dict[str, Any],
    ) -> _StreamOpening:
        retry = _checked_retry(retry)

        def request_for(target: Target[Endpoint]) -> HTTPRequest:
            return build_chat_request(
                target.endpoint.settings, messages, model=target.model, stream=True,
                include_usage=include_usage, extra_headers=extra_headers, **params,
            )  # fmt: skip

        route = self._route(model or self.settings.model, messages, params)
        return _StreamOpening(self, route, request_for, params, on_complete, retry)

    def _respond_stream(
        self,
        input: Union[str, Sequence[Any]],
        model: Optional[str],
        extra_headers: Optional[Mapping[str, str]],
        on_complete: Optional[Callable[[Response], Any]],
        retry: Optional[RetryPolicy],
        params: Dict[str, Any],
    ) -> _StreamOpening:
        retry = _checked_retry(retry)

        def request_for(target: Target[Endpoint]) -> HTTPRequest:
            return build_responses_request(
                target.endpoint.settings, input, model=target.model, stream=True,
                extra_headers=extra_headers, **params,
            )  # fmt: skip

        route = self._route(model or self.settings.model, _as_items(input), params, cache=False)
        return _StreamOpening(self, route, request_for, params, on_complete, retry, responses_error)

    def _stored(self, method: str, response_id: str) -> Call:
        """``GET`` or ``DELETE /responses/{id}``."""
        if not isinstance(response_id, str) or not response_id.strip():
            raise InvalidRequestError(
                f"a response id is a string such as 'resp_...', got {response_id!r}",
                hint="pass the .id of a Response made with store left true",
            )
        request = build_request(self.settings, method, f"/responses/{quote(response_id, safe='')}")
        deadline = self.clock.deadline(self.deadline)
        return Call(
            self.endpoint, request, clock=self.clock, deadline=deadline, errors=responses_error
        )

    def _transcription(
        self,
        file: AudioFile,
        model: Optional[str],
        retry: Optional[RetryPolicy],
        **options: Any,
    ) -> Call:
        """``POST /audio/transcriptions`` (or ``/translations``): the file read
        once, the body built once; ``options`` as ``transcription_request`` takes them."""
        request = transcription_request(self.settings, file, model=model, **options)
        return self._audio(request, model, retry)

    def _speech(
        self,
        text: str,
        model: Optional[str],
        voice: Any,
        extra_headers: Optional[Mapping[str, str]],
        retry: Optional[RetryPolicy],
        params: Dict[str, Any],
    ) -> AudioOpening:
        """``POST /audio/speech``, to be opened as a stream of audio."""
        request = build_speech_request(
            self.settings, text, model=model, voice=voice, extra_headers=extra_headers, **params
        )
        return AudioOpening(self._audio(request, model, retry))

    def _audio(
        self, request: HTTPRequest, model: Optional[str], retry: Optional[RetryPolicy]
    ) -> Call:
        """The attempt loop for an audio request, with the audio error hints and
        no route (a fallback is a chat model: see ``client/audio.py``)."""
        deadline = self.clock.deadline(self.deadline)
        return Call(
            self.endpoint, request, clock=self.clock, deadline=deadline, model=model,
            retry=_checked_retry(retry), errors=audio_error,
        )  # fmt: skip

    def _any(self, method: str, path: str, json: Any = None) -> Call:
        """Any other endpoint: ``path`` relative to the base URL, ``json`` the body."""
        request = build_request(self.settings, method, path, json)
        deadline = self.clock.deadline(self.deadline)
        return Call(self.endpoint, request, clock=self.clock, deadline=deadline)

    # -- around the attempt loop -------------------------------------------
    def _route(
        self,
        model: str,
        messages: Sequence[Any],
        params: Mapping[str, Any],
        *,
        cache: bool = True,
    ) -> Route:
        """This endpoint, then each fallback (degraded), then the cache (if ``cache``)."""
        targets = [Target(self.endpoint, model)]
        targets += [
            Target(endpoint, fallback_model or model, degraded=True)
            for endpoint, fallback_model in self._fallbacks
        ]
        kept = self.policies.cache if cache else None
        key = cache_key(model, list(messages), params) if kept is not None else ""
        assert self.policies.hooks is not None
        return Route(targets, hooks=self.policies.hooks, cache=kept, key=key)

    def _call(
        self,
        target: Target[Endpoint],
        request: HTTPRequest,
        deadline: Deadline,
        params: Mapping[str, Any],
        retry: Optional[RetryPolicy] = None,
        errors: ErrorMapping = error_from_response,
    ) -> Tuple[Call, int]:
        """The attempt loop for ``request``, once the usage budget allows it; and
        the prompt's raw token estimate, for the reported usage to correct.
        ``retry``, when given, is the call's own policy; ``errors`` maps a
        failed response to its typed error."""
        body = request.json()
        estimate = estimate_messages(_prompt_of(body), tools=body.get("tools"), model=target.model)
        tokens = self.calibration.correct(target.model, estimate)
        usage = target.endpoint.policies.usage
        if usage is not None:
            cap = (
                params.get("max_completion_tokens")
                or params.get("max_tokens")
                or params.get("max_output_tokens")
                or 0
            )
            usage.check(target.model, tokens, int(cap))
        call = Call(
            target.endpoint, request, clock=self.clock, deadline=deadline, model=target.model,
            tokens=tokens, retry=retry, errors=errors,
        )  # fmt: skip
        return call, estimate

    def _account(self, call: Call, estimate: int, completion: Answer) -> Answer:
        """What the server reported it used corrects estimates, pacing and the meter.

        A Responses ``usage`` counts as chat's: input tokens are prompt
        tokens, output tokens completion tokens, at the same prices.
        """
        usage = _chat_usage(completion.usage)
        if usage is None:
            return completion
        model = call.model or ""
        with self._calibration_lock:
            self.calibration.observe(model, estimate, usage.prompt_tokens)
        policies = call.endpoint.policies
        if policies.pacer is not None:
            now = self.clock.monotonic()
            policies.pacer.correct(call.key_label, call.tokens, usage.total_tokens, now)
        if policies.usage is not None:
            policies.usage.record(completion.model or model, usage, call.key_label)
        return completion


class Client(BaseClient):
    """A Chat Completions client for OpenAI and compatible servers.

    ``api_key`` and ``base_url`` default to ``OPENAI_API_KEY`` and
    ``OPENAI_BASE_URL`` (or a ``profile``'s variables, see
    ``protocol/settings.py``). ``timeout`` is seconds, ``(connect, read)`` or
    a ``Timeout``; ``read`` is the longest silence allowed between two
    reads. ``deadline`` bounds a whole call, retries, waits and fallbacks
    included. ``max_retries`` makes the ``RetryPolicy`` unless ``policies``
    brings one; ``chat()`` and ``stream()`` take ``retry=`` to use another
    for one call. Pass ``session`` to use your own ``requests.Session``
    (proxies, certificates, adapters), and ``trace`` to see every exchange on
    the wire (``rawchat.client.trace``).

    ``policies`` (``rawchat.policies.Policies``) holds the rest, each
    optional: retry, a key pool, pacing, a breaker, a retry budget,
    fallbacks, a response cache, hooks, a usage meter. ``clock`` (a
    ``Clock``) is how the client sleeps, tells time and draws jitter.
    """

    transport: Transport

    def __init__(
        self,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        *,
        profile: Optional[str] = None,
        model: Optional[str] = None,
        organization: Optional[str] = None,
        project: Optional[str] = None,
        api_version: Optional[str] = None,
        default_headers: Optional[Mapping[str, str]] = None,
        timeout: TimeoutLike = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        deadline: Optional[float] = None,
        pool_maxsize: int = 10,
        session: Any = None,
        trace: Optional[Trace] = None,
        policies: Optional[Policies] = None,
        clock: Optional[Clock] = None,
        **removed: Any,
    ) -> None:
        super().__init__(
            api_key, base_url, profile=profile, model=model, organization=organization,
            project=project, api_version=api_version, default_headers=default_headers,
            timeout=timeout, max_retries=max_retries, deadline=deadline, policies=policies,
            clock=clock, removed=removed,
            transport=lambda clock: Transport(
                session, pool_maxsize=pool_maxsize, clock=clock.monotonic, trace=trace
            ),
        )  # fmt: skip
        #: The Files and Batch APIs (``batches.py``): ``files.create(...)``,
        #: ``batches.create(...)``.
        self.files = Files(self)
        self.batches = Batches(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close pooled connections (only of a Session the client created)."""
        self.transport.close()

    # -- the API ----------------------------------------------------------

    def chat(
        self,
        messages: Sequence[Any],
        *,
        model: Optional[str] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        retry: Optional[RetryPolicy] = None,
        **params: Any,
    ) -> Completion:
        """Send ``messages`` and return the whole answer as a ``Completion``.

        ``params`` go into the request body as given: ``temperature``,
        ``max_tokens``, ``tools``, ``response_format``, ``n``...
        ``extra_headers`` are sent with this request only. ``retry`` replaces
        the client's ``RetryPolicy`` for this call, fallbacks included (e.g.
        ``RetryPolicy(resend=False)`` for a request that must not run twice).
        """
        return self._whole(self._chat(messages, model, extra_headers, retry, params))  # type: ignore[no-any-return]

    def stream(
        self,
        messages: Sequence[Any],
        *,
        model: Optional[str] = None,
        include_usage: bool = True,
        extra_headers: Optional[Mapping[str, str]] = None,
        on_complete: Optional[Callable[[Completion], None]] = None,
        retry: Optional[RetryPolicy] = None,
        **params: Any,
    ) -> Stream:
        """Send ``messages`` with ``stream: true``; returns a ``Stream``.

        The request goes out when the ``with`` block is entered (or on first
        iteration); bad messages are refused at once. ``include_usage=False``
        stops asking for the final usage chunk, for servers that reject
        ``stream_options``. ``on_complete`` is called with the ``Completion``
        once the stream has ended properly. Fallbacks are tried while no
        content has reached the caller. ``retry`` replaces the client's
        ``RetryPolicy`` for this call, as in ``chat()``.
        """
        opening = self._chat_stream(
            messages, model, include_usage, extra_headers, on_complete, retry, params
        )
        return opening.handle(Stream, opening.open)

    def respond(
        self,
        input: Union[str, Sequence[Any]],
        *,
        model: Optional[str] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        retry: Optional[RetryPolicy] = None,
        **params: Any,
    ) -> Response:
        """``POST /responses``: send ``input`` (a string, or a list of input
        items) and return the whole answer as a ``Response``.

        ``params`` go into the body as given: ``instructions``, ``tools``,
        ``max_output_tokens``, ``previous_response_id``, ``store``,
        ``include``, ``text``, ``reasoning``... ``extra_headers`` and
        ``retry`` are as in ``chat()``. Fallbacks apply; the response cache
        does not (a stored response is the server's to keep).
        """
        return self._whole(self._respond(input, model, extra_headers, retry, params))  # type: ignore[no-any-return]

    def respond_stream(
        self,
        input: Union[str, Sequence[Any]],
        *,
        model: Optional[str] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        on_complete: Optional[Callable[[Response], None]] = None,
        retry: Optional[RetryPolicy] = None,
        **params: Any,
    ) -> ResponseStream:
        """``POST /responses`` with ``stream: true``; returns a ``ResponseStream``.

        As ``stream()`` for chat: the request goes out when the ``with``
        block is entered, bad input is refused at once, and the stream is
        tried again (then on the fallbacks) only while no content has
        reached the caller. ``on_complete`` is called with the ``Response``
        once the stream reached its terminal event.
        """
        opening = self._respond_stream(input, model, extra_headers, on_complete, retry, params)
        return opening.handle(ResponseStream, opening.open)

    def retrieve_response(self, response_id: str) -> Response:
        """``GET /responses/{id}``: a stored response (made with ``store`` not false)."""
        return response_from_http(self._stored("GET", response_id).send())

    def delete_response(self, response_id: str) -> Dict[str, Any]:
        """``DELETE /responses/{id}``: forget a stored response; returns the
        server's confirmation (``{"id", "object", "deleted": true}`` on OpenAI)."""
        return _deleted(self._stored("DELETE", response_id).send())

    def transcribe(
        self,
        file: AudioFile,
        *,
        model: Optional[str] = None,
        filename: Optional[str] = None,
        max_bytes: int = MAX_UPLOAD_BYTES,
        boundary: Optional[str] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        retry: Optional[RetryPolicy] = None,
        **params: Any,
    ) -> Transcription:
        """``POST /audio/transcriptions``: the text of ``file``, as a ``Transcription``.

        ``file`` is the audio's bytes, a path or a binary file object, read
        once (a retry sends the same body); ``filename`` names it when its
        own name does not end in the audio's extension. A file over
        ``max_bytes`` is refused before it is read. ``params`` are the form
        fields: ``language``, ``prompt``, ``temperature``,
        ``response_format`` (json, text, srt, vtt, verbose_json...),
        ``timestamp_granularities``... ``boundary`` fixes the multipart
        boundary (random by default). ``extra_headers`` and ``retry`` are as
        in ``chat()``.
        """
        call = self._transcription(
            file, model, retry, filename=filename, max_bytes=max_bytes, boundary=boundary,
            extra_headers=extra_headers, **params,
        )  # fmt: skip
        return transcription_from_http(call.send(), params.get("response_format"))

    def translate(
        self,
        file: AudioFile,
        *,
        model: Optional[str] = None,
        filename: Optional[str] = None,
        max_bytes: int = MAX_UPLOAD_BYTES,
        boundary: Optional[str] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        retry: Optional[RetryPolicy] = None,
        **params: Any,
    ) -> Transcription:
        """``POST /audio/translations``: ``file``'s speech in English, as ``transcribe()``
        (its ``params``: ``prompt``, ``response_format``, ``temperature``)."""
        call = self._transcription(
            file, model, retry, filename=filename, max_bytes=max_bytes, boundary=boundary,
            extra_headers=extra_headers, translate=True, **params,
        )  # fmt: skip
        return transcription_from_http(call.send(), params.get("response_format"))

    def transcribe_stream(
        self,
        file: AudioFile,
        *,
        model: Optional[str] = None,
        filename: Optional[str] = None,
        max_bytes: int = MAX_UPLOAD_BYTES,
        boundary: Optional[str] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        retry: Optional[RetryPolicy] = None,
        **params: Any,
    ) -> TranscriptStream:
        """``transcribe()`` with ``stream=true``; returns a ``TranscriptStream``.

        The file is read and checked at once; the request goes out when the
        ``with`` block is entered. ``text()`` yields the transcript as it
        arrives, in any of the three shapes servers stream it in; then
        ``.transcription`` is the whole ``Transcription``. As with chat
        streams, it is tried again only while no text has reached the caller.
        """
        call = self._transcription(
            file, model, retry, filename=filename, max_bytes=max_bytes, boundary=boundary,
            extra_headers=extra_headers, stream=True, **params,
        )  # fmt: skip
        opening = AudioOpening(call)
        return opening.handle(TranscriptStream, opening.open)  # type: ignore[no-any-return]

    def speak(
        self,
        text: str,
        *,
        model: Optional[str] = None,
        voice: Any = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        retry: Optional[RetryPolicy] = None,
        **params: Any,
    ) -> SpeechStream:
        """``POST /audio/speech``: ``text`` spoken by ``voice``; returns a ``SpeechStream``.

        The request goes out when the ``with`` block is entered;
        ``iter_bytes()`` hands the audio over as it arrives and
        ``save(path)`` writes it to a file. ``params``: ``instructions``,
        ``response_format`` (mp3, opus, aac, flac, wav, pcm), ``speed``,
        ``stream_format`` (``"audio"``, or ``"sse"`` for base64 events with
        the usage at the end).
        """
        opening = self._speech(text, model, voice, extra_headers, retry, params)
        return opening.handle(  # type: ignore[no-any-return]
            SpeechStream, opening.open, response_format=params.get("response_format")
        )

    def models(self) -> List[Dict[str, Any]]:
        """``GET /models``: the model objects the server lists (``id``, ``owned_by``...)."""
        return _models_of(self.request("GET", "/models"))

    def request(self, method: str, path: str, json: Any = None) -> HTTPResponse:
        """Any other endpoint, with the same auth, retries and errors.

        ``path`` is relative to the base URL (``"/embeddings"``); ``json`` is
        the body. Returns the whole ``HTTPResponse``; 4xx/5xx raise.
        """
        return self._any(method, path, json).send()

    def _whole(self, whole: _WholeCall) -> Any:
        """Each target of the route in turn, until one answers whole."""

        def ask(target: Target[Endpoint]) -> Any:
            call, estimate = whole.call(target)
            return whole.answer(call, estimate, call.send())

        return whole.route.answered(whole.route.run(ask, whole.from_cache))


class _WholeCall:
    """One call for a whole answer (``chat()``, ``respond()``), built and not
    yet sent: its route, how each target is asked, how its answer is read.

    A client's driver walks the route: for each target, ``call(target)``,
    send it (blocking or awaited), then ``answer()`` the response.
    """

    def __init__(
        self,
        client: BaseClient,
        route: Route,
        request_for: Callable[[Target[Endpoint]], HTTPRequest],
        params: Mapping[str, Any],
        retry: Optional[RetryPolicy],
        errors: ErrorMapping,
        parse: Callable[[HTTPResponse], Any],
        from_cache: Callable[[Dict[str, Any]], Any],
    ) -> None:
        self.client = client
        self.route = route
        self.request_for = request_for
        self.params = params
        self.retry = retry
        self.errors = errors
        self.parse = parse
        self.from_cache = from_cache
        self.deadline = client.clock.deadline(client.deadline)

    def call(self, target: Target[Endpoint]) -> Tuple[Call, int]:
        request = self.request_for(target)
        return self.client._call(
            target, request, self.deadline, self.params, self.retry, self.errors
        )

    def answer(self, call: Call, estimate: int, response: HTTPResponse) -> Any:
        answer = self.parse(response)
        if call.retries:
            answer = replace(answer, retries_taken=call.retries)
        return self.client._account(call, estimate, answer)


class _StreamOpening:
    """Where a stream's response comes from, as ``Stream`` asks for it.

    The first time, along the route from its first target. Again, after a
    response broke off before any content reached the caller: the current
    target's attempt loop decides whether to retry, and if it gives up, the
    route moves on to the next target, then the cache.
    """

    def __init__(
        self,
        client: BaseClient,
        route: Route,
        request_for: Callable[[Target[Endpoint]], HTTPRequest],
        params: Mapping[str, Any],
        on_complete: Optional[Callable[[Any], None]],
        retry: Optional[RetryPolicy] = None,
        errors: ErrorMapping = error_from_response,
    ) -> None:
        self.client = client
        self.retry = retry
        self.errors = errors
        self.route = route
        self.request_for = request_for
        self.deadline = client.clock.deadline(client.deadline)
        self.params = params
        self.on_complete = on_complete
        # Built now, not on entering the stream, so bad messages are refused at once.
        self.first = route.target
        self.primary = request_for(self.first)
        self.call: Optional[Call] = None
        self.estimate = 0

    def handle(self, kind: Callable[..., Handle], opener: Callable[..., Any]) -> Handle:
        """A stream handle of ``kind`` (``Stream``, ``AsyncStream``...) on ``opener``."""
        return kind(
            opener, clock=self.client.clock.monotonic, deadline=self.deadline.at,
            on_complete=self.finished,
        )  # fmt: skip

    def open(self, failure: Optional[APIError]) -> Tuple[Any, int]:
        """A fresh source and the retries its call took; or raise."""
        if failure is not None:
            call = self._again(failure)
            try:
                return call.open_stream(failure), call.retries
            except FALL_THROUGH as exc:
                self.route.failed(exc)
        self.call = None
        source = self.route.run(lambda target: self._call_at(target).open_stream(), _CachedSource)
        return source, self._retries()

    async def open_async(self, failure: Optional[APIError]) -> Tuple[Any, int]:
        """``open()`` on the event loop."""
        if failure is not None:
            call = self._again(failure)
            try:
                return await call.open_stream_async(failure), call.retries
            except FALL_THROUGH as exc:
                self.route.failed(exc)
        self.call = None
        source = await self.route.run_async(
            lambda target: self._call_at(target).open_stream_async(), _AsyncCachedSource
        )
        return source, self._retries()

    def _again(self, failure: APIError) -> Call:
        """The call whose response broke off with ``failure``, to retry it."""
        if self.call is None:  # the cache's answer: nothing to retry
            raise failure
        return self.call

    def _call_at(self, target: Target[Endpoint]) -> Call:
        request = self.primary if target is self.first else self.request_for(target)
        self.call, self.estimate = self.client._call(
            target, request, self.deadline, self.params, self.retry, self.errors
        )
        return self.call

    def _retries(self) -> int:
        return self.call.retries if self.call is not None else 0

    def finished(self, completion: Answer) -> Answer:
        if self.call is not None:
            completion = self.client._account(self.call, self.estimate, completion)
        answer = self.route.answered(completion)
        if self.on_complete is not None:
            self.on_complete(answer)
        return answer


class _CachedSource:
    """A cached answer, shaped like a response for ``Stream`` to read."""

    status_code = 200
    url = "cache"

    def __init__(self, data: Dict[str, Any]) -> None:
        self.headers = Headers({"content-type": "application/json"})
        self._body = json.dumps(data).encode("utf-8")

    def read(self) -> bytes:
        return self._body

    def finish(self) -> None:
        pass

    def close(self) -> None:
        pass


class _AsyncCachedSource(_CachedSource):
    """A cached answer, shaped like an asyncio response for ``AsyncStream``."""

    async def read(self) -> bytes:  # type: ignore[override]
        return self._body

    async def finish(self) -> None:  # type: ignore[override]
        pass

    async def aclose(self) -> None:
        pass


def _models_of(response: HTTPResponse) -> List[Dict[str, Any]]:
    """The model objects of a ``GET /models`` answer."""
    data = response.json()
    models = data.get("data") if isinstance(data, dict) else data
    if not isinstance(models, list):
        raise InvalidResponseError("GET /models did not return a list under 'data'", body=data)
    return [m if isinstance(m, dict) else {"id": str(m)} for m in models]


def _deleted(response: HTTPResponse) -> Dict[str, Any]:
    """The server's confirmation of a ``DELETE /responses/{id}``."""
    data = response.json()
    if not isinstance(data, dict):
        raise InvalidResponseError("DELETE /responses did not return an object", body=data)
    return data


def _not_cached(data: Dict[str, Any]) -> Response:
    raise AssertionError("Responses calls keep no cache")  # pragma: no cover


def _as_items(input: Union[str, Sequence[Any]]) -> List[Any]:
    """``input`` as a list, for the route's cache key."""
    return [input] if isinstance(input, str) else list(input)


def _prompt_of(body: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The messages a request body sends, for the token estimate: chat's
    ``messages``, or the Responses API's ``instructions`` and ``input``."""
    if "messages" in body:
        return list(body["messages"])
    prompt = (
        [{"role": "system", "content": body["instructions"]}] if body.get("instructions") else []
    )
    given = body.get("input")
    if isinstance(given, str):
        return [*prompt, {"role": "user", "content": given}]
    for item in given or ():
        if "role" in item:
            prompt.append({"role": item["role"], "content": _item_text(item.get("content"))})
        else:  # a call, a tool output, a reasoning item: its text is what it costs
            text = json.dumps(item, ensure_ascii=False)
            prompt.append({"role": "user", "content": text})
    return prompt


def _item_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(
        str(part.get("text", "")) for part in content or () if isinstance(part, Mapping)
    )


def _chat_usage(usage: Union[Usage, ResponseUsage, None]) -> Optional[Usage]:
    """A Responses ``usage`` in chat's terms, for the meter and the corrections."""
    if not isinstance(usage, ResponseUsage):
        return usage
    return Usage(
        prompt_tokens=usage.input_tokens,
        completion_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
        cached_tokens=usage.cached_tokens,
        reasoning_tokens=usage.reasoning_tokens,
    )


def _settings(api_key: Optional[str], base_url: Optional[str], **options: Any) -> Settings:
    """The settings for one endpoint, from the arguments and ``os.environ``."""
    settings = Settings.resolve(api_key, base_url, environ=os.environ, **options)
    known = PROFILES.get(settings.profile)
    if settings.api_key is None and known is not None and known.key_required:
        raise ConfigError(
            f"no API key for {settings.base_url}",
            hint=f"set {settings.key_variable}, choose another provider (--profile on the "
            "command line, profile= in Python), or try rawchat offline against the "
            "simulator: `rawchat ask hello`",
        )
    return settings


def _checked_deadline(deadline: Any) -> Optional[float]:
    """A deadline is ``None`` or a finite number of seconds above zero."""
    if deadline is None:
        return None
    wanted = "a positive number of seconds (e.g. deadline=30), or None for no deadline"
    if isinstance(deadline, bool) or not isinstance(deadline, (int, float)):
        raise ConfigError(
            f"deadline must be {wanted}, got {deadline!r} ({type(deadline).__name__})"
        )
    if deadline != deadline or deadline in (float("inf"), float("-inf")):
        raise ConfigError(f"deadline must be {wanted}, got {deadline!r}, which is not finite")
    if deadline <= 0:
        raise ConfigError(f"deadline must be {wanted}, got {deadline!r}, which is not above zero")
    return deadline


def _checked_retry(retry: Any) -> Optional[RetryPolicy]:
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ConfigError(
            f"retry must be a RetryPolicy, got {type(retry).__name__}",
            hint="client.chat(..., retry=rawchat.RetryPolicy(max_retries=0, resend=False))",
        )
    return retry


def _resolved(policies: Policies, max_retries: int, base_url: str) -> Policies:
    """``policies`` with the defaults filled in: what the attempt loop reads."""
    retry, breaker, hooks = policies.retry, policies.breaker, policies.hooks
    return replace(
        policies,
        retry=RetryPolicy(max_retries=max_retries) if retry is None else retry,
        breaker=CircuitBreaker(base_url) if breaker is True else breaker or None,
        hooks=Hooks() if hooks is None else hooks,
    )


_POLICY_FIELDS = {field.name for field in fields(Policies)}
_CLOCK_FIELDS = {"sleep": "sleep", "wall_clock": "wall", "random": "random"}


def _refuse_removed(kind: str, removed: Mapping[str, Any], clock: Any) -> None:
    """Keywords of older versions fail loudly, naming where they went."""
    if clock is not None and not isinstance(clock, Clock):
        raise ConfigError(
            f"{kind}(clock=...) takes a Clock now: pass clock=Clock(monotonic=...) "
            "(from rawchat import Clock)"
        )
    for name in removed:
        if name in _POLICY_FIELDS:
            raise ConfigError(
                f"{kind}({name}=...) moved: pass policies=Policies({name}=...) "
                "(from rawchat.policies import Policies)"
            )
        if name in _CLOCK_FIELDS:
            raise ConfigError(
                f"{kind}({name}=...) moved: pass clock=Clock({_CLOCK_FIELDS[name]}=...) "
                "(from rawchat import Clock)"
            )
        if name == "environ":
            raise ConfigError(
                f"{kind}(environ=...) was removed: the client reads os.environ; "
                "set the variables there (in tests: monkeypatch.setenv)"
            )
        if name in ("session", "max_workers"):
            raise ConfigError(
                f"{kind}({name}=...) is not taken: it runs on the event loop, with no "
                "requests.Session and no threads",
                hint="pass verify= (a CA bundle path, or False), proxy= and pool_maxsize=",
            )
        raise TypeError(f"{kind}() got an unexpected keyword argument {name!r}")
