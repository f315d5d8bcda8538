"""Settings: arguments over environment over profile; keys and URLs checked."""

from __future__ import annotations

import pytest

from rawchat.errors import ConfigError
from rawchat.protocol.settings import (
    ConfigWarning,
    Settings,
    Timeout,
    clean_api_key,
    normalize_base_url,
)


def resolve(env=None, **kwargs):
    return Settings.resolve(environ=env or {}, **kwargs)


def test_the_default_is_openai_with_the_sdk_variables():
    settings = resolve(
        {
            "OPENAI_API_KEY": "sk-env",
            "OPENAI_ORG_ID": "org-1",
            "OPENAI_PROJECT_ID": "proj-1",
        }
    )
    assert settings.base_url == "https://api.openai.com/v1"
    assert (settings.api_key, settings.key_source) == ("sk-env", "OPENAI_API_KEY")
    assert (settings.organization, settings.project, settings.profile) == (
        "org-1",
        "proj-1",
        "openai",
    )
    assert settings.model == "gpt-4o-mini"


def test_arguments_beat_the_environment():
    settings = resolve(
        {"OPENAI_API_KEY": "sk-env", "OPENAI_BASE_URL": "https://env.example/v1"},
        api_key="sk-arg",
        base_url="https://arg.example/v1/",
        organization="org-arg",
    )
    assert (settings.api_key, settings.key_source) == ("sk-arg", "the api_key argument")
    assert settings.base_url == "https://arg.example/v1"
    assert settings.organization == "org-arg"


def test_openai_base_url_from_the_environment_is_used():
    assert (
        resolve({"OPENAI_BASE_URL": "http://localhost:8000/v1"}).base_url
        == "http://localhost:8000/v1"
    )


@pytest.mark.parametrize(
    "profile, variable, base_url, model",
    [
        (
            "deepseek",
            "DEEPSEEK_API_KEY",
            "https://api.deepseek.com/v1",
            "deepseek-chat",
        ),
        (
            "moonshot",
            "MOONSHOT_API_KEY",
            "https://api.moonshot.cn/v1",
            "moonshot-v1-8k",
        ),
        (
            "dashscope",
            "DASHSCOPE_API_KEY",
            "https://dashscope.aliyuncs.com/compatible-mode/v1",
            "qwen-plus",
        ),
        (
            "ark",
            "ARK_API_KEY",
            "https://ark.cn-beijing.volces.com/api/v3",
            "doubao-seed-1-6-250615",
        ),
        (
            "openrouter",
            "OPENROUTER_API_KEY",
            "https://openrouter.ai/api/v1",
            "openai/gpt-4o-mini",
        ),
        ("ollama", "OLLAMA_API_KEY", "http://localhost:11434/v1", "llama3.2"),
    ],
)
def test_profiles_set_base_url_key_variable_and_model(profile, variable, base_url, model):
    settings = resolve({variable: "k-123", "OPENAI_API_KEY": "not-this"}, profile=profile)
    assert (
        settings.base_url,
        settings.api_key,
        settings.key_source,
        settings.model,
    ) == (base_url, "k-123", variable, model)


def test_rawchat_profile_and_model_come_from_the_environment():
    settings = resolve({"RAWCHAT_PROFILE": "ollama", "RAWCHAT_MODEL": "qwen3:8b"})
    assert (settings.profile, settings.model, settings.api_key) == (
        "ollama",
        "qwen3:8b",
        None,
    )


def test_an_unknown_profile_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown profile 'opnai'") as caught:
        resolve(profile="opnai")
    assert "openai" in caught.value.hint


def test_azure_with_an_api_version_uses_deployment_urls():
    settings = resolve(
        {
            "AZURE_OPENAI_API_KEY": "az-key",
            "AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com/",
            "OPENAI_API_VERSION": "2024-10-21",
        }
    )
    assert (settings.profile, settings.auth, settings.key_source) == (
        "azure",
        "api-key",
        "AZURE_OPENAI_API_KEY",
    )
    assert settings.url("/chat/completions", model="gpt 4o") == (
        "https://res.openai.azure.com/openai/deployments/gpt%204o/chat/completions?api-version=2024-10-21"
    )


def test_azure_without_an_api_version_uses_the_v1_surface():
    settings = resolve(
        {
            "AZURE_OPENAI_API_KEY": "k",
            "AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com",
        }
    )
    assert (
        settings.url("/chat/completions", model="x")
        == "https://res.openai.azure.com/openai/v1/chat/completions"
    )


def test_the_azure_profile_needs_an_endpoint():
    with pytest.raises(ConfigError, match="needs an endpoint"):
        resolve(profile="azure")


def test_a_custom_base_url_guesses_its_profile_from_the_host():
    assert resolve(base_url="https://api.deepseek.com").profile == "deepseek"
    assert resolve(base_url="http://127.0.0.1:9/v1").profile == "custom"


def test_settings_repr_never_shows_the_key():
    settings = resolve(api_key="sk-proj-supersecretvalue1234")
    assert "supersecret" not in repr(settings)
    assert "...1234" in repr(settings)


# -- key sanity -----------------------------------------------------------------


