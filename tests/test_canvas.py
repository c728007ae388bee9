"""``aios.desktop.canvas`` paints what ``PIL.ImageDraw`` paints for the same shapes, pixel for
pixel, in the installed Pillow: it makes the same calls to Pillow's drawing core, which is not a
documented interface, so a Pillow that changes either shows up here first."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from PIL import Image, ImageChops, ImageDraw

from aios.desktop.canvas import Box, Canvas, Point

SIZE = 96
BLUE = (59, 91, 219, 255)
CLEAR = (0, 0, 0, 0)
TRIANGLES = [
    [(60.0, 20.5), (90.0, 80.0), (30.0, 80.0)],  # the warning badge's, clockwise
    [(60.0, 20.5), (30.0, 80.0), (90.0, 80.0)],  # the other way round
    [(10.3, 12.7), (85.2, 40.1), (20.9, 88.4)],
]


def both(
    ours: Callable[[Canvas], None], pillows: Callable[[ImageDraw.ImageDraw], None]
) -> tuple[Image.Image, Image.Image]:
    """The same picture painted by each, on a half-covered background so clearing shows."""
    a, b = (Image.new("RGBA", (SIZE, SIZE), BLUE) for _ in range(2))
    for img in (a, b):
        img.paste(CLEAR, (0, 0, SIZE // 2, SIZE))
    ours(Canvas(a))
    pillows(ImageDraw.Draw(b))
    return a, b


def assert_same(a: Image.Image, b: Image.Image) -> None:
    assert ImageChops.difference(a, b).getbbox(alpha_only=False) is None


@pytest.mark.parametrize(
    ("box", "radius"),
    [
        ((0, 0, 95, 95), 21.12),
        ((0, 0, 95, 95), 5),
        ((3.4, 7.6, 80.5, 60.2), 12.3),
        ((0, 0, 63, 63), 14.08),
    ],
)
def test_rounded_rectangle(box: Box, radius: float) -> None:
    assert_same(
        *both(
            lambda c: c.rounded_rectangle(box, radius, BLUE),
            lambda d: d.rounded_rectangle(box, radius=radius, fill=BLUE),
        )
    )


def test_rounded_rectangle_refuses_corners_that_meet() -> None:
    with pytest.raises(ValueError, match="ellipse or a rectangle"):
        Canvas(Image.new("RGBA", (8, 8))).rounded_rectangle((0, 0, 7, 7), 4, BLUE)


@pytest.mark.parametrize("box", [(10, 10, 50, 50), (40.3, 41.7, 90.2, 93.9), (-5, 60, 30, 100)])
def test_ellipse_and_rectangle(box: Box) -> None:
    assert_same(*both(lambda c: c.ellipse(box, CLEAR), lambda d: d.ellipse(box, fill=CLEAR)))
    assert_same(*both(lambda c: c.rectangle(box, BLUE), lambda d: d.rectangle(box, fill=BLUE)))


@pytest.mark.parametrize("points", TRIANGLES)
def test_polygon(points: list[Point]) -> None:
    assert_same(*both(lambda c: c.polygon(points, BLUE), lambda d: d.polygon(points, fill=BLUE)))


@pytest.mark.parametrize("width", [1, 2, 5, 8, 9, 20])
@pytest.mark.parametrize(
    "points", [*TRIANGLES, [(5.0, 90.0), (40.0, 10.0), (70.0, 90.0), (95.0, 5.0)]]
)
def test_lines_with_and_without_rounded_joints(points: list[Point], width: int) -> None:
    closed = [*points, points[0]]
    assert_same(
        *both(lambda c: c.line(closed, CLEAR, width), lambda d: d.line(closed, CLEAR, width))
    )
    assert_same(
        *both(
            lambda c: c.rounded_line(closed, CLEAR, width),
            lambda d: d.line(closed, CLEAR, width, joint="curve"),
        )
    )
