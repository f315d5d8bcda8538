"""Every Python snippet of README.md runs as written, in order, against the simulator.

Readers copy these snippets; the environment is what a reader would set
(a key and a base URL), pointed at the embedded simulator.
"""

from __future__ import annotations

import os
import re

import rawchat

from .conftest import KEY

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def python_blocks(text):
    """Each ```python block with the line it starts on, as (line, code)."""
    return [(text.count("\n", 0, m.start(1)), m.group(1)) for m in BLOCK.finditer(text)]


def test_the_readme_has_its_python_snippets():
    with open(README, encoding="utf-8") as readme:
        firsts = [code.splitlines()[0] for _, code in python_blocks(readme.read())]
    assert firsts == [
        "import rawchat",
        "import rawchat",
        "import rawchat",
        "from rawchat.protocol.request import build_chat_request",
        "from rawchat.protocol.sse import SSEParser",
        "from rawchat.policies import Policies",
        'conv = rawchat.Conversation(system="You are terse.", strategy=rawchat.Summarize())',
        'meter = rawchat.UsageMeter(budget_usd=5.00)  # or budget_tokens=..., on_budget="warn"',
        "import os",
        "import asyncio",
        "with rawchat.Client() as client:",
    ]


def test_every_readme_snippet_runs_as_written(sim, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("OPENAI_BASE_URL", sim.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEYS", "sk-test-pool-key-aaaa,sk-test-pool-key-bbbb")
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-test-deepseek-cccc")
    monkeypatch.setenv("HOME", str(tmp_path))  # the response cache under ~/.cache
    monkeypatch.chdir(tmp_path)  # chat.json
    with open(README, encoding="utf-8") as readme:
        blocks = python_blocks(readme.read())
    namespace = {"__name__": "readme"}
    for line, code in blocks:
        # Padded so that a traceback points at the README's own line.
        exec(compile("\n" * line + code, README, "exec"), namespace)
    # The three streams and the offline chat print the simulator's answers.
    assert capsys.readouterr().out.count("Hello from the rawchat simulator.") == 4
    assert namespace["done"].content.endswith('your last message was: "Draft the invoice email".')
    saved = rawchat.Conversation.load(str(tmp_path / "chat.json"))
    assert saved.threads == ["main", "billing"]
    saved.switch("main")
    assert [m["role"] for m in saved.messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    assert os.path.isdir(tmp_path / ".cache" / "rawchat")  # the production snippet's cache
