"""The tray icon picture and tooltip, drawn from an :class:`IconModel` and nothing else.

The glyph is a white "A" on a rounded square in the brand blue. Each state adds a different
*shape*, so the states stay apart for colour-blind users and in monochrome trays:

- idle: the plain glyph.
- running: a round badge bottom-right with the number of runs going ("9+" past nine; a plain
  dot when they are all queued).
- attention: a triangular warning badge with "!" in place of the count: a run failed or called
  for the user since they last looked (``aios.unseen``). That matters more than how many runs
  are going; all the counts are in the tooltip.
- error: the glyph turns grey and a red bar strikes through it - the service is down.

Shapes are drawn from polygons at several times the size and scaled down with LANCZOS for smooth
edges; strokes have a floor in real pixels so the "A" stays solid at 16 px. At panel sizes
(below 40 px) a badge is about half the icon's width, its inside is flat and its text is drawn
pixel by pixel (``aios.desktop.pixelfont``) in white on dark green (7.2:1) or ink on orange (5:1),
because a scaled font there is a smudge; larger icons use Pillow's bundled font. A backend that
shows the icon at another size asks ``at_size`` for a drawing made at that size, never a scaled
one.

Shapes are filled through ``aios.desktop.canvas``, not ``PIL.ImageDraw``: that imports
``ImageFont`` and FreeType, 1.5 MiB the tray would keep for ever. Only a count badge's text at
``PIXEL_DIGITS_BELOW`` px or more imports them, when it is first drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from PIL import Image

from aios.desktop.canvas import Canvas
from aios.desktop.pixelfont import REGULAR, SMALL, Colour, PixelFont
from aios.unseen import since_last_looked

BRAND = (59, 91, 219, 255)  # #3b5bdb
GREY = (134, 142, 150, 255)  # #868e96: reads as "off" on light and dark trays alike
WHITE = (255, 255, 255, 255)
ORANGE = (247, 103, 7, 255)  # #f76707
RED = (224, 49, 49, 255)  # #e03131
# "Going": dark enough that white digits on it have a contrast of 7:1 (WCAG's AAA for text).
GREEN = (26, 100, 40, 255)  # #1a6428
INK = (33, 37, 41, 255)  # #212529: "!" on orange; white on orange is too faint
CLEAR = (0, 0, 0, 0)

# Below this many pixels the badge's digits are drawn pixel by pixel (aios.desktop.pixelfont): a
# scaled font at panel sizes (16-24 px, and 32 px on a 2x panel) is a smudge, 9 and 8 look alike.
# From here on Pillow's bundled font at the badge's size reads well.
PIXEL_DIGITS_BELOW = 40
WARNING_LIFT = 0.15  # the "!" sits this much of the badge's radius below its centre
RIM = 0.8  # pixels at a badge's edge left anti-aliased when its inside is painted flat


class IconState(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    ATTENTION = "attention"  # a run failed since the user last looked
    ERROR = "error"  # the service is down


@dataclass(frozen=True)
class IconModel:
    """What the icon, its tooltip and the tray menu's status line show, and nothing else.

    ``running`` counts live runs that are not queued; ``failed`` and ``needs_you`` are the runs
    that failed or called for the user since they last looked (``aios.unseen``), never history.
    """

    state: IconState
    running: int = 0
    failed: int = 0
    queued: int = 0
    needs_you: int = 0
    # Trouble the daemon reports that is not about one run (a full disk): said first.
    note: str | None = None


def status(model: IconModel) -> str:
    """One line for both the tooltip and the menu, so they always count the same things, e.g.
    ``2 running · 1 queued · 1 failed since you last looked`` (a count of 0 is left out)."""
    if model.state is IconState.ERROR:
        return "service down"
    parts = [model.note] if model.note else []
    if model.running:
        parts.append(f"{model.running} running")
    if model.queued:
        parts.append(f"{model.queued} queued")
    if unseen := since_last_looked(model.failed, model.needs_you):
        parts.append(unseen)
    return " · ".join(parts) or "idle"


def tooltip(model: IconModel) -> str:
    return f"AIOS — {status(model)}"


def badge_text(running: int) -> str:
    return "9+" if running > 9 else str(running)


def draw(model: IconModel, size: int = 64) -> Image.Image:
    """The icon as a ``size`` x ``size`` RGBA image with transparent rounded corners."""
    # Supersampling is for anti-aliasing; past 64 px the edges are smooth enough at 2x.
    scale = 4 if size <= 64 else 2
    px = size * scale
    img = Image.new("RGBA", (px, px), CLEAR)
    pen = _Pen(img, size, scale)

    pen.glyph(GREY if model.state is IconState.ERROR else BRAND)
    if model.state is IconState.RUNNING:
        pen.count_badge(model.running)
    elif model.state is IconState.ATTENTION:
        pen.warning_badge()
    elif model.state is IconState.ERROR:
        pen.strike()
    out = img.resize((size, size), Image.Resampling.LANCZOS)
    if size < PIXEL_DIGITS_BELOW:
        _badge_text(out, model, pen.badge())
    out.info[MODEL_KEY] = model
    return out


def _badge_text(out: Image.Image, model: IconModel, badge: tuple[float, float, float]) -> None:
    """The badge's text on whole pixels, after the downscale, at full contrast.

    LANCZOS leaves ripples of slightly different colours inside a badge; its inside (all but
    the anti-aliased rim) is painted flat first, so every pixel is either the badge or the ink.
    """
    size = out.width
    cx, cy, r = (v * size for v in badge)
    font = pixel_font(size)
    if model.state is IconState.RUNNING:
        _fill(out, lambda x, y: (x - cx) ** 2 + (y - cy) ** 2 <= (r - RIM) ** 2, GREEN)
        if model.running > 0:
            font.draw(out, (cx, cy), badge_text(model.running), WHITE)
    elif model.state is IconState.ATTENTION:
        _fill(out, lambda x, y: _in_warning(x - cx, y - cy, r), ORANGE)
        font.draw(out, (cx, cy + WARNING_LIFT * r), "!", INK)


def _fill(out: Image.Image, inside: Callable[[float, float], bool], colour: Colour) -> None:
    for y in range(out.height):
        for x in range(out.width):
            if inside(x + 0.5, y + 0.5):
                out.putpixel((x, y), colour)


def _in_warning(dx: float, dy: float, r: float) -> bool:
    """Whether (dx, dy) from the badge's centre is inside the warning triangle, ``RIM`` px in
    from its edges (apex at -r, base at 0.8 r, half as wide as it is tall at each height)."""
    base = 0.8 * r
    if dy > base - RIM:
        return False
    # The slanted sides: |dx| grows from 0 at the apex to r at the base; their distance from
    # (dx, dy) along the normal is (r + dy) * r / 1.8 r - |dx|, scaled by the normal's length.
    slope = r / (r + base)
    return (dy + r) * slope - abs(dx) >= RIM * math.hypot(1, slope)


MODEL_KEY = "aios.desktop.icon.model"


def pixel_font(size: int) -> PixelFont:
    """The pixel font for a badge on a ``size`` px icon (below ``PIXEL_DIGITS_BELOW``)."""
    return SMALL if size < 20 else REGULAR


def at_size(image: Image.Image, size: int) -> Image.Image:
    """``image`` as a ``size`` px icon: drawn afresh at that size if ``draw`` made it (scaling a
    64 px icon down to a panel's 22 px turns its digits into a smudge), else scaled."""
    model = image.info.get(MODEL_KEY)
    if isinstance(model, IconModel):
        return draw(model, size)
    return image.convert("RGBA").resize((size, size), Image.Resampling.LANCZOS)


class _Pen:
    """Draws in icon units (0..1 across the icon) onto the supersampled canvas."""

    def __init__(self, img: Image.Image, size: int, scale: int) -> None:
        self.img = img
        self.d = Canvas(img)
        self.size = size
        self.scale = scale
        self.px = size * scale

    def at(self, x: float, y: float) -> tuple[float, float]:
        return (x * self.px, y * self.px)

    def thick(self, unit: float, floor_px: float) -> float:
        """A stroke width in units, but never thinner than ``floor_px`` real pixels."""
        return max(unit, floor_px / self.size)

    def snap(self, unit: float) -> float:
        return round(unit * self.size) / self.size

    def glyph(self, fill: tuple[int, int, int, int]) -> None:
        end = self.px - 1  # boxes include their last pixel
        self.d.rounded_rectangle((0, 0, end, end), 0.22 * self.px, fill)
        # The "A": two legs meeting in a flat top, and a crossbar. Outer edges run from
        # (cx -/+ top, y0) to (cx -/+ half, y1); legs are `leg` wide along the bottom.
        cx, y0, y1, half, top = 0.5, self.snap(0.18), self.snap(0.82), 0.31, 0.05
        leg = self.thick(0.13, 2.3)

        def outer(y: float, side: int) -> float:
            t = (y - y0) / (y1 - y0)
            return cx + side * (top + (half - top) * t)

        inner_top = y1 - (half - leg) * (y1 - y0) / (half - top)  # where the inner edges meet
        legs = [(cx - top, y0), (cx + top, y0), (cx + half, y1), (cx + half - leg, y1)]
        legs += [(cx, inner_top), (cx - half + leg, y1), (cx - half, y1)]
        self.d.polygon([self.at(*p) for p in legs], WHITE)
        # Horizontal edges on whole pixels stay sharp after the downscale.
        bar = max(self.snap(0.08), 1 / self.size)
        b0 = self.snap(0.62)
        cross = [(outer(b0, -1), b0), (outer(b0, 1), b0)]
        cross += [(outer(b0 + bar, 1), b0 + bar), (outer(b0 + bar, -1), b0 + bar)]
        self.d.polygon([self.at(*p) for p in cross], WHITE)

    def badge(self) -> tuple[float, float, float]:
        """Centre x, y and radius, in units, of the bottom-right badge.

        Big enough for digits a panel can show. Below ``PIXEL_DIGITS_BELOW`` its diameter is a
        whole, odd number of pixels, so its centre is a pixel's centre and the odd-width pixel
        digits sit on whole pixels."""
        if self.size < PIXEL_DIGITS_BELOW:
            # About 58% of the icon, but no more than the digits need (a 7 px digit in a 19 px
            # badge at 32 px looks lost).
            wide = min(0.58 * self.size, 2 * pixel_font(self.size).height + 1)
            diameter = 2 * round((wide - 1) / 2) + 1
            r = diameter / 2 / self.size
        else:
            r = 0.26
        return 1 - r, 1 - r, r

    def gap(self) -> float:
        """Width, in supersampled pixels, of the clear ring that sets a badge off the glyph."""
        return self.thick(0.04, 1) * self.px

    def count_badge(self, running: int) -> None:
        cx, cy, r = self.badge()
        (x, y), rad = self.at(cx, cy), r * self.px
        out = rad + self.gap()
        self.d.ellipse((x - out, y - out, x + out, y + out), CLEAR)
        self.d.ellipse((x - rad, y - rad, x + rad, y + rad), GREEN)
        if self.size < PIXEL_DIGITS_BELOW or running <= 0:
            return  # drawn after the downscale (see draw), or a plain dot for queued runs
        # Imported here, not above: they bring FreeType, which only this text needs.
        from PIL import ImageDraw, ImageFont  # noqa: PLC0415 - FreeType, for this text only

        text = badge_text(running)
        font = ImageFont.load_default(size=round(rad * (1.6 if len(text) == 1 else 1.25)))
        # The bundled font has no bold; a stroke in the fill colour thickens it.
        ImageDraw.Draw(self.img).text(
            (x, y), text, font=font, fill=WHITE, anchor="mm", stroke_width=round(rad * 0.06)
        )

    def warning_badge(self) -> None:
        cx, cy, r = self.badge()
        tri = [self.at(cx, cy - r), self.at(cx + r, cy + r * 0.8), self.at(cx - r, cy + r * 0.8)]
        self.d.polygon(tri, CLEAR)
        self.d.rounded_line([*tri, tri[0]], CLEAR, round(self.gap() * 2))
        self.d.polygon(tri, ORANGE)
        if self.size < PIXEL_DIGITS_BELOW:
            return  # the "!" is drawn after the downscale (see draw)
        w = self.thick(0.045, 1.2) / 2
        for y_top, y_bottom in ((cy - r * 0.4, cy + r * 0.3), (cy + r * 0.45, cy + r * 0.7)):
            self.d.rectangle((*self.at(cx - w, y_top), *self.at(cx + w, y_bottom)), INK)

    def strike(self) -> None:
        width = self.thick(0.1, 2) * self.px
        ends = [self.at(0.12, 0.12), self.at(0.88, 0.88)]
        self.d.line(ends, CLEAR, round(width + 2 * self.gap()))
        self.d.line(ends, RED, round(width))
