"""Seeded synthetic conversations with planted facts, to measure what trimming forgets.

A ``Dialogue`` is a multi-turn chat, a pure function of its seed, length and
language (English or Chinese): a first turn that states the task, filler
turns about unrelated topics, near-miss turns that use a fact's words but
not its value, and planted facts of five kinds, each at three depths
(early: the first fifth of the turns, middle: the middle fifth, recent:
the last sixth):

* ``static``: "my order number is 7Q-4411";
* ``updated``: an old value, then later a new one (the old is *stale*);
* ``constraint``: "never reply in French";
* ``number``: an exact amount, "4825.37 euros";
* ``tool``: a value that arrives only inside a tool result (an assistant
  ``tool_calls`` message, then the ``tool`` message answering it).

Each fact has a probe: a question asked after the last turn, whose right
answer is the fact's value (for ``updated``, the new one). Three more
probes ask for things never said (kind ``absent``): the right answer is
"I don't know". Probes are plain questions, as a user would ask them; the
answer travels beside them (``Fact.answer``), never inside the chat.
The measure follows LongMemEval's shape (history first, then questions;
https://arxiv.org/abs/2410.10813), at a size that runs offline in seconds.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

__all__ = ["DEPTHS", "KINDS", "LANGUAGES", "Dialogue", "Fact", "generate"]

KINDS = ("static", "updated", "constraint", "number", "tool")
DEPTHS = ("early", "middle", "recent")
LANGUAGES = ("en", "zh")

#: Where each depth's facts go, as shares of the conversation's turns.
_BANDS = {"early": (0.03, 0.2), "middle": (0.4, 0.6), "recent": (0.83, 1.0)}


@dataclass(frozen=True)
class Fact:
    """One planted fact and its probe.

    ``answer`` is the right answer ("" when the fact was never given, and
    the right answer is to say so); ``stale`` the outdated value of an
    updated fact. ``turn`` is where the (new) value was said, ``stale_turn``
    where the old one was (-1: nowhere).
    """

    id: str
    kind: str
    depth: str
    question: str
    answer: str
    stale: str = ""
    turn: int = -1
    stale_turn: int = -1


@dataclass(frozen=True)
class Dialogue:
    """A synthetic conversation: a system prompt, turns of wire messages, the facts."""

    seed: int
    language: str
    system: str
    turns: Tuple[Tuple[Dict[str, Any], ...], ...]
    facts: Tuple[Fact, ...]

    @property
    def name(self) -> str:
        return f"{self.language}-{self.seed}-{len(self.turns)}"

    @property
    def messages(self) -> List[Dict[str, Any]]:
        """Every turn's messages, in order (without the system prompt)."""
        return [dict(m) for turn in self.turns for m in turn]

    @staticmethod
    def probe(fact: Fact) -> Dict[str, Any]:
        """The user message that asks for ``fact``."""
        return {"role": "user", "content": fact.question}


def generate(seed: int, turns: int = 60, language: str = "en") -> Dialogue:
    """The conversation for ``seed``: ``turns`` turns (at least 40) in ``language``."""
    if language not in LANGUAGES:
        raise ValueError(f"language is one of {', '.join(LANGUAGES)}, not {language!r}")
    if turns < 40:
        raise ValueError("a conversation needs at least 40 turns to place facts at three depths")
    rng = random.Random(f"{language}/{seed}/{turns}")
    text = _TEXT[language]
    slots = _place(rng, turns)
    script: Dict[int, Tuple[Dict[str, Any], ...]] = {0: _exchange(*text["task"])}
    facts: List[Fact] = []
    pools = {name: rng.sample(pool, len(pool)) for name, pool in text["pools"].items()}
    for kind in KINDS:
        for depth in DEPTHS:
            at, before, near = slots[(kind, depth)]
            fact, planted, subject = _plant(rng, text, pools, kind, depth, at, before)
            facts.append(fact)
            script.update(planted)
            script[near] = _exchange(*(_fill(t, key=subject) for t in text["near_miss"]))
    for i, key in enumerate(pools["absent"][:3]):
        question = _fill(text["static"][2], key=key)
        facts.append(Fact(f"absent-{i + 1}", "absent", "never", question, ""))
    for turn in range(turns):
        if turn not in script:
            topic = rng.choice(text["topics"])
            ask = rng.choice(text["filler_ask"]).format(topic=topic)
            said = rng.sample(text["filler_say"], 3)
            script[turn] = _exchange(ask, text["joiner"].join(s.format(topic=topic) for s in said))
    return Dialogue(
        seed=seed,
        language=language,
        system=text["system"],
        turns=tuple(script[t] for t in range(turns)),
        facts=tuple(facts),
    )


