"""Shared fixtures: the embedded simulator on a free loopback port."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings as hypothesis_settings

import rawchat
from rawchat.simulator import Simulator

KEY = "sk-test-0123456789abcdef"


@pytest.fixture(autouse=True)
def _no_provider_environment(monkeypatch):
    """Tests never see the developer's real keys or endpoints."""
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID",
        "AZURE_OPENAI_API_KEY",
        "AZURE_OPENAI_ENDPOINT",
        "OPENAI_API_VERSION",
        "RAWCHAT_PROFILE",
        "RAWCHAT_MODEL",
        "DEEPSEEK_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sim():
    with Simulator() as simulator:
        yield simulator


@pytest.fixture
def client(sim):
    with rawchat.Client(KEY, sim.base_url, clock=rawchat.Clock(sleep=lambda s: None)) as c:
        yield c


# CI runs the same examples every time, so a red build is reproducible.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")
