"""Settings: where to send requests, with which key, and how patiently.

Explicit arguments beat environment variables, which beat the provider
profile's defaults. The variables are the ones the official SDKs read
(https://platform.openai.com/docs/api-reference/authentication):
``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``OPENAI_ORG_ID``,
``OPENAI_PROJECT_ID``; for Azure OpenAI ``AZURE_OPENAI_API_KEY``,
``AZURE_OPENAI_ENDPOINT`` and ``OPENAI_API_VERSION``
(https://learn.microsoft.com/azure/ai-services/openai/reference). rawchat
adds ``RAWCHAT_PROFILE`` and ``RAWCHAT_MODEL``.

Keys pasted from a web page or a ``.env`` file often carry a trailing
newline or quotes, which turn into a baffling 401: those are stripped with a
warning. A key with a control or non-ASCII character cannot be sent in an
HTTP header at all, so it is refused here with a ``ConfigError`` that says
where the key came from, and never what it is.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Tuple, TypeVar, Union
from urllib.parse import quote, urlsplit

from ..errors import ConfigError
from .http import fingerprint, redact_url

__all__ = [
    "DEFAULT_TIMEOUT",
    "PROFILES",
    "ConfigWarning",
    "Profile",
    "Settings",
    "Timeout",
    "check_header",
    "clean_api_key",
    "normalize_base_url",
]


T = TypeVar("T")


class ConfigWarning(UserWarning):
    """A setting was usable only after rawchat corrected it."""


#: The longest timeout accepted, in seconds (a day): beyond it a socket
#: refuses the number, and no answer is worth the wait.
MAX_TIMEOUT = 86400.0


@dataclass(frozen=True)
class Timeout:
    """Seconds to wait for the TCP/TLS connect, and between two reads.

    ``read`` bounds the longest silence between bytes, so a stream that
    stalls midway ends after ``read`` seconds even though the whole answer
    may take longer. ``requests`` waits forever unless told otherwise, so
    every request rawchat sends carries both.
    """

    connect: float = 10.0
    read: float = 600.0

    def __post_init__(self) -> None:
        for name in ("connect", "read"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                # NaN fails both comparisons; infinity and 1e300 fail the second.
                or not 0 < value <= MAX_TIMEOUT
            ):
                raise ConfigError(
                    f"the {name} timeout must be a number of seconds above 0 and "
                    f"at most {MAX_TIMEOUT:g}, got {value!r}",
                    hint="rawchat never sends a request without a timeout; "
                    "timeout=30 sets both, timeout=(10, 600) connect and read",
                )

    @classmethod
    def of(cls, value: TimeoutLike) -> Timeout:
        """Accept a ``Timeout``, one number for both, or ``(connect, read)``.

        >>> Timeout.of(30)
        Timeout(connect=30, read=30)
        >>> Timeout.of((5, 600))
        Timeout(connect=5, read=600)
        """
        if isinstance(value, Timeout):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls(value, value)
        if isinstance(value, tuple) and len(value) == 2:
            return cls(*value)
        raise ConfigError(
            f"timeout must be seconds, (connect, read) or a Timeout; got {value!r}",
            hint="rawchat never sends a request without a timeout",
        )


TimeoutLike = Union[Timeout, float, Tuple[float, float]]
DEFAULT_TIMEOUT = Timeout()


@dataclass(frozen=True)
class Profile:
    """A provider's defaults: where it lives and where its key is kept."""

    name: str
    base_url: str
    key_variables: Tuple[str, ...]
    default_model: str
    key_required: bool = True
    auth: str = "bearer"  # or "api-key" (Azure)
    docs: str = ""