@pytest.mark.parametrize("raw", [" sk-abc\n", '"sk-abc"', "'sk-abc'", '  "sk-abc" \r\n'])
def test_whitespace_and_quotes_around_a_key_are_stripped_with_a_warning(raw):
    with pytest.warns(
        ConfigWarning, match="from OPENAI_API_KEY had surrounding whitespace or quotes"
    ):
        assert clean_api_key(raw, "OPENAI_API_KEY") == "sk-abc"


def test_a_clean_key_passes_silently(recwarn):
    assert clean_api_key("sk-abc", "x") == "sk-abc"
    assert len(recwarn) == 0


@pytest.mark.parametrize(
    "raw, problem",
    [
        ("sk-ab\u200bcd", r"a non-ASCII character \(U\+200B\) at position 5 of 8"),
        ("sk-\u201cabc", r"a non-ASCII character \(U\+201C\) at position 3"),
        ("sk-ab\ncd", r"a control character \(0x0a\) at position 5"),
        ("sk-ab cd", "a space at position 5"),
    ],
)
def test_a_key_that_cannot_go_in_a_header_is_refused_without_echoing_it(raw, problem):
    with pytest.raises(ConfigError, match=problem) as caught:
        clean_api_key(raw, "OPENAI_API_KEY")
    assert "sk-ab" not in str(caught.value)


def test_an_empty_key_says_which_variable():
    with pytest.raises(ConfigError, match="the API key from OPENAI_API_KEY is empty"):
        resolve({"OPENAI_API_KEY": "  "})


# -- base URLs ----------------------------------------------------------------


def test_a_base_url_loses_its_trailing_slash():
    assert normalize_base_url(" https://api.example.com/v1/ ") == "https://api.example.com/v1"


@pytest.mark.parametrize(
    "url, message",
    [
        ("api.openai.com/v1", "has no scheme(.|\n)*'https://api.openai.com/v1'"),
        ("localhost:8080", "has no scheme(.|\n)*'http://localhost:8080/v1'"),
        ("http://", "has no host"),
        ("http://[::1", "is not a valid URL"),
        ("http://localhost:70000/v1", "is not a valid URL"),
        ("ftp://x/v1", "is not an http"),
        ("https://x/v1?key=1", "has a query or fragment"),
    ],
)
def test_malformed_base_urls_are_refused(url, message):
    with pytest.raises(ConfigError, match=message):
        normalize_base_url(url)


def test_a_full_endpoint_given_as_base_url_names_the_right_base():
    with pytest.raises(ConfigError, match="is an endpoint, not a base URL") as caught:
        normalize_base_url("https://api.openai.com/v1/chat/completions")
    assert caught.value.hint == "use 'https://api.openai.com/v1'; rawchat appends /chat/completions"


# -- timeouts -----------------------------------------------------------------


def test_timeouts_accept_a_number_a_pair_or_a_timeout():
    assert Timeout.of(5) == Timeout(5.0, 5.0)
    assert Timeout.of((2, 30)) == Timeout(2, 30)
    assert Timeout.of(Timeout(1, 2)) == Timeout(1, 2)


@pytest.mark.parametrize("bad", [None, 0, -1, (1, None), "10", True])
def test_there_is_no_such_thing_as_no_timeout(bad):
    with pytest.raises(ConfigError):
        Timeout.of(bad)


@pytest.mark.parametrize(
    "timeout",
    [float("inf"), 1e300, float("nan"), (True, True), 0, -1, "3", None],
)
def test_a_timeout_that_is_not_a_sane_number_of_seconds_is_a_config_error(timeout):
    with pytest.raises(ConfigError, match="timeout must be"):
        Timeout.of(timeout)


def test_a_day_is_the_longest_timeout():
    assert Timeout.of(86400) == Timeout(86400, 86400)
    with pytest.raises(ConfigError, match="at most 86400"):
        Timeout(10, 86401)


@pytest.mark.parametrize(
    "headers, where",
    [
        ({"X-Team": "a\r\nX-Injected: 1"}, "default_headers"),
        ({"X-Team": "caf\u00e9 \u4f60"}, "default_headers"),
        ({"Bad Name": "x"}, "default_headers"),
    ],
)
def test_default_headers_an_http_request_cannot_carry_are_refused(headers, where):
    with pytest.raises(ConfigError, match=f"header (name|value) from {where}"):
        resolve(base_url="https://x/v1", headers=headers)


def test_an_organization_with_a_line_break_is_refused_without_showing_it():
    with pytest.raises(ConfigError, match="OPENAI_ORG_ID") as caught:
        resolve({"OPENAI_ORG_ID": "org-secret\n"}, base_url="https://x/v1")
    assert "org-secret" not in str(caught.value)


def test_credentials_in_the_base_url_never_show_in_the_settings_repr():
    settings = resolve(base_url="https://user:hunter2@proxy.example/v1", api_key="sk-x")
    assert "hunter2" not in repr(settings)
    assert "https://***@proxy.example/v1" in repr(settings)


def test_a_bad_base_url_with_credentials_does_not_show_them_in_the_error():
    with pytest.raises(ConfigError) as caught:
        resolve(base_url="https://user:hunter2@proxy.example/v1/chat/completions")
    assert "hunter2" not in str(caught.value)
