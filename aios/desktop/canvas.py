"""Filled shapes on an RGBA image through Pillow's C drawing core, without ``PIL.ImageDraw``.

Why: ``ImageDraw`` imports ``ImageFont``, which loads FreeType; together some 1.5 MiB that the
tray daemon would keep for ever only to fill a few polygons (``make bench``, "idle RSS, aios
with its tray"). ``Image.core.draw`` is the object ``ImageDraw.Draw`` wraps, and each method here
makes the core calls ``ImageDraw`` makes for the same arguments (read from Pillow 13), so the
pixels are the same; tests/test_canvas.py compares the two in the installed Pillow. Text is
not here: an icon that needs it imports ``ImageDraw`` then (``aios.desktop.icon``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image, _imaging

Colour = tuple[int, int, int, int]
Point = tuple[float, float]
Box = tuple[float, float, float, float]  # left, top, right, bottom, all inclusive


class Canvas:
    def __init__(self, image: Image.Image) -> None:
        image.load()
        self._draw = _imaging.draw(image.im, 0)  # 0: paint over, as ImageDraw does for RGBA

    def _ink(self, colour: Colour) -> int:
        return int(self._draw.draw_ink(colour))

    def rectangle(self, box: Box, colour: Colour) -> None:
        self._draw.draw_rectangle(box, self._ink(colour), 1)

    def ellipse(self, box: Box, colour: Colour) -> None:
        self._draw.draw_ellipse(box, self._ink(colour), 1)

    def polygon(self, points: Sequence[Point], colour: Colour) -> None:
        self._draw.draw_polygon(list(points), self._ink(colour), 1)

    def pieslice(self, box: Box, start: float, end: float, colour: Colour) -> None:
        self._draw.draw_pieslice(box, start, end, self._ink(colour), 1)

    def rounded_rectangle(self, box: Box, radius: float, colour: Colour) -> None:
        """``ImageDraw.rounded_rectangle(box, radius, fill=colour)`` for a box wider and taller
        than its two corners: a pie slice at each corner, a rectangle between them."""
        x0, y0, x1, y1 = (round(v) for v in box)
        d = min(box[2] - box[0], box[3] - box[1], radius * 2)
        if d >= min(x1 - x0, y1 - y0) - 1 or d == 0:
            raise ValueError("corners that meet or vanish are an ellipse or a rectangle")
        r = int(d // 2)
        self.pieslice((x0, y0, x0 + d, y0 + d), 180, 270, colour)
        self.pieslice((x1 - d, y0, x1, y0 + d), 270, 360, colour)
        self.pieslice((x1 - d, y1 - d, x1, y1), 0, 90, colour)
        self.pieslice((x0, y1 - d, x0 + d, y1), 90, 180, colour)
        if x1 - r - 1 >= x0 + r + 1:
            self.rectangle((x0 + r + 1, y0, x1 - r - 1, y1), colour)
        self.rectangle((x0, y0 + r + 1, x0 + r, y1 - r - 1), colour)
        self.rectangle((x1 - r, y0 + r + 1, x1, y1 - r - 1), colour)

    def line(self, points: Sequence[Point], colour: Colour, width: int) -> None:
        self._draw.draw_lines(list(points), self._ink(colour), width)

    def rounded_line(self, points: Sequence[Point], colour: Colour, width: int) -> None:
        """``ImageDraw.line(points, colour, width, joint="curve")``: a pie slice fills the
        outside of each bend, and past 8 px a 3 px line covers the notch beside it."""
        self.line(points, colour, width)
        if width <= 4:
            return
        for before, point, after in zip(points, points[1:], points[2:], strict=False):
            a, b = (_heading(start, end) for start, end in ((before, point), (point, after)))
            if a == b:
                continue  # straight on: no bend to fill
            flipped = (b > a and b - 180 > a) or (b < a and b + 180 > a)
            start, end = (b + 90, a + 90) if flipped else (a - 90, b - 90)
            x, y = point
            inset = width / 2 - 1
            self.pieslice(
                (x - inset, y - inset, x + inset, y + inset), start - 90, end - 90, colour
            )
            if width > 8:
                side = 90 if flipped else -90
                notch = [_along(point, a + side, inset), point, _along(point, b + side, inset)]
                self.line(notch, colour, 3)


def _heading(start: Point, end: Point) -> float:
    """Degrees clockwise from "up" of the way from ``start`` to ``end``, in [0, 360)."""
    return math.degrees(math.atan2(end[0] - start[0], start[1] - end[1])) % 360


def _along(point: Point, heading: float, distance: float) -> Point:
    """``point`` moved ``distance`` towards ``heading``, each step rounded towards zero."""
    angle = math.radians(heading - 90)
    x, y = (distance * math.cos(angle), distance * math.sin(angle))
    return (
        point[0] + (math.floor(x) if x > 0 else math.ceil(x)),
        point[1] + (math.floor(y) if y > 0 else math.ceil(y)),
    )