PROFILES = {
    p.name: p
    for p in (
        Profile(
            "openai",
            "https://api.openai.com/v1",
            ("OPENAI_API_KEY",),
            "gpt-4o-mini",
            docs="https://platform.openai.com/docs/api-reference/chat",
        ),
        Profile(
            "azure",
            "",  # from AZURE_OPENAI_ENDPOINT
            ("AZURE_OPENAI_API_KEY",),
            "gpt-4o-mini",
            auth="api-key",
            docs="https://learn.microsoft.com/azure/ai-services/openai/reference",
        ),
        Profile(
            "deepseek",
            "https://api.deepseek.com/v1",
            ("DEEPSEEK_API_KEY",),
            "deepseek-chat",
            docs="https://api-docs.deepseek.com/",
        ),
        Profile(
            "moonshot",
            "https://api.moonshot.cn/v1",
            ("MOONSHOT_API_KEY",),
            "moonshot-v1-8k",
            docs="https://platform.moonshot.cn/docs",
        ),
        Profile(
            "dashscope",
            "https://dashscope.aliyuncs.com/compatible-mode/v1",
            ("DASHSCOPE_API_KEY",),
            "qwen-plus",
            docs="https://help.aliyun.com/zh/model-studio/compatibility-of-openai-with-dashscope",
        ),
        Profile(
            "ark",
            "https://ark.cn-beijing.volces.com/api/v3",
            ("ARK_API_KEY",),
            "doubao-seed-1-6-250615",
            docs="https://www.volcengine.com/docs/82379",
        ),
        Profile(
            "openrouter",
            "https://openrouter.ai/api/v1",
            ("OPENROUTER_API_KEY",),
            "openai/gpt-4o-mini",
            docs="https://openrouter.ai/docs",
        ),
        Profile(
            "ollama",
            "http://localhost:11434/v1",
            ("OLLAMA_API_KEY",),
            "llama3.2",
            key_required=False,
            docs="https://github.com/ollama/ollama/blob/main/docs/openai.md",
        ),
        Profile(
            "vllm",
            "http://localhost:8000/v1",
            ("VLLM_API_KEY",),
            "",  # whatever `vllm serve` loaded: see `rawchat models`
            key_required=False,
            docs="https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html",
        ),
        Profile(
            "llamacpp",
            "http://localhost:8080/v1",
            ("LLAMA_API_KEY",),
            "default",
            key_required=False,
            docs="https://github.com/ggml-org/llama.cpp/tree/master/tools/server",
        ),
        Profile(
            "litellm",
            "http://localhost:4000/v1",
            ("LITELLM_API_KEY", "OPENAI_API_KEY"),
            "gpt-4o-mini",
            docs="https://docs.litellm.ai/docs/proxy/user_keys",
        ),
        Profile(
            "simulator",
            "",  # the embedded simulator's own address
            ("RAWCHAT_SIMULATOR_KEY",),
            "gpt-4o-mini",
            key_required=False,
        ),
    )
}


def clean_api_key(raw: str, source: str) -> str:
    """Strip what copy-paste adds to a key; refuse what cannot be sent.

    ``source`` names where the key came from ("the api_key argument",
    "OPENAI_API_KEY") for the messages; the key itself is never shown.
    """
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] and key[0] in "'\"":
        key = key[1:-1].strip()
    if not key:
        raise ConfigError(
            f"the API key from {source} is empty",
            hint=f"set {source} to your key, or unset it",
        )
    if key != raw:
        warnings.warn(
            f"the API key from {source} had surrounding whitespace or quotes; they were removed",
            ConfigWarning,
            stacklevel=3,
        )
    for position, char in enumerate(key):
        if ord(char) < 0x21 or ord(char) == 0x7F:
            what = "a space" if char == " " else f"a control character ({ord(char):#04x})"
        elif ord(char) > 0x7E:
            what = f"a non-ASCII character (U+{ord(char):04X})"
        else:
            continue
        raise ConfigError(
            f"the API key from {source} contains {what} at position {position} of {len(key)}",
            hint="an HTTP header cannot carry it; copy the key again from the "
            "provider's console (smart quotes and zero-width spaces sneak in "
            "through chat apps and documents)",
        )
    return key


