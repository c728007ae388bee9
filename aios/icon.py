"""The tray icon picture and tooltip, drawn from an :class:`IconModel` and nothing else.

The glyph is a white "A" on a rounded square in the brand blue. Each state adds a different
*shape*, so the states stay apart for colour-blind users and in monochrome trays:

- idle: the plain glyph.
- running: a round badge bottom-right with the number of live runs ("9+" past nine; a plain
  dot at 16 px, where two digits cannot be read).
- attention: a triangular warning badge with "!" in place of the count. A failure the user has
  not seen matters more than how many runs are going; both counts are in the tooltip.
- error: the glyph turns grey and a red bar strikes through it - the service is down.

Everything except the badge digits is drawn from polygons, not a font, because fonts differ
between machines. Shapes are drawn at several times the size and scaled down with LANCZOS for
smooth edges; strokes have a floor in real pixels so the "A" stays solid at 16 px.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from PIL import Image, ImageDraw, ImageFont

BRAND = (59, 91, 219, 255)  # #3b5bdb
GREY = (134, 142, 150, 255)  # #868e96: reads as "off" on light and dark trays alike
WHITE = (255, 255, 255, 255)
ORANGE = (247, 103, 7, 255)  # #f76707
RED = (224, 49, 49, 255)  # #e03131
GREEN = (43, 138, 62, 255)  # #2b8a3e: "going"; dark enough for white digits
INK = (33, 37, 41, 255)  # #212529: "!" on orange; white on orange is too faint
CLEAR = (0, 0, 0, 0)

SMALL = 20  # at or below this many pixels the count badge is a plain dot


class IconState(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    ATTENTION = "attention"  # a run failed since the user last looked
    ERROR = "error"  # the service is down


@dataclass(frozen=True)
class IconModel:
    state: IconState
    running: int = 0
    failed: int = 0
    # Trouble the daemon reports that is not about one run (a full disk): said in the tooltip.
    note: str | None = None


def tooltip(model: IconModel) -> str:
    if model.state is IconState.ERROR:
        return "AIOS — service down"
    parts = [model.note] if model.note else []
    if model.state is not IconState.IDLE and model.running:
        parts.append(f"{model.running} running")
    if model.state is IconState.ATTENTION and (model.failed or not model.note):
        parts.append(f"{model.failed} failed" if model.failed else "a run failed")
    return "AIOS — " + (", ".join(parts) or "idle")


def badge_text(running: int) -> str:
    return "9+" if running > 9 else str(running)


def draw(model: IconModel, size: int = 64) -> Image.Image:
    """The icon as a ``size`` x ``size`` RGBA image with transparent rounded corners."""
    # Supersampling is for anti-aliasing; past 64 px the edges are smooth enough at 2x.
    scale = 4 if size <= 64 else 2
    px = size * scale
    img = Image.new("RGBA", (px, px), CLEAR)
    pen = _Pen(ImageDraw.Draw(img), size, scale)

    pen.glyph(GREY if model.state is IconState.ERROR else BRAND)
    if model.state is IconState.RUNNING:
        pen.count_badge(model.running)
    elif model.state is IconState.ATTENTION:
        pen.warning_badge()
    elif model.state is IconState.ERROR:
        pen.strike()
    return img.resize((size, size), Image.Resampling.LANCZOS)


class _Pen:
    """Draws in icon units (0..1 across the icon) onto the supersampled canvas."""

    def __init__(self, d: ImageDraw.ImageDraw, size: int, scale: int) -> None:
        self.d = d
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
        end = self.px - 1  # ImageDraw boxes include their last pixel
        self.d.rounded_rectangle((0, 0, end, end), radius=0.22 * self.px, fill=fill)
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
        self.d.polygon([self.at(*p) for p in legs], fill=WHITE)
        # Horizontal edges on whole pixels stay sharp after the downscale.
        bar = max(self.snap(0.08), 1 / self.size)
        b0 = self.snap(0.62)
        cross = [(outer(b0, -1), b0), (outer(b0, 1), b0)]
        cross += [(outer(b0 + bar, 1), b0 + bar), (outer(b0 + bar, -1), b0 + bar)]
        self.d.polygon([self.at(*p) for p in cross], fill=WHITE)

    def badge(self) -> tuple[float, float, float]:
        """Centre x, y and radius, in units, of the bottom-right badge."""
        r = 0.22
        return 1 - r, 1 - r, r

    def gap(self) -> float:
        """Width, in supersampled pixels, of the clear ring that sets a badge off the glyph."""
        return self.thick(0.04, 1) * self.px

    def count_badge(self, running: int) -> None:
        cx, cy, r = self.badge()
        (x, y), rad = self.at(cx, cy), r * self.px
        out = rad + self.gap()
        self.d.ellipse((x - out, y - out, x + out, y + out), fill=CLEAR)
        self.d.ellipse((x - rad, y - rad, x + rad, y + rad), fill=GREEN)
        if self.size <= SMALL or running <= 0:
            return  # a plain dot: two digits in 7 px are noise
        text = badge_text(running)
        font = ImageFont.load_default(size=round(rad * (1.5 if len(text) == 1 else 1.2)))
        # The bundled font has no bold; a stroke in the fill colour thickens it.
        self.d.text(
            (x, y), text, font=font, fill=WHITE, anchor="mm", stroke_width=round(rad * 0.06)
        )

    def warning_badge(self) -> None:
        cx, cy, r = self.badge()
        tri = [self.at(cx, cy - r), self.at(cx + r, cy + r * 0.8), self.at(cx - r, cy + r * 0.8)]
        self.d.polygon(tri, fill=CLEAR)
        self.d.line([*tri, tri[0]], fill=CLEAR, width=round(self.gap() * 2), joint="curve")
        self.d.polygon(tri, fill=ORANGE)
        w = self.thick(0.045, 1.2) / 2
        for y_top, y_bottom in ((cy - r * 0.4, cy + r * 0.3), (cy + r * 0.45, cy + r * 0.7)):
            self.d.rectangle((*self.at(cx - w, y_top), *self.at(cx + w, y_bottom)), fill=INK)

    def strike(self) -> None:
        width = self.thick(0.1, 2) * self.px
        ends = [self.at(0.12, 0.12), self.at(0.88, 0.88)]
        self.d.line(ends, fill=CLEAR, width=round(width + 2 * self.gap()))
        self.d.line(ends, fill=RED, width=round(width))
