from __future__ import annotations

import subprocess
import sys
from itertools import combinations

import pytest
from PIL import Image, ImageChops

from aios.desktop.icon import (
    GREEN,
    INK,
    ORANGE,
    WHITE,
    IconModel,
    IconState,
    at_size,
    badge_text,
    draw,
    status,
    tooltip,
)

SIZES = (16, 22, 24, 32, 48, 64)
MODELS = {
    IconState.IDLE: IconModel(IconState.IDLE),
    IconState.RUNNING: IconModel(IconState.RUNNING, running=2),
    IconState.ATTENTION: IconModel(IconState.ATTENTION, running=2, failed=1),
    IconState.ERROR: IconModel(IconState.ERROR),
}


def differs(a: Image.Image, b: Image.Image) -> bool:
    return ImageChops.difference(a, b).getbbox(alpha_only=False) is not None


@pytest.mark.parametrize("size", [*SIZES, 128, 256])
@pytest.mark.parametrize("state", list(IconState))
def test_every_state_draws_a_visible_square_icon(state: IconState, size: int) -> None:
    img = draw(MODELS[state], size)
    assert img.mode == "RGBA"
    assert img.size == (size, size)
    # Mostly opaque: the square fills the icon, bar its corners and the gaps round badges.
    assert sum(img.getchannel("A").histogram()[128:]) > size * size * 0.6
    # And not one flat colour: the "A" is there.
    colours = img.getcolors(size * size)
    assert colours is not None
    assert len(colours) > 2


@pytest.mark.parametrize("size", range(1, 16))
@pytest.mark.parametrize("state", list(IconState))
def test_a_tray_smaller_than_the_badge_text_still_gets_an_icon(state: IconState, size: int) -> None:
    # An XEmbed tray window may be a few pixels: the badge's digits are clipped, not a crash.
    assert draw(MODELS[state], size).size == (size, size)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("state", list(IconState))