def normalize_base_url(url: str, source: str = "base_url") -> str:
    """Validate a base URL and return it without a trailing slash."""
    text = url.strip()
    shown = redact_url(text)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 -- reading it checks the port is a number in range
    except ValueError as exc:
        raise ConfigError(
            f"{source} {shown!r} is not a valid URL: {exc}",
            hint="it looks like https://api.openai.com/v1 (an IPv6 host goes in brackets: "
            "http://[::1]:8000/v1)",
        ) from None
    if "://" not in text:
        host = text.split("/")[0].rsplit(":", 1)[0]
        local = host in ("localhost", "127.0.0.1", "[::1]") or host.endswith(".local")
        scheme = "http" if local else "https"  # local servers rarely have certificates
        guess = f"{scheme}://{text.rstrip('/')}" + ("" if "/" in text else "/v1")
        raise ConfigError(
            f"{source} {shown!r} has no scheme",
            hint=f"write it in full, e.g. {guess!r}",
        )
    if parts.scheme not in ("http", "https"):
        raise ConfigError(
            f"{source} {shown!r} is not an http:// or https:// URL",
            hint="it looks like https://api.openai.com/v1",
        )
    if not parts.hostname:
        raise ConfigError(
            f"{source} {shown!r} has no host",
            hint="it looks like https://api.openai.com/v1",
        )
    if parts.query or parts.fragment:
        raise ConfigError(
            f"{source} {shown!r} has a query or fragment",
            hint="give the base alone; rawchat adds paths and query parameters",
        )
    path = parts.path.rstrip("/")
    for suffix in ("/chat/completions", "/completions", "/models"):
        if path.endswith(suffix):
            base = redact_url(f"{parts.scheme}://{parts.netloc}{path[: -len(suffix)]}")
            raise ConfigError(
                f"{source} {shown!r} is an endpoint, not a base URL",
                hint=f"use {base!r}; rawchat appends {suffix}",
            )
    return f"{parts.scheme}://{parts.netloc}{path}"


#: What a header cannot carry: CR, LF and NUL (they would end it early, RFC
#: 9110 section 5.5) and anything outside Latin-1 (it cannot be encoded); a
#: name cannot hold a space or a colon either. Written as "anything but the
#: allowed": one test per character, where a class of the forbidden would
#: hold every code point above U+00FF.
_NOT_IN_VALUE = re.compile("[^\x01-\x09\x0b\x0c\x0e-\xff]")
_NOT_IN_NAME = re.compile("[^\x01-\x09\x0b\x0c\x0e-\x1f!-9;-\xff]")


def check_header(name: str, value: str, source: Union[str, Callable[[], str]]) -> None:
    """Refuse a header an HTTP/1.1 request cannot carry, naming where it came from.

    ``source`` describes where the header came from, or is a function that
    does (called only to word the error). The value is never shown: it may
    be a credential.
    """
    for what, text, pattern in (("name", name, _NOT_IN_NAME), ("value", value, _NOT_IN_VALUE)):
        bad = pattern.search(text)
        if bad is not None:
            where = source if isinstance(source, str) else source()
            raise ConfigError(
                f"the header {what} from {where} has a character it cannot carry "
                f"(U+{ord(bad.group()):04X}) at position {bad.start()}",
                hint="headers are one line of Latin-1 text; copy the value again "
                "without line breaks",
            )