def _place(rng: random.Random, turns: int) -> Dict[Tuple[str, str], Tuple[int, int, int]]:
    """For each (kind, depth): the fact's turn, its old value's turn (updated
    facts), and a near-miss turn; all distinct, none the first turn."""
    taken = {0}

    def pick(low: int, high: int) -> int:
        free = [t for t in range(max(low, 1), max(high, low + 1)) if t not in taken]
        if not free:
            free = [t for t in range(1, turns) if t not in taken]
        chosen = rng.choice(free)
        taken.add(chosen)
        return chosen

    places = {}
    for depth in DEPTHS:
        low, high = (int(share * turns) for share in _BANDS[depth])
        for kind in KINDS:
            at = pick(low + (2 if kind == "updated" else 0), high)
            before = pick(1, at) if kind == "updated" else -1  # at once, while turns are free
            if before > at:  # no turn free before it: the two swap
                at, before = before, at
            places[(kind, depth)] = (at, before)
    return {where: (at, before, pick(1, turns)) for where, (at, before) in places.items()}


def _plant(
    rng: random.Random,
    text: Dict[str, Any],
    pools: Dict[str, List[Any]],
    kind: str,
    depth: str,
    at: int,
    before: int,
) -> Tuple[Fact, Dict[int, Tuple[Dict[str, Any], ...]], str]:
    """The fact, its turns by number, and what a near-miss turn about it talks of."""
    ident = f"{kind}-{depth}"
    ack = text["ack"]
    if kind == "static":
        key, make = pools["static"].pop()
        value = _value(rng, make)
        say, _, ask = text["static"]
        fact = Fact(ident, kind, depth, _fill(ask, key=key), value, turn=at)
        return fact, {at: _exchange(_fill(say, key=key, value=value), ack)}, key
    if kind == "updated":
        key, values = pools["updated"].pop()
        old, new = rng.sample(values, 2)
        first, then, ask = text["updated"]
        fact = Fact(ident, kind, depth, _fill(ask, key=key), new, old, at, before)
        return (
            fact,
            {
                before: _exchange(_fill(first, key=key, value=old), ack),
                at: _exchange(_fill(then, key=key, value=new), ack),
            },
            key,
        )
    if kind == "constraint":
        say, ask, values = pools["constraint"].pop()
        value = rng.choice(values)
        fact = Fact(ident, kind, depth, ask, value, turn=at)
        return fact, {at: _exchange(_fill(say, value=value), ack)}, text["near_subject"][kind]
    if kind == "number":
        thing = pools["things"].pop()
        value = f"{rng.randint(1000, 99999)}.{rng.randint(10, 99)}"
        say, ask = text["number"]
        fact = Fact(ident, kind, depth, _fill(ask, key=thing), value, turn=at)
        return fact, {at: _exchange(_fill(say, key=thing, value=value), ack)}, thing
    parcel = f"P{rng.randint(100000, 999999)}"
    depot = pools["depots"].pop()
    ask_user, result, answer, ask = text["tool"]
    call = {
        "id": f"call_{at:04d}",
        "type": "function",
        "function": {"name": "track_parcel", "arguments": json.dumps({"parcel": parcel})},
    }
    output = json.dumps(
        {"parcel": parcel, "status": "waiting", "location": _fill(result, value=depot)},
        ensure_ascii=False,
    )
    turn = (
        {"role": "user", "content": _fill(ask_user, key=parcel)},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": output},
        {"role": "assistant", "content": answer},
    )
    fact = Fact(ident, kind, depth, _fill(ask, key=parcel), depot, turn=at)
    return fact, {at: turn}, text["near_subject"][kind]


