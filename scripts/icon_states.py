"""Draw every tray icon state to docs/icon-states.png: `python scripts/icon_states.py`.

Rows are states, columns are sizes at 1:1 (16, 22 and 24 px are what panels show) plus a 5x
nearest-neighbour zoom of the 22 px icon, so single pixels can be judged; the grid is drawn
twice, on a light and on a dark panel, because trays come in both. Each row is labelled with the
words its tooltip and menu line use.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from aios.desktop.icon import IconModel, IconState, draw, status  # noqa: E402

SIZES = (16, 22, 24, 32, 48)
ZOOMED, ZOOM = 22, 5
ROWS = [
    IconModel(IconState.IDLE),
    IconModel(IconState.RUNNING, running=1),
    IconModel(IconState.RUNNING, running=3, queued=2),
    IconModel(IconState.RUNNING, running=12),
    IconModel(IconState.ATTENTION, running=3, failed=1),
    IconModel(IconState.ATTENTION, failed=1, needs_you=1),
    IconModel(IconState.ERROR),
]
THEMES = (((246, 247, 249), (33, 37, 41)), ((37, 38, 43), (222, 226, 230)))  # (bg, text)
LABEL_W, GAP, HEADER = 200, 16, 30
CELL = ZOOMED * ZOOM
COLUMN = 64  # the widest icon plus a gap; also fits its "NN px" heading


def panel(bg: tuple[int, int, int], ink: tuple[int, int, int]) -> Image.Image:
    font = ImageFont.load_default(size=14)
    width = LABEL_W + len(SIZES) * COLUMN + CELL + GAP
    height = HEADER + len(ROWS) * (CELL + GAP)
    img = Image.new("RGBA", (width, height), (*bg, 255))
    d = ImageDraw.Draw(img)
    zoom_x = LABEL_W + len(SIZES) * COLUMN
    for i, size in enumerate(SIZES):
        d.text((LABEL_W + i * COLUMN, GAP // 2), f"{size} px", font=font, fill=ink)
    d.text((zoom_x, GAP // 2), f"{ZOOMED} px at {ZOOM}x", font=font, fill=ink)
    for row, model in enumerate(ROWS):
        top = HEADER + row * (CELL + GAP)
        middle = top + CELL // 2
        words = status(model)
        # Too long for one line beside the icons: "since you last looked" goes on a second one.
        lines = words.replace(" since ", "\nsince ")
        d.multiline_text((GAP, middle), lines, font=font, fill=ink, anchor="lm", spacing=4)
        for i, size in enumerate(SIZES):
            img.alpha_composite(draw(model, size), (LABEL_W + i * COLUMN, middle - size // 2))
        zoomed = draw(model, ZOOMED).resize((CELL, CELL), Image.Resampling.NEAREST)
        img.alpha_composite(zoomed, (zoom_x, top))
    return img


def main() -> None:
    panels = [panel(bg, ink) for bg, ink in THEMES]
    out = Image.new("RGBA", (panels[0].width, sum(p.height for p in panels)))
    for i, p in enumerate(panels):
        out.paste(p, (0, i * panels[0].height))
    path = ROOT / "docs" / "icon-states.png"
    out.convert("RGB").save(path, optimize=True)
    print(path)


if __name__ == "__main__":
    main()