def test_corners_are_transparent(state: IconState, size: int) -> None:
    img = draw(MODELS[state], size)
    # LANCZOS rings a little past an edge, so "transparent" allows a trace of alpha.
    for corner in ((0, 0), (size - 1, 0), (0, size - 1)):
        assert img.getpixel(corner)[3] < 8, corner  # type: ignore[index]
    # The bottom-right corner carries the badge in some states; the edge midpoints are solid.
    assert img.getpixel((size // 2, 0))[3] == 255  # type: ignore[index]


@pytest.mark.parametrize("size", [16, 32])
def test_states_look_different(size: int) -> None:
    images = {state: draw(model, size) for state, model in MODELS.items()}
    for a, b in combinations(IconState, 2):
        assert differs(images[a], images[b]), (a, b)


def test_running_badge_shows_the_count() -> None:
    ones, fives, twelves = (draw(IconModel(IconState.RUNNING, running=n), 32) for n in (1, 5, 12))
    assert differs(ones, fives)
    assert differs(fives, twelves)
    assert differs(ones, twelves)
    # Past nine the badge reads "9+", so 12 and 40 look the same.
    assert not differs(twelves, draw(IconModel(IconState.RUNNING, running=40), 32))


def test_badge_text() -> None:
    assert [badge_text(n) for n in (1, 9, 10, 99)] == ["1", "9", "9+", "9+"]


def test_drawing_is_deterministic() -> None:
    model = IconModel(IconState.ATTENTION, running=3, failed=1)
    assert not differs(draw(model, 24), draw(model, 24))


@pytest.mark.parametrize(
    ("model", "text"),
    [
        (IconModel(IconState.IDLE), "idle"),
        (IconModel(IconState.RUNNING, running=2), "2 running"),
        (IconModel(IconState.RUNNING, running=2, queued=0), "2 running"),  # no "0 queued"
        (IconModel(IconState.RUNNING, queued=3), "3 queued"),
        (
            IconModel(IconState.ATTENTION, running=2, failed=1),
            "2 running · 1 failed since you last looked",
        ),
        (IconModel(IconState.ATTENTION, failed=3), "3 failed since you last looked"),
        (IconModel(IconState.ATTENTION, needs_you=1), "1 needs you since you last looked"),
        (
            IconModel(IconState.ATTENTION, running=1, queued=2, failed=2, needs_you=2),
            "1 running · 2 queued · 2 failed, 2 need you since you last looked",
        ),
        (IconModel(IconState.ERROR, running=2, failed=1), "service down"),
    ],
)
def test_status_and_tooltip_say_the_same(model: IconModel, text: str) -> None:
    assert status(model) == text
    assert tooltip(model) == f"AIOS — {text}"


# -- legible at panel size (issue 17) ------------------------------------------------------------

PANEL_SIZES = (22, 24)


def luminance(colour: tuple[int, ...]) -> float:
    """WCAG 2 relative luminance of an sRGB colour."""

    def linear(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in colour[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def rgba(img: Image.Image, x: int, y: int) -> tuple[int, ...]:
    value = img.getpixel((x, y))
    assert isinstance(value, tuple)
    return tuple(int(c) for c in value)


def badge_pixels(img: Image.Image, fill: tuple[int, ...]) -> dict[tuple[int, int], tuple[int, ...]]:
    """The pixels inside the badge: the disc of the badge colour's bounding box, less its rim
    (where the badge blends into the clear ring around it)."""
    size = img.width
    solid = [(x, y) for x in range(size) for y in range(size) if img.getpixel((x, y)) == fill]
    assert solid, f"no pixel of the badge colour {fill}"
    x0, x1 = min(x for x, _ in solid), max(x for x, _ in solid) + 1
    y0, y1 = min(y for _, y in solid), max(y for _, y in solid) + 1
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
    return {
        (x, y): rgba(img, x, y)
        for x in range(x0, x1)
        for y in range(y0, y1)
        if (x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2 < (r - 1) ** 2
    }


def ink_box(
    pixels: dict[tuple[int, int], tuple[int, ...]], ink: tuple[int, ...]
) -> tuple[int, int]:
    """Width and height of what is written in ``ink``."""
    inked = [xy for xy, c in pixels.items() if c == ink]
    assert inked, "nothing written on the badge"
    xs, ys = [x for x, _ in inked], [y for _, y in inked]
    return max(xs) - min(xs) + 1, max(ys) - min(ys) + 1


@pytest.mark.parametrize("size", PANEL_SIZES)
@pytest.mark.parametrize("running", [1, 2, 3, 4, 5, 6, 7, 8, 9, 12])
def test_count_badge_is_legible_at_panel_size(size: int, running: int) -> None:
    """The digits are solid white pixels, 7 px tall (the 5 x 7 matrix of small LCDs), on a badge
    colour they contrast with at 7:1 or more, with nothing blurred in between."""
    img = draw(IconModel(IconState.RUNNING, running=running), size)
    pixels = badge_pixels(img, GREEN)
    width, height = ink_box(pixels, WHITE)
    assert height >= 7, f"digits {height} px tall"
    assert width >= (3 if running == 1 else 5), f"digits {width} px wide"
    assert contrast(WHITE, GREEN) >= 7
    smudged = [xy for xy, c in pixels.items() if c not in (WHITE, GREEN)]
    assert not smudged, f"{len(smudged)} blurred pixels on the badge: {smudged[:5]}"
    # The badge is a good share of the icon, the way panels show counts.
    assert len(pixels) >= 0.12 * size * size


@pytest.mark.parametrize("size", [16, *PANEL_SIZES, 32])
def test_every_count_reads_differently_at_panel_size(size: int) -> None:
    images = [draw(IconModel(IconState.RUNNING, running=n), size) for n in range(1, 11)]
    for a, b in combinations(images, 2):
        assert differs(a, b)


@pytest.mark.parametrize("size", PANEL_SIZES)
def test_warning_mark_is_legible_at_panel_size(size: int) -> None:
    """The "!" is solid ink, 7 px tall, on flat orange it contrasts with at 4.5:1 or more."""
    img = draw(IconModel(IconState.ATTENTION, failed=1), size)
    everything = {(x, y): rgba(img, x, y) for x in range(size) for y in range(size)}
    width, height = ink_box(everything, INK)
    assert height >= 7 and width >= 1
    for (x, y), colour in everything.items():
        if colour == INK:  # on the badge, not on its edge
            assert everything[(x - 1, y)] == everything[(x + 1, y)] == ORANGE, (x, y)
    assert contrast(INK, ORANGE) >= 4.5


def test_a_backend_draws_our_icon_afresh_at_its_size() -> None:
    """``at_size``: a panel showing the 64 px icon at 22 px gets the 22 px drawing (digits on
    whole pixels), not the 64 px one scaled down; any other picture is scaled."""
    model = IconModel(IconState.RUNNING, running=3)
    big = draw(model)
    assert not differs(at_size(big, 22), draw(model, 22))
    scaled_down = big.resize((22, 22), Image.Resampling.LANCZOS)
    assert differs(scaled_down, draw(model, 22))
    foreign = Image.new("RGBA", (64, 64), (1, 2, 3, 255))
    assert at_size(foreign, 22).size == (22, 22)


# -- what drawing imports (issue 23) -------------------------------------------------------------

# Every state at panel sizes (xembed draws at its window's size, sni's small pixmaps, the 16 px
# picture a backend is handed), every picture without a count at sni's 48 and 64 px pixmaps,
# then a count at 64 px: the one picture that needs Pillow's font.
DRAWN_BY_THE_TRAY = """
import sys
from aios.desktop.icon import IconModel, IconState, draw

def fonts():
    return " ".join(sorted({"PIL.ImageDraw", "PIL.ImageFont"} & set(sys.modules))) or "-"

counts = [IconModel(IconState.RUNNING, running=n) for n in (1, 9, 12)]
others = [
    IconModel(IconState.IDLE),
    IconModel(IconState.RUNNING, queued=2),
    IconModel(IconState.ATTENTION, running=3, failed=1),
    IconModel(IconState.ERROR),
]
for size in (16, 22, 24, 32):
    for model in counts + others:
        draw(model, size)
for size in (48, 64):
    for model in others:
        draw(model, size)
print(fonts())
draw(counts[0], 64)
print(fonts())
"""


def test_the_tray_draws_its_icon_without_imagedraw_or_fonts() -> None:
    """``PIL.ImageDraw`` brings ``ImageFont`` and FreeType, 1.5 MiB the tray keeps for ever
    (``make bench``, "idle RSS, aios with its tray"): drawing imports them only for a count
    badge's text at 40 px or more, and only then."""
    done = subprocess.run(
        [sys.executable, "-c", DRAWN_BY_THE_TRAY],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split("\n")[:2] == ["-", "PIL.ImageDraw PIL.ImageFont"]