@dataclass(frozen=True)
class Settings:
    """Everything a client needs to address one endpoint.

    ``key_source`` records where the key came from, so a 401 can say which
    variable to fix. ``api_version`` switches Azure to its deployment URLs
    (``/openai/deployments/{model}/...?api-version=``); without it Azure is
    addressed through its OpenAI-compatible ``/openai/v1`` surface.
    """

    base_url: str
    api_key: Optional[str] = field(default=None, repr=False)
    key_source: str = "none"
    profile: str = "openai"
    model: str = ""
    organization: Optional[str] = None
    project: Optional[str] = None
    api_version: Optional[str] = None
    auth: str = "bearer"
    timeout: Timeout = DEFAULT_TIMEOUT
    max_retries: int = 2
    headers: Tuple[Tuple[str, str], ...] = ()

    def __repr__(self) -> str:
        key = fingerprint(self.api_key) if self.api_key else None
        return (
            f"Settings(base_url={redact_url(self.base_url)!r}, api_key={key!r}, "
            f"key_source={self.key_source!r}, profile={self.profile!r}, "
            f"model={self.model!r})"
        )

    @property
    def key_variable(self) -> str:
        """The environment variable that holds (or would hold) the key."""
        if self.key_source not in ("none", "the api_key argument"):
            return self.key_source
        profile = PROFILES.get(self.profile)
        return profile.key_variables[0] if profile else "OPENAI_API_KEY"

    def url(self, path: str, *, model: Optional[str] = None) -> str:
        """The absolute URL of an API path such as ``/chat/completions``."""
        if self.auth == "api-key" and self.api_version:
            if path == "/chat/completions" and model:
                path = f"/deployments/{quote(model, safe='')}{path}"
            return f"{self.base_url}{path}?api-version={quote(self.api_version)}"
        return self.base_url + path

    @classmethod
    def resolve(
        cls,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        *,
        profile: Optional[str] = None,
        model: Optional[str] = None,
        organization: Optional[str] = None,
        project: Optional[str] = None,
        api_version: Optional[str] = None,
        timeout: TimeoutLike = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        headers: Optional[Mapping[str, str]] = None,
        environ: Mapping[str, str],
    ) -> Settings:
        """Combine arguments, environment and profile into one ``Settings``.

        ``environ`` is the environment to read (the client passes
        ``os.environ``): this module only reads the mapping it is given.
        """
        env = environ

        def var(name: str) -> Optional[str]:
            value = env.get(name)
            return value if value and value.strip() else None

        name = profile or var("RAWCHAT_PROFILE")
        if name is None:
            explicit_base = base_url or var("OPENAI_BASE_URL")
            name = "azure" if not explicit_base and var("AZURE_OPENAI_ENDPOINT") else None
        chosen = PROFILES.get(name or "openai")
        if chosen is None:
            raise ConfigError(
                f"unknown profile {name!r}",
                hint="choose one of " + ", ".join(sorted(PROFILES)),
            )

        if api_key is not None:
            key: Optional[str] = clean_api_key(api_key, "the api_key argument")
            source = "the api_key argument"
        else:
            key, source = None, "none"
            variables = chosen.key_variables
            if name is None:  # no profile chosen: the SDK's variable
                variables = ("OPENAI_API_KEY",)
            for variable in variables:
                if variable in env:
                    key, source = clean_api_key(env[variable], variable), variable
                    break

        if base_url is not None:
            base, base_source = base_url, "base_url"
        elif chosen.name == "azure":
            endpoint = var("AZURE_OPENAI_ENDPOINT")
            if not endpoint:
                raise ConfigError(
                    "the azure profile needs an endpoint",
                    hint="set AZURE_OPENAI_ENDPOINT=https://RESOURCE.openai.azure.com",
                )
            version = api_version or var("OPENAI_API_VERSION")
            suffix = "/openai" if version else "/openai/v1"
            base, base_source = endpoint.rstrip("/") + suffix, "AZURE_OPENAI_ENDPOINT"
        elif var("OPENAI_BASE_URL") and not profile:
            base, base_source = var("OPENAI_BASE_URL") or "", "OPENAI_BASE_URL"
        elif chosen.name == "simulator":
            # Where `rawchat serve` listens by default; the command line's
            # ask, chat, models, batch and doctor start one in process instead.
            base, base_source = "http://127.0.0.1:8765/v1", "the simulator profile"
        else:
            base, base_source = chosen.base_url, f"the {chosen.name} profile"

        extra = tuple((str(k), str(v)) for k, v in (headers or {}).items())
        for header, value in extra:
            check_header(header, value, "default_headers")
        organization = organization or var("OPENAI_ORG_ID")
        project = project or var("OPENAI_PROJECT_ID")
        if organization:
            check_header("OpenAI-Organization", organization, "the organization (OPENAI_ORG_ID)")
        if project:
            check_header("OpenAI-Project", project, "the project (OPENAI_PROJECT_ID)")
        return cls(
            base_url=normalize_base_url(base, base_source),
            api_key=key,
            key_source=source,
            profile=chosen.name if name else _guess_profile(base),
            model=model or var("RAWCHAT_MODEL") or chosen.default_model,
            organization=organization,
            project=project,
            api_version=(api_version or var("OPENAI_API_VERSION"))
            if chosen.auth == "api-key"
            else api_version,
            auth=chosen.auth,
            timeout=Timeout.of(timeout),
            max_retries=max_retries,
            headers=extra,
        )


def by_model_name(table: Mapping[str, T], model: str) -> Optional[T]:
    """``table``'s entry for ``model``: exact, else the longest name it extends.

    ``gpt-4o-mini-2024-07-18`` finds ``gpt-4o-mini``; ``openai/gpt-4o`` (as
    OpenRouter names it) finds ``gpt-4o``.
    """
    if model in table:
        return table[model]
    name = model.rsplit("/", 1)[-1]
    matches = [key for key in table if name == key or name.startswith(key + "-")]
    return table[max(matches, key=len)] if matches else None


def _guess_profile(base_url: str) -> str:
    """The profile whose base URL shares a host with ``base_url``, if any."""
    host = urlsplit(base_url.strip()).netloc
    for profile in PROFILES.values():
        if profile.base_url and urlsplit(profile.base_url).netloc == host:
            return profile.name
    return "custom"
