"""Agent output rendered as HTML: escaped always, colours (16, 256, 24-bit) as classes or data
attributes, progress lines redrawn in place, other escapes dropped."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

from aios.server.ansi import PLAIN, Style, apply_sgr, split_incomplete, strip
from aios.server.live import OutputRenderer
from aios.server.terminal import WRAP, Terminal

ROOT = Path(__file__).resolve().parent.parent
# The generator is a script, not a module of the package: loaded by path.
GENERATOR = runpy.run_path(str(ROOT / "scripts" / "ansi_css.py"))
TARGET, css, palette = GENERATOR["TARGET"], GENERATOR["css"], GENERATOR["palette"]


def render(text: str) -> tuple[str, str]:
    """(completed rows, the open line) for text fed in one piece."""
    terminal = Terminal()
    rows = terminal.feed(text)
    return rows, terminal.tail()


def test_markup_in_output_is_escaped() -> None:
    rows, _ = render('<script>alert(1)</script><img src=x onerror="alert(2)">&\n')
    assert "<script" not in rows and "<img" not in rows
    assert (
        rows == '&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror="alert(2)"&gt;&amp;\n'
    )


def test_basic_colours_become_classes() -> None:
    rows, _ = render("\x1b[1;31merror\x1b[0m ok \x1b[92mgreen\x1b[0m\n")
    assert rows == (
        '<span class="ansi-fg-1 ansi-bold">error</span> ok <span class="ansi-fg-10">green</span>\n'
    )


@pytest.mark.parametrize(
    ("sgr", "span"),
    [
        ("38;5;208", '<span class="ansi-fg-208">'),
        ("48;5;21", '<span class="ansi-bg-21">'),
        ("38:5:196", '<span class="ansi-fg-196">'),
        ("38;5;3", '<span class="ansi-fg-3">'),
        ("38;2;255;135;0", '<span class="ansi-fg-rgb" data-fg="#ff8700">'),
        ("48;2;0;0;0", '<span class="ansi-bg-rgb" data-bg="#000000">'),
        ("38:2::1:2:3", '<span class="ansi-fg-rgb" data-fg="#010203">'),
        ("38:2:1:2:3", '<span class="ansi-fg-rgb" data-fg="#010203">'),
        ("1;38;2;10;20;30;4",
         '<span class="ansi-fg-rgb ansi-bold ansi-underline" data-fg="#0a141e">'),
        ("7", '<span class="ansi-fg-inverse ansi-bg-inverse">'),
        ("31;7", '<span class="ansi-fg-inverse ansi-bg-1">'),
        ("9;3;2", '<span class="ansi-dim ansi-italic ansi-strike">'),
    ],
)  # fmt: skip
def test_256_and_24_bit_colours(sgr: str, span: str) -> None:
    rows, _ = render(f"\x1b[{sgr}mx\x1b[0m\n")
    assert rows == f"{span}x</span>\n"


@pytest.mark.parametrize(
    "sgr",
    ["38;5;256", "38;2;256;0;0", "38;5", "38;2;1;2", "58;5;1", "5", "999"],
)
def test_colours_out_of_range_or_unknown_show_plain(sgr: str) -> None:
    assert render(f"\x1b[{sgr}mx\x1b[0m\n") == ("x\n", "")


def test_sgr_reset_forms() -> None:
    red = apply_sgr(PLAIN, "31")
    assert apply_sgr(red, "") == apply_sgr(red, "0") == apply_sgr(red, ";") == PLAIN
    assert apply_sgr(apply_sgr(red, "1"), "22;39") == PLAIN


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("progress 10%\rprogress 50%\rprogress 100%\n", "progress 100%\n"),  # the last wins
        ("abcdef\rXY\n", "XYcdef\n"),  # a shorter write leaves the rest, as a terminal does
        ("downloading 12345\r\x1b[Kdone\n", "done\n"),  # erase to the end
        ("downloading 12345\r\x1b[0Kdone\n", "done\n"),
        ("abcdef\x1b[2Kxy\n", "      xy\n"),  # erase all: the cursor stays where it was
        ("abcdef\x1b[3D\x1b[1K!\n", "   !ef\n"),  # erase to the cursor (which stays)
        ("spin|\b/\b-\bdone\n", "spindone\n"),
        ("col\x1b[10Gten\x1b[3Dab\n", "col      abn\n"),
        ("a\x1b[3Cb\n", "a   b\n"),
        ("50% [####      ]\r\x1b[2K\x1b[1G100% [##########]\n", "100% [##########]\n"),
        ("line one\r\nline two\r\n", "line one\nline two\n"),
    ],
)
def test_progress_lines_are_redrawn_in_place(text: str, shown: str) -> None:
    assert render(text) == (shown, "")


def test_the_open_line_is_the_tail_until_a_newline() -> None:
    terminal = Terminal()
    assert terminal.feed("done: 1\nworking 10%") == "done: 1\n"
    assert terminal.tail() == "working 10%"
    assert terminal.feed("\r\x1b[32mworking 90%") == ""
    assert terminal.tail() == '<span class="ansi-fg-2">working 90%</span>'
    assert terminal.feed("\n") == '<span class="ansi-fg-2">working 90%</span>\n'
    assert terminal.tail() == ""


@pytest.mark.parametrize(
    "sequence",
    [
        "\x1b[1A",  # up a line: not followed (multi-line displays are out of scope)
        "\x1b[2J",
        "\x1b[H",
        "\x1b]0;window title\x07",
        "\x1b]8;;http://x\x1b\\",
        "\x1b[?25l",
        "\x1b(B",  # charset: what `tput sgr0` prints before ESC[m
        "\x1b7",
        "\x1bP1$r\x1b\\",
        "\x07",
        "\x00",
    ],
)
def test_other_escapes_are_removed(sequence: str) -> None:
    assert render(f"a{sequence}b\n") == ("ab\n", "")


def test_strip_leaves_plain_text() -> None:
    text = "\x1b[1;38;5;208mbold\x1b[0m\tx\r\n\x1b]0;title\x07y\x1b[2K\x07\n"
    assert strip(text) == "bold\tx\ny\n"


def test_a_line_longer_than_the_wrap_width_continues_on_a_new_row() -> None:
    terminal = Terminal()
    rows = terminal.feed("x" * (WRAP + 5))
    assert rows == "x" * WRAP and terminal.tail() == "xxxxx"
    assert terminal.wraps == 1
    terminal.feed("\rY")  # back to the start of the row the cursor is on, as in a terminal
    assert terminal.tail() == "Yxxxx"


@pytest.mark.parametrize(
    ("text", "kept", "held"),
    [
        ("plain", "plain", ""),
        ("abc\x1b", "abc", "\x1b"),
        ("abc\x1b[1;3", "abc", "\x1b[1;3"),
        ("abc\x1b[38:2:", "abc", "\x1b[38:2:"),
        ("abc\x1b[1m", "abc\x1b[1m", ""),
        ("abc\x1b]0;tit", "abc", "\x1b]0;tit"),
        ("abc\x1b]0;title\x07", "abc\x1b]0;title\x07", ""),
        ("abc\x1b(", "abc", "\x1b("),
    ],
)
def test_split_incomplete_holds_back_a_cut_sequence(text: str, kept: str, held: str) -> None:
    assert split_incomplete(text) == (kept, held)


OUTPUT = (
    "plain line\n"
    "\x1b[1;38;5;208mbold orange\x1b[0m and \x1b[48;2;1;2;3mdark\x1b[0m\n"
    "é and 漢字 in UTF-8\n"
    "\x1b[33mstep 1/3\rstep 2/3\rstep 3/3\x1b[K\x1b[0m\n"
    + "w" * (WRAP + 10)
    + "\r\x1b[32mprogress 1%\rprogress 42%"
).encode()


def whole(data: bytes) -> str:
    renderer = OutputRenderer()
    return renderer.render(data) + renderer.tail()


def replayed(pieces: list[bytes]) -> str:
    """What a page's #output holds after these chunks: rows appended, the open line replaced."""
    renderer = OutputRenderer()
    rows = ""
    for piece in pieces:
        rows += renderer.render(piece)
    return rows + renderer.tail()


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 4096])
def test_chunking_does_not_change_what_is_shown(size: int) -> None:
    pieces = [OUTPUT[i : i + size] for i in range(0, len(OUTPUT), size)]
    assert replayed(pieces) == whole(OUTPUT)


