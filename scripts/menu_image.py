"""Render the tray menu that `Tray.menu` builds for a live daemon to docs/tray-menu.png.

The X backend a bare venv gets has no menu to screenshot, so this draws the real menu items
(texts, check marks, submenus, disabled state) with Pillow: `python -m scripts.menu_image`.
Uses pystray's dummy backend, so no display is needed.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ["PYSTRAY_BACKEND"] = "dummy"

from PIL import Image, ImageDraw, ImageFont

from aios.icon import IconModel, IconState, draw
from aios.paths import Paths

ROOT = Path(__file__).resolve().parent.parent
ROW, WIDTH, PAD = 28, 330, 10


def rows(menu: Any) -> list[tuple[str, bool, bool, bool, Any]]:
    out = []
    for item in menu.items:
        if item is menu.SEPARATOR or str(item.text) == "- - - -":
            out.append(("-", False, False, False, None))
            continue
        if not item.visible:
            continue
        out.append(
            (
                str(item.text),
                bool(item.enabled),
                bool(item.checked),
                bool(item.default),
                item.submenu,
            )
        )
    return out


def render(menu: Any, font: Any, x: int, y: int, canvas: ImageDraw.ImageDraw) -> None:
    entries = rows(menu)
    height = sum(8 if e[0] == "-" else ROW for e in entries) + 2 * 4
    canvas.rounded_rectangle([x, y, x + WIDTH, y + height], 6, fill="#fdfdfd", outline="#c4c7cc")
    cy = y + 4
    for text, enabled, checked, default, submenu in entries:
        if text == "-":
            canvas.line([x + 8, cy + 4, x + WIDTH - 8, cy + 4], fill="#dcdfe3")
            cy += 8
            continue
        colour = "#1d1f23" if enabled else "#9aa0aa"
        if checked:
            canvas.text((x + PAD, cy + 5), "✓", font=font, fill=colour)
        canvas.text(
            (x + PAD + 20, cy + 5),
            text,
            font=font,
            fill=colour,
            stroke_width=1 if default else 0,
            stroke_fill=colour,
        )
        if submenu is not None:
            canvas.text((x + WIDTH - 22, cy + 5), "▸", font=font, fill=colour)
        cy += ROW


def main() -> None:
    from aios.tray import Tray  # noqa: PLC0415 - after PYSTRAY_BACKEND is set
    from aios.tray_backend import import_pystray  # noqa: PLC0415
    from aios.tray_menu import to_pystray  # noqa: PLC0415

    home = Path(tempfile.mkdtemp(prefix="aios-menu-"))
    tray = Tray(Paths.from_env({"AIOS_HOME": str(home)}), open_browser=False)
    tray.service.start()
    try:
        tray._follow_service()
        daemon = tray.service.daemon
        assert daemon is not None
        for prompt in ("echo build ok", "exit 1", "sleep 600"):
            tray.service.submit(daemon.supervisor.launch("command", prompt)).result(10)
        time.sleep(1.0)  # let the runs reach their states
        menu = to_pystray(tray.menu_entries, import_pystray())
        font = (
            ImageFont.truetype("DejaVuSans.ttf", 14)
            if _has_dejavu()
            else ImageFont.load_default(size=14)
        )
        image = Image.new("RGB", (2 * WIDTH + 140, 380), "#e9ebee")
        canvas = ImageDraw.Draw(image)
        image.paste(
            draw(IconModel(IconState.ATTENTION, 1, 1), 32),
            (16, 12),
            draw(IconModel(IconState.ATTENTION, 1, 1), 32),
        )
        canvas.text((56, 18), tray.title(tray.state.model()), font=font, fill="#1d1f23")
        render(menu, font, 16, 56, canvas)
        recent = next(i for i in menu.items if str(i.text) == "Recent runs").submenu
        render(recent, font, WIDTH + 40, 56 + ROW * 3 + 8, canvas)
        out = ROOT / "docs" / "tray-menu.png"
        image.save(out)
        print("wrote", out)
    finally:
        tray.shutdown()


def _has_dejavu() -> bool:
    try:
        ImageFont.truetype("DejaVuSans.ttf", 14)
    except OSError:
        return False
    return True


if __name__ == "__main__":
    main()
