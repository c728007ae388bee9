"""Agent output rendered as HTML: escaped always, colours as classes, other escapes dropped."""

from __future__ import annotations

import pytest

from aios.server.ansi import PLAIN, split_incomplete, strip, to_html


def test_markup_in_output_is_escaped() -> None:
    html, _ = to_html('<script>alert(1)</script><img src=x onerror="alert(2)">&')
    assert "<script" not in html and "<img" not in html
    assert html == '&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror="alert(2)"&gt;&amp;'


def test_colours_become_classes() -> None:
    html, style = to_html("\x1b[1;31merror\x1b[0m ok \x1b[92mgreen")
    assert html == (
        '<span class="ansi-fg-1 ansi-bold">error</span> ok <span class="ansi-fg-10">green</span>'
    )
    assert style.fg == "10"


def test_style_carries_over_chunks() -> None:
    _, style = to_html("\x1b[34mblue ")
    html, _ = to_html("still blue", style)
    assert html == '<span class="ansi-fg-4">still blue</span>'


@pytest.mark.parametrize(
    "sequence",
    [
        "\x1b[2K",
        "\x1b[1A",
        "\x1b]0;window title\x07",
        "\x1b]8;;http://x\x1b\\",
        "\x1b[?25l",
        "\x07",
    ],
)
def test_other_escapes_are_removed(sequence: str) -> None:
    html, style = to_html(f"a{sequence}b")
    assert html == "ab" and style == PLAIN
    assert strip(f"a{sequence}b") == "ab"


def test_truecolour_is_dropped_not_inlined() -> None:
    html, _ = to_html("\x1b[38;2;255;0;0mred\x1b[0m")
    assert html == "red" and "style" not in html


@pytest.mark.parametrize(
    ("text", "kept", "held"),
    [
        ("plain", "plain", ""),
        ("abc\x1b", "abc", "\x1b"),
        ("abc\x1b[1;3", "abc", "\x1b[1;3"),
        ("abc\x1b[1m", "abc\x1b[1m", ""),
        ("abc\x1b]0;tit", "abc", "\x1b]0;tit"),
        ("abc\x1b]0;title\x07", "abc\x1b]0;title\x07", ""),
    ],
)
def test_split_incomplete_holds_back_a_cut_sequence(text: str, kept: str, held: str) -> None:
    assert split_incomplete(text) == (kept, held)