@pytest.mark.parametrize("cut", [0, 11, 50, 70, 95, 130, len(OUTPUT) - 5, len(OUTPUT)])
def test_a_stream_resumes_exactly_where_the_page_left_off(cut: int) -> None:
    """The page renders the first ``cut`` bytes; its stream starts from page.state() and redraws
    the open line, without repeating the rows the page already has."""
    page = OutputRenderer()
    shown = page.render(OUTPUT[:cut])
    state = page.state()
    stream = OutputRenderer.resume(int(state["offset"]), state["style"], int(state["wraps"]))
    assert stream.position <= cut
    rows = stream.render(OUTPUT[stream.position :])
    assert shown + rows + stream.tail() == whole(OUTPUT)


def test_style_state_round_trips_and_is_validated() -> None:
    style = Style(fg="#ff8700", bg="21", bold=True, strike=True, inverse=True)
    assert Style.from_state(style.to_state()) == style
    for bad in ('["\\"><b>", null, false, false, false, false, false, false]', "[1]", "{}", "x"):
        with pytest.raises(ValueError):
            Style.from_state(bad)


def test_the_style_sheet_is_generated_and_covers_every_class() -> None:
    assert TARGET.read_text() == css()
    text = TARGET.read_text()
    for index in range(256):
        assert f".ansi-fg-{index} {{" in text and f".ansi-bg-{index} {{" in text
    assert palette(16) == "#000000" and palette(196) == "#ff0000" and palette(231) == "#ffffff"
    assert palette(232) == "#080808" and palette(255) == "#eeeeee"
    assert not re.search(r"style=", text)
