"""The simulator's "model": deterministic answers that say what arrived.

Real models are not reproducible; a teaching and testing server should be.
Every answer is a pure function of the request body, and it describes the
request (how many messages, a rough token count, the last user message),
so a learner sees what the server saw. With ``tools`` offered it calls the
first one; after a tool result it reports the result; a ``*-reasoner``
model thinks aloud first, as DeepSeek's ``reasoning_content`` does.

Three answers serve the memory evaluation (``rawchat.conversation.evaluation``):

* the summarisation request ``Summarize`` sends (its ``PROMPT`` as the
  system message) gets an extractive summary: the sentences of the
  current summary and of the new turns, in order, cut to ``max_tokens``
  (``trimming.extractive_summary``);
* an *oracle reader*: a request whose ``metadata`` holds
  ``rawchat_probe_answer`` (the right answer; empty when it was never
  given) and optionally ``rawchat_probe_stale`` (an outdated value) is a
  probe. The answer is given only if it appears in the messages before the
  last one, what the client chose to send; else the stale value if that
  appears; else "I don't know.";
* a judge: ``metadata`` with ``rawchat_judge`` and a last message holding
  JSON ``{"question", "gold", "candidate", "stale"}`` gets
  ``{"verdict": "CORRECT" | "WRONG" | "STALE" | "ABSTAIN", "reason"}`` by
  case-insensitive containment.

``metadata`` is the request's own key-value field
(https://platform.openai.com/docs/api-reference/chat/create#chat-create-metadata),
so the probe's question text stays what a real model would read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..protocol.trimming import Summarize, extractive_summary

__all__ = ["ABSTAIN_REPLY", "MODELS", "Reply", "estimate_tokens", "reply_to"]

#: What the oracle reader says when the answer is not in what it was sent.
ABSTAIN_REPLY = "I don't know."

#: The models the simulator lists and accepts.
MODELS = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-mini",
    "o4-mini",
    "deepseek-chat",
    "deepseek-reasoner",
    "rawchat-sim",
)

_PIECE = re.compile(r"\s*\S+|\s+")


@dataclass(frozen=True)
class Reply:
    """What the model answers, before it is put on the wire."""

    content: Optional[str] = None
    reasoning: Optional[str] = None
    tool_calls: Tuple[Dict[str, Any], ...] = ()
    finish_reason: str = "stop"
    completion_tokens: int = 0


def estimate_tokens(text: str) -> int:
    """About one token per word or punctuation mark, per CJK character."""
    return len(re.findall(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]|\w+|[^\w\s]", text))


def prompt_tokens(messages: List[Mapping[str, Any]]) -> int:
    """Message text plus the per-message and reply-priming overhead."""
    total = 3
    for message in messages:
        total += 4 + estimate_tokens(_text(message.get("content")))
    return total


def pieces(text: str) -> List[str]:
    """Text cut into word-sized pieces (each with its leading space), as streamed."""
    return _PIECE.findall(text)


def reply_to(body: Mapping[str, Any], choice: int = 0, *, reason: bool = False) -> Reply:
    """The deterministic answer to a validated request body.

    ``reason`` makes any model think aloud first, as ``*-reasoner`` models do.
    """
    messages = body["messages"]
    last = messages[-1]
    tools = body.get("tools") or []
    tool_choice = body.get("tool_choice", "auto")
    limit = body.get("max_completion_tokens") or body.get("max_tokens")

    metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    if "rawchat_probe_answer" in metadata:
        content = _oracle(messages, metadata)
    elif "rawchat_judge" in metadata:
        content = _judge(_text(last.get("content")))
    elif last.get("role") == "tool":
        content = f"The tool returned: {_text(last.get('content'))}"
    elif messages[0].get("role") == "system" and messages[0].get("content") == Summarize.PROMPT:
        cap = limit if isinstance(limit, int) and limit > 0 else Summarize().summary_tokens
        content = extractive_summary(messages, cap)
    elif tools and tool_choice != "none" and last.get("role") == "user":
        return _call_tool(tools, tool_choice, _text(last.get("content")))
    else:
        user_text = _last_user_text(messages)
        count = len(messages)
        content = (
            f"Hello from the rawchat simulator. I received {count} "
            f"message{'s' if count != 1 else ''} (about {prompt_tokens(messages)} "
            f'prompt tokens); your last message was: "{user_text}".'
        )
        if choice:
            content = f"(choice {choice}) {content}"

    reasoning = None
    if reason or str(body.get("model", "")).endswith("reasoner"):
        length = len(_last_user_text(messages))
        reasoning = f"The user wrote {length} characters. I will describe the request."

    finish = "stop"
    words = pieces(content)
    if isinstance(limit, int) and limit > 0 and len(words) > limit:
        content, finish = "".join(words[:limit]), "length"
        words = words[:limit]
    return Reply(
        content=content,
        reasoning=reasoning,
        finish_reason=finish,
        completion_tokens=len(words),
    )


def _oracle(messages: List[Mapping[str, Any]], metadata: Mapping[str, Any]) -> str:
    """A reader that knows only what it was sent: the answer if the context holds it."""
    context = "\n".join(_text(m.get("content")) + _arguments(m) for m in messages[:-1])
    for value in (metadata.get("rawchat_probe_answer"), metadata.get("rawchat_probe_stale")):
        if isinstance(value, str) and value and value in context:
            return value
    return ABSTAIN_REPLY


def _judge(text: str) -> str:
    """A grader by containment, in the verdict shape the evaluation's judge prompt asks for."""
    try:
        item = json.loads(text)
        question, gold = str(item["question"]), str(item["gold"]).casefold()
        candidate, stale = (
            str(item["candidate"]).casefold(),
            str(item.get("stale") or "").casefold(),
        )
    except (ValueError, KeyError, TypeError):
        return json.dumps({"verdict": "WRONG", "reason": "no question, gold and candidate given"})
    if gold and gold in candidate:
        verdict = "CORRECT"
    elif stale and stale in candidate:
        verdict = "STALE"
    elif "know" in candidate or not candidate.strip():
        verdict = "CORRECT" if not gold else "ABSTAIN"
    else:
        verdict = "WRONG"
    reason = f"graded by containment for: {question[:60]}"
    return json.dumps({"verdict": verdict, "reason": reason}, ensure_ascii=False)


def _arguments(message: Mapping[str, Any]) -> str:
    calls = message.get("tool_calls") or ()
    return "".join(" " + str((c.get("function") or {}).get("arguments", "")) for c in calls)


def _call_tool(tools: List[Any], tool_choice: Any, user_text: str) -> Reply:
    chosen = tools[0]
    if isinstance(tool_choice, dict):
        wanted = (tool_choice.get("function") or {}).get("name")
        chosen = next(
            (t for t in tools if (t.get("function") or {}).get("name") == wanted),
            chosen,
        )
    function = chosen.get("function") or {}
    params = function.get("parameters") or {}
    names = list(params.get("required") or (params.get("properties") or {}).keys())
    arguments = json.dumps({names[0]: user_text} if names else {}, ensure_ascii=False)
    call = {
        "id": "call_sim_0001",
        "type": "function",
        "function": {"name": function.get("name", "tool"), "arguments": arguments},
    }
    return Reply(
        tool_calls=(call,),
        finish_reason="tool_calls",
        completion_tokens=estimate_tokens(arguments) + 3,
    )


def _last_user_text(messages: List[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text(message.get("content"))
    return ""


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""
