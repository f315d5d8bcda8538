"""``rawchat doctor``: find out, step by step, why a chat endpoint does not answer.

Each step tests one layer and stops the run when a later step could only
fail for the same reason, naming the fix for what it found:

1. configuration: which profile, base URL and key (and where each came from),
   proxy and CA bundle settings;
2. DNS: the host resolves (or the proxy's, when one is used);
3. TCP: a connection opens;
4. TLS: the handshake succeeds with the CA bundle ``requests`` would use;
5. authentication: ``GET /models`` with the key;
6. the model: a one-token chat;
7. streaming: a streamed answer, and the time to its first delta;
8. responses: whether the endpoint also has the Responses API
   (``POST /responses``); many compatible servers do not, which is a
   warning, not a failure: Chat Completions works without it.

These are the 401/404/proxy/certificate problems people lose hours to.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional
from urllib.parse import urlsplit

from ..client.client import Client
from ..client.transport import ca_bundle, proxy_for
from ..errors import APIError, APIStatusError, BadRequestError, ConfigError, RawchatError
from ..protocol.http import fingerprint
from ..protocol.settings import PROFILES, Settings

__all__ = ["Check", "run"]

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"


@dataclass(frozen=True)
class Check:
    """The verdict of one step."""

    step: str
    status: str
    detail: str
    fix: str = ""
    ms: Optional[float] = None


def run(
    make_client: Callable[[], Client],
    settings: Settings,
    *,
    model: str,
    timeout: float = 10.0,
    clock: Callable[[], float] = time.perf_counter,
) -> Iterator[Check]:
    """Run the steps in order, yielding each verdict as soon as it is known."""
    parts = urlsplit(settings.base_url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    key = (
        f"from {settings.key_source}, ending {fingerprint(settings.api_key)}"
        if settings.api_key
        else "none"
    )
    summary = (
        f"profile {settings.profile}, base URL {settings.base_url}, key {key}, "
        f"model {model or '(none)'}"
    )
    profile = PROFILES.get(settings.profile)
    key_missing = not settings.api_key and profile is not None and profile.key_required
    if key_missing:
        yield Check("configuration", FAIL, summary, f"set {settings.key_variable} to your API key")
    else:
        yield Check("configuration", OK, summary)
    proxy = proxy_for(settings.base_url)
    if proxy:
        yield Check("proxy", OK, f"requests go through {proxy} (from the *_PROXY variables)")
        proxy_parts = urlsplit(proxy)
        host, port = proxy_parts.hostname or host, proxy_parts.port or 8080

    started = clock()
    try:
        addresses = sorted(
            {info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
        )
    except OSError as exc:
        yield Check(
            "DNS", FAIL, f"cannot resolve {host}: {exc}",
            "check the spelling of the host in the base URL, and your network or VPN; "
            "behind a corporate proxy, set HTTPS_PROXY",
        )  # fmt: skip
        return
    yield Check("DNS", OK, f"{host} -> {', '.join(addresses[:3])}", ms=_ms(clock, started))

    started = clock()
    try:
        connection = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        yield Check(
            "TCP", FAIL, f"cannot connect to {host}:{port}: {exc}",
            "is the server running and listening on that port? a firewall or a "
            "missing proxy setting (HTTPS_PROXY) also looks like this",
        )  # fmt: skip
        return
    yield Check("TCP", OK, f"connected to {host}:{port}", ms=_ms(clock, started))

    with connection:
        if parts.scheme == "https" and not proxy:
            bundle = ca_bundle()
            started = clock()
            try:
                context = ssl.create_default_context(cafile=bundle)
                with context.wrap_socket(connection, server_hostname=parts.hostname) as tls:
                    version = tls.version()
            except (ssl.SSLError, OSError) as exc:
                yield Check(
                    "TLS", FAIL, f"handshake with {host} failed: {exc}",
                    "if your network inspects TLS, point REQUESTS_CA_BUNDLE at your "
                    f"company's CA certificates (now: {bundle})",
                )  # fmt: skip
                return
            yield Check(
                "TLS", OK, f"{version}, certificate trusted by {bundle}", ms=_ms(clock, started)
            )
        elif parts.scheme == "https":
            yield Check("TLS", SKIP, "tunnelled through the proxy; checked by the next step")
        else:
            yield Check("TLS", SKIP, "plain http (fine for a local server, not for a real key)")

    if key_missing:
        return
    try:
        client = make_client()
    except ConfigError as exc:
        yield Check("authentication", FAIL, exc.message, exc.hint)
        return
    yield from _api_checks(client, model, clock)


def _api_checks(client: Client, model: str, clock: Callable[[], float]) -> Iterator[Check]:
    started = clock()
    try:
        models = client.models()
    except APIStatusError as exc:
        if exc.status_code in (401, 403):
            yield Check(
                "authentication", FAIL, f"GET /models: {exc.status_code} {exc.message}", exc.hint
            )
            return
        yield Check(
            "authentication", WARN, f"GET /models: {exc.status_code} {exc.message}",
            exc.hint or "some compatible servers have no /models; the chat steps below decide",
        )  # fmt: skip
        listed: Optional[List[str]] = None
    except RawchatError as exc:
        yield Check("authentication", FAIL, f"GET /models: {exc.message}", exc.hint)
        return
    else:
        listed = [str(m.get("id")) for m in models]
        yield Check(
            "authentication",
            OK,
            f"the key works: {len(listed)} models listed",
            ms=_ms(clock, started),
        )

    if not model:
        yield Check("model", FAIL, "no model chosen", "pass --model, or set RAWCHAT_MODEL")
        return
    messages = [{"role": "user", "content": "Say OK."}]
    started = clock()
    try:
        try:
            done = client.chat(messages, model=model, max_tokens=1)
        except BadRequestError as exc:
            if "max_tokens" not in exc.message:
                raise
            # Reasoning models refuse max_tokens and want max_completion_tokens.
            done = client.chat(messages, model=model, max_completion_tokens=16)
    except APIError as exc:
        where = "" if listed is None or model in listed else " (and it is not in GET /models)"
        yield Check("model", FAIL, f"chat with {model}{where}: {exc.message}", exc.hint)
        return
    yield Check(
        "model", OK, f"{done.model or model} answered (finish_reason {done.finish_reason})",
        ms=_ms(clock, started),
    )  # fmt: skip

    started = clock()
    try:
        with client.stream(messages, model=model) as stream:
            first: Optional[float] = None
            for _ in stream.text():
                if first is None:
                    first = _ms(clock, started)
            completion = stream.completion
    except APIError as exc:
        yield Check(
            "streaming", FAIL, f"streamed chat: {exc.message}",
            exc.hint or "a proxy may buffer or cut event streams",
        )  # fmt: skip
        return
    usage = "with usage" if completion.usage else "without usage (stream_options unsupported?)"
    first_text = f"first delta after {first:.0f} ms, " if first is not None else "no text, "
    yield Check("streaming", OK, f"{first_text}complete {usage}", ms=_ms(clock, started))
    yield _responses_check(client, model, clock)


def _responses_check(client: Client, model: str, clock: Callable[[], float]) -> Check:
    """``POST /responses`` once: present, absent, or present and refusing."""
    started = clock()
    try:
        # 16 is the smallest max_output_tokens OpenAI accepts.
        response = client.respond("Say OK.", model=model, max_output_tokens=16, store=False)
    except APIStatusError as exc:
        if exc.status_code in (404, 405) and exc.code != "model_not_found":
            return Check(
                "responses", WARN, f"POST /responses: {exc.status_code}: this endpoint has "
                "no Responses API", "use Chat Completions (the default; --api chat)",
            )  # fmt: skip
        return Check("responses", WARN, f"POST /responses: {exc.message}", exc.hint)
    except RawchatError as exc:
        return Check("responses", WARN, f"POST /responses: {exc.message}", exc.hint)
    return Check(
        "responses", OK, f"POST /responses answered (status {response.status or 'unknown'})",
        ms=_ms(clock, started),
    )  # fmt: skip


def _ms(clock: Callable[[], float], started: float) -> float:
    return (clock() - started) * 1000.0
