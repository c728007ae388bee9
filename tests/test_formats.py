"""What every format promises: the registry, the shared toolkit, every scenario read without a
raw JSON object in the log, and no input whatever (truncated, mistyped, missing, huge) able to
make a reducer raise or carry a wrong type into what the run knows."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from aios.agents.formats import FORMATS, TEXT, Knowledge, base, get
from aios.agents.formats.base import AuthState
from aios.formatting import duration
from aios.runs import Activity, Denial, FailureKind, Permission, Tokens
from tests.fakes.agent import STREAMS, Scenario
from tests.replay import FORMAT_OF, raw_json_in, reducer_for, replay

SCENARIOS = sorted(path.stem for path in STREAMS.glob("*.json"))
STRUCTURED = ("claude", "codex", "gemini")


def test_the_registry() -> None:
    assert set(FORMATS) == {"text", *FORMAT_OF.values()}
    assert get("text") is TEXT and TEXT.reducer is None
    for name in FORMAT_OF.values():
        fmt = get(name)
        assert fmt.name == name
        assert fmt.reducer is not None and fmt.auth is not None
        assert fmt.permissions is not None and set(fmt.permissions) == set(Permission)
        assert fmt.hint(Knowledge(), 0) is None  # nothing known, nothing to say
    assert get("aider").structured is False


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_scenario_reads_as_text_not_json(name: str) -> None:
    run = replay(name)
    assert not raw_json_in(run.text)
    assert run.knowledge.malformed == 0
    assert all(piece.endswith("\n") for piece in run.text.splitlines(keepends=True))
    assert_well_typed(run.knowledge)
    if run.exit_code not in (None, 0):
        assert run.knowledge.failure, "a failed exit always says why"
        assert run.knowledge.failure_kind is not None
        assert run.hint, "and a known failure says what to do"


def test_a_line_that_is_not_a_json_object_is_counted_and_shown_as_it_is() -> None:
    for cli in STRUCTURED:
        _, reducer = reducer_for(cli)
        assert reducer.stdout("Warning: something odd") == "Warning: something odd\n"
        assert reducer.stdout("[1, 2]") == "[1, 2]\n"
        assert reducer.stdout("") == "" and reducer.stdout("   ") == ""
        assert reducer.knowledge.malformed == 2, cli


# Fuzzing: deterministic (seeded), and every answer checked for its type.

ODD_VALUES: list[Any] = [None, True, 0, -1, 2.5, "", "x", [], {}, [1, "a"], {"a": {"b": []}}]
HUGE = "é" * 200_000


def assert_well_typed(k: Knowledge) -> None:
    assert k.session_id is None or isinstance(k.session_id, str)
    assert k.model is None or isinstance(k.model, str)
    assert k.tokens is None or (
        isinstance(k.tokens, Tokens)
        and all(isinstance(getattr(k.tokens, f), int) for f in ("input", "output", "cached"))
    )
    assert k.cost_usd is None or isinstance(k.cost_usd, float)
    assert k.num_turns is None or (isinstance(k.num_turns, int) and k.num_turns is not True)
    assert isinstance(k.denials, tuple)
    assert all(
        isinstance(d, Denial) and isinstance(d.tool, str) and isinstance(d.summary, str)
        for d in k.denials
    )
    assert k.activity is None or isinstance(k.activity, Activity)
    assert k.activity_detail is None or isinstance(k.activity_detail, str)
    assert k.failure is None or (isinstance(k.failure, str) and len(k.failure) <= 500)
    assert k.failure_kind is None or isinstance(k.failure_kind, FailureKind)
    assert isinstance(k.malformed, int)


def events(cli: str) -> list[dict[str, Any]]:
    found = []
    for name in SCENARIOS:
        if name.startswith(f"{cli}-"):
            found += [json.loads(line) for line in Scenario(name).out]
    return found


def variants(value: Any, rng: random.Random, depth: int = 0) -> Iterator[Any]:
    """The value with one part replaced by something of another type, or removed."""
    if isinstance(value, dict) and depth < 4:
        for key in value:
            for odd in rng.sample(ODD_VALUES, 4):
                yield {**value, key: odd}
            yield {k: v for k, v in value.items() if k != key}
            for inner in variants(value[key], rng, depth + 1):
                yield {**value, key: inner}
    elif isinstance(value, list) and value and depth < 4:
        for i, item in enumerate(value[:3]):
            for inner in variants(item, rng, depth + 1):
                yield [*value[:i], inner, *value[i + 1 :]]
        yield value * 50


def feed(cli: str, line: str, stream: str = "out") -> Knowledge:
    fmt, reducer = reducer_for(cli)
    text = reducer.stdout(line) if stream == "out" else reducer.stderr(line)
    assert isinstance(text, str)
    reducer.exited(rng_code(line))
    assert isinstance(reducer.ending(), str)
    assert_well_typed(reducer.knowledge)
    hint = fmt.hint(reducer.knowledge, rng_code(line))
    assert hint is None or isinstance(hint, str)
    return reducer.knowledge


def rng_code(line: str) -> int:
    return (0, 1, 41, 55, 130)[len(line) % 5]


@pytest.mark.parametrize("cli", STRUCTURED)
def test_mistyped_and_missing_fields_never_raise(cli: str) -> None:
    rng = random.Random(f"aios-{cli}")
    count = 0
    for event in events(cli):
        for variant in variants(event, rng):
            feed(cli, json.dumps(variant))
            count += 1
    assert count > 300  # the scenarios give plenty to mistype


@pytest.mark.parametrize("cli", STRUCTURED)
def test_truncated_lines_are_counted_as_malformed(cli: str) -> None:
    for event in events(cli):
        line = json.dumps(event)
        for cut in {1, len(line) // 3, len(line) // 2, len(line) - 1}:
            assert feed(cli, line[:cut]).malformed == 1


@pytest.mark.parametrize("cli", STRUCTURED)
def test_one_reducer_survives_a_whole_garbled_stream(cli: str) -> None:
    rng = random.Random(f"garbled-{cli}")
    fmt, reducer = reducer_for(cli)
    lines = [json.dumps(e) for e in events(cli)] * 3
    rng.shuffle(lines)
    for i, line in enumerate(lines):
        garbled = line if i % 4 else line[: rng.randrange(len(line))]
        reducer.stdout(garbled)
        reducer.stderr(garbled[::-1])
    reducer.exited(1)
    reducer.ending()
    assert_well_typed(reducer.knowledge)
    assert isinstance(fmt.hint(reducer.knowledge, 1), str | None)


def tool_use(name: str, command: str) -> dict[str, Any]:
    return {"type": "tool_use", "name": name, "input": {"command": command}}


ODD_EVENTS: list[dict[str, Any]] = [
    {"type": HUGE},
    {"type": "assistant", "message": {"content": [tool_use(HUGE, HUGE)]}},
    {"type": "item.started", "item": {"type": "command_execution", "command": HUGE}},
    {"type": "tool_use", "tool_name": "x", "parameters": {"command": HUGE}},
    {"type": "result", "usage": {"input_tokens": 10**30}, "total_cost_usd": 1e308},
    {"type": "result", "duration_ms": 10**400, "total_cost_usd": 10**400, "num_turns": 10**400},
    {"type": "result", "status": "error", "stats": {"input_tokens": -5, "cached": 10}},
    {"type": "turn.completed", "usage": {"input_tokens": True, "output_tokens": "7"}},
    {"type": "system", "subtype": "api_retry", "attempt": [], "retry_delay_ms": "soon"},
]
ODD_LINES = [
    HUGE,
    '{"type": "result", "total_cost_usd": NaN, "num_turns": Infinity}',
    "\x00\x1b[31m\x1b]0;title\x07\ufffd\ud7ff",
    "Tokens: 99999999999999999999M sent, 1.2.3k received.",
    "Tokens: " + "9" * 400 + " sent, 1 received.",
    "Cost: $1.2.3 message, $" + "9" * 400 + " session.",
    "litellm.: nothing",
    "Retrying in NaN seconds...",
    "Waiting up to 9999999999999 minutes for you to finish in the browser...",
    "Attempt 99999999999999999999 failed. Retrying with backoff...",
    "Reconnecting... 3/ (x)",
]


@pytest.mark.parametrize("cli", [*STRUCTURED, "aider"])
def test_huge_and_strange_input_never_raises(cli: str) -> None:
    for line in [*map(json.dumps, ODD_EVENTS), *ODD_LINES]:
        knowledge = feed(cli, line)
        if cli in STRUCTURED:
            feed(cli, line, stream="err")
        assert knowledge.cost_usd is None or knowledge.cost_usd < float("inf")


def test_a_tool_call_with_a_huge_argument_stays_on_one_short_line() -> None:
    _, reducer = reducer_for("claude")
    event = {"type": "assistant", "message": {"content": [tool_use("Bash", "x" * 100_000)]}}
    text = reducer.stdout(json.dumps(event))
    assert text.count("\n") == 1 and len(text) < 200


# The shared toolkit.


def test_fold_shows_a_few_lines_and_counts_the_rest() -> None:
    assert base.fold("") == ""
    assert base.fold("one") == "\x1b[2m  └ one\x1b[0m\n"
    folded = base.fold("a\nb\nc\nd\ne\n")
    assert folded == "\x1b[2m  └ a\n    b\n    c\n    … +2 lines\x1b[0m\n"
    assert base.fold_error("bad").startswith("\x1b[31m  └ bad")
    long_line = base.fold("y" * 1000)
    assert len(long_line) < base.RESULT_WIDTH + 20 and "…" in long_line


def test_tool_call_outcome_and_duration() -> None:
    assert base.tool_call("Bash", "npm test") == "\x1b[1;36m● Bash(npm test)\x1b[0m\n"
    assert base.tool_call("Read") == "\x1b[1;36m● Read\x1b[0m\n"
    assert base.outcome(None, "3 turns", "", "12.3s") == "\x1b[32m✓ done · 3 turns · 12.3s\x1b[0m\n"
    assert base.outcome("no key") == "\x1b[31m✗ no key\x1b[0m\n"
    assert [duration(s, precise=True) for s in (0.5127, 12.345, 37.02, 189.4, 120)] == [
        "0.5s",
        "12.3s",
        "37.0s",
        "3m 09s",
        "2m 00s",
    ]
    assert duration(37.02) == "37s"
    assert base.tokens_text(None) == ""
    assert base.tokens_text(Tokens(100, 5, 0)) == "100 tokens in, 5 out"


def test_typed_reads() -> None:
    assert [base.int_of(v) for v in (3, 3.0, 3.5, True, "3", None)] == [
        3,
        3,
        None,
        None,
        None,
        None,
    ]
    assert [base.float_of(v) for v in (1, 0.5, True, float("nan"), float("inf"), "1")] == [
        1.0,
        0.5,
        None,
        None,
        None,
        None,
    ]
    assert base.str_of(5) == "" and base.dict_of([]) == {} and base.list_of({}) == []


def test_auth_states_are_the_api_words() -> None:
    assert [str(s) for s in AuthState] == ["logged_in", "not_logged_in", "unknown"]