def _value(rng: random.Random, shape: str) -> str:
    """A code in ``shape``: ``9`` a digit, ``A`` a capital letter, others as they are."""
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    return "".join(
        str(rng.randint(0, 9)) if c == "9" else rng.choice(letters) if c == "A" else c
        for c in shape
    )


def _fill(template: str, **values: str) -> str:
    return template.format(**values)


def _exchange(user: str, assistant: str) -> Tuple[Dict[str, Any], ...]:
    return ({"role": "user", "content": user}, {"role": "assistant", "content": assistant})


def _pairs(keys: Sequence[str], shapes: Sequence[str]) -> List[Tuple[str, str]]:
    return list(zip(keys, shapes))


_SHAPES = ("9A-9999", "AA999", "AAA9A9", "99-AAA-9", "A9999A", "9999-99")

_TEXT: Dict[str, Dict[str, Any]] = {
    "en": {
        "system": (
            "You are a helpful assistant. When asked about details mentioned earlier, "
            "answer with the detail only; if it was never mentioned, say you don't know."
        ),
        "task": (
            "I have a busy month ahead and will mention details as we chat; "
            "please keep track of them.",
            "Of course. I will keep track of the details you mention.",
        ),
        "ack": "Noted, I will remember that.",
        "joiner": " ",
        "static": (
            "By the way, my {key} is {value}.",
            "",
            "What is my {key}?",
        ),
        "updated": (
            "My {key} is {value}.",
            "Change of plan: my {key} is now {value}.",
            "What is my {key} now?",
        ),
        "number": (
            "The budget for the {key} is exactly {value} euros.",
            "What exactly is the budget for the {key}?",
        ),
        "tool": (
            "Could you check where parcel {key} is?",
            "{value} depot",
            "I checked the tracking system: the parcel is waiting at a depot.",
            "At which depot is parcel {key} waiting?",
        ),
        "near_miss": (
            "Out of curiosity, how is a {key} usually decided?",
            "It depends on who sets it; there is no single rule for a {key}.",
        ),
        "near_subject": {"constraint": "house rule", "tool": "parcel depot"},
        "pools": {
            "static": _pairs(
                (
                    "order number",
                    "locker code",
                    "booking reference",
                    "membership ID",
                    "licence plate",
                    "employee number",
                ),
                _SHAPES,
            ),
            "updated": [
                ("shipping city", ("Porto", "Lyon", "Graz", "Tampere", "Malmo", "Ghent")),
                ("meeting day", ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")),
                ("seat preference", ("aisle", "window", "middle", "front row")),
                ("hotel", ("Hotel Aurora", "Hotel Meridian", "Hotel Solstice", "Hotel Vega")),
            ],
            "constraint": [
                (
                    "Please remember: never reply in {value}.",
                    "Which language must you never reply in?",
                    ("French", "German", "Italian", "Dutch", "Polish"),
                ),
                (
                    "Always address me as {value}.",
                    "How must you address me?",
                    ("Captain Lin", "Doctor Osei", "Professor Varga", "Chef Moreau"),
                ),
                (
                    "Never recommend anything made by {value}.",
                    "Which brand must you never recommend?",
                    ("Norvik", "Tallowmere", "Brisaline", "Quenford"),
                ),
            ],
            "things": [
                "kitchen renovation",
                "team offsite",
                "garden project",
                "conference booth",
                "school trip",
                "wedding dinner",
            ],
            "depots": ["Harwick", "Dunmore", "Castleford", "Ashby", "Kelso", "Rothbury"],
            "absent": ["passport number", "dentist's name", "wifi password", "gym locker"],
        },
        "topics": [
            "tides",
            "bread baking",
            "chess openings",
            "volcanoes",
            "typography",
            "honey bees",
            "jazz harmony",
            "glaciers",
            "origami",
            "lighthouses",
            "sourdough starters",
            "bird migration",
        ],
        "filler_ask": [
            "Can you tell me something about {topic}?",
            "I have been reading about {topic}. What should a beginner know?",
            "What is the most surprising thing about {topic}?",
        ],
        "filler_say": [
            "Honestly, {topic} is a broader subject than it first seems.",
            "Most people start with the basics and build up from there.",
            "A good first step is a short introduction and one small exercise.",
            "Many find that {topic} rewards patience more than talent.",
            "The history behind {topic} explains a lot of its habits.",
            "Experts still disagree about some details of {topic}.",
        ],
    },
    "zh": {
        "system": (
            "你是一个乐于助人的助手。被问到之前提到的细节时，只回答那个细节；"
            "如果从未提到，就说你不知道。"
        ),
        "task": (
            "这个月我会很忙，聊天时会顺便提到一些细节，请帮我记住。",
            "好的，我会记住你提到的细节。",
        ),
        "ack": "好的，我记住了。",
        "joiner": "",
        "static": ("顺便说一下，我的{key}是{value}。", "", "我的{key}是什么？"),
        "updated": (
            "我的{key}是{value}。",
            "计划有变：我的{key}现在改成{value}了。",
            "我的{key}现在是什么？",
        ),
        "number": ("{key}的预算正好是{value}元。", "{key}的预算到底是多少？"),
        "tool": (
            "帮我查一下包裹{key}在哪里？",
            "{value}仓库",
            "我查了物流系统：包裹正在一个仓库等待。",
            "包裹{key}在哪个仓库等待？",
        ),
        "near_miss": (
            "顺便问一下，{key}一般是怎么确定的？",
            "这取决于具体情况，{key}没有统一的规则。",
        ),
        "near_subject": {"constraint": "规矩", "tool": "包裹仓库"},
        "pools": {
            "static": _pairs(
                ("订单号", "储物柜密码", "预订编号", "会员卡号", "车牌号", "工号"), _SHAPES
            ),
            "updated": [
                ("收货城市", ("上海", "成都", "杭州", "西安", "青岛", "厦门")),
                ("开会的日子", ("星期一", "星期二", "星期三", "星期四", "星期五")),
                ("座位偏好", ("靠过道", "靠窗", "中间", "第一排")),
                ("酒店", ("晨光酒店", "子午酒店", "至日酒店", "织女酒店")),
            ],
            "constraint": [
                (
                    "请记住：永远不要用{value}回复我。",
                    "你永远不能用哪种语言回复我？",
                    ("法语", "德语", "意大利语", "荷兰语"),
                ),
                (
                    "请一直称呼我为{value}。",
                    "你必须怎么称呼我？",
                    ("林船长", "王老师", "陈医生", "赵主厨"),
                ),
                (
                    "永远不要推荐{value}的任何产品。",
                    "你永远不能推荐哪个品牌？",
                    ("诺维克", "塔洛米尔", "布里萨", "昆福德"),
                ),
            ],
            "things": ["厨房装修", "团队团建", "花园项目", "展会展位", "学校春游", "婚宴"],
            "depots": ["北仓", "南湖", "西岭", "东港", "青石", "白沙"],
            "absent": ["护照号码", "牙医的名字", "无线网络密码", "健身房柜号"],
        },
        "topics": [
            "潮汐",
            "面包烘焙",
            "国际象棋开局",
            "火山",
            "字体设计",
            "蜜蜂",
            "爵士和声",
            "冰川",
            "折纸",
            "灯塔",
            "酸面种",
            "候鸟迁徙",
        ],
        "filler_ask": [
            "能给我讲讲{topic}吗？",
            "我最近在看关于{topic}的书，初学者应该知道什么？",
            "关于{topic}，最让人意外的是什么？",
        ],
        "filler_say": [
            "说实话，{topic}是一个比看上去更广的话题。",
            "大多数人从基础开始，一步步深入。",
            "一个好的开始是读一篇简短的介绍，再做一个小练习。",
            "很多人发现{topic}更需要耐心而不是天赋。",
            "{topic}背后的历史解释了它的很多习惯。",
            "专家们对{topic}的一些细节至今仍有争论。",
        ],
    },
}
