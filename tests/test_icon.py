from __future__ import annotations

from itertools import combinations

import pytest
from PIL import Image, ImageChops

from aios.icon import IconModel, IconState, badge_text, draw, tooltip

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
        (IconModel(IconState.IDLE), "AIOS — idle"),
        (IconModel(IconState.RUNNING, running=2), "AIOS — 2 running"),
        (IconModel(IconState.ATTENTION, running=2, failed=1), "AIOS — 2 running, 1 failed"),
        (IconModel(IconState.ATTENTION, failed=3), "AIOS — 3 failed"),
        (IconModel(IconState.ERROR, running=2, failed=1), "AIOS — service down"),
    ],
)
def test_tooltip(model: IconModel, text: str) -> None:
    assert tooltip(model) == text
