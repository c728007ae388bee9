"""Splitting output into capped lines: whatever an agent prints, memory stays bounded."""

from __future__ import annotations

from aios.agents.capture import LineSplitter


def test_lines_across_chunks_and_the_last_one_without_a_newline() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b'{"a":') == []
    assert splitter.feed(b" 1}\nsecond\r\nthi") == ['{"a": 1}', "second"]
    assert splitter.feed(b"rd") == []
    assert splitter.flush() == ["third"]
    assert splitter.flush() == []


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert LineSplitter().feed(b"caf\xc3\xa9 \xff\n") == ["café \ufffd"]


def test_an_overlong_line_is_cut_and_its_rest_dropped() -> None:
    splitter = LineSplitter(max_line=10)
    assert splitter.feed(b"0123456789ABCDEF") == ["0123456789"]
    assert splitter.feed(b"GHIJ" * 1000) == []  # still the same line: dropped
    assert splitter.feed(b"KLM\nnext\n") == ["next"]
    assert splitter.feed(b"x" * 25 + b"\nok\n") == ["xxxxxxxxxx", "ok"]
    assert splitter.overlong == 2
    assert splitter.flush() == []


def test_memory_stays_bounded_whatever_arrives() -> None:
    splitter = LineSplitter(max_line=1024)
    for _ in range(1000):
        splitter.feed(b"y" * 4096)
    assert len(splitter._buffer) <= 1024
