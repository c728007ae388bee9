"""Photograph the tray icon docked in real panels under Xvfb: `python -m scripts.tray_pictures`.

- docs/tray-menu.png: xfce4-panel (a StatusNotifierItem host) with AIOS's menu open, as the
  panel draws it from our dbusmenu after a right click, and the Launch submenu.
- docs/tray-panels.png: the icon in xfce4-panel and in trayer (the plain X backend), in the
  states a few runs give it.

Needs what the tray tests need (Xvfb, dbus, xfce4-panel, trayer; see .ci/run). Clicks go through
the XTEST extension of Xvfb, as a pointer would.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from Xlib import X
from Xlib import display as xdisplay
from Xlib.ext import xtest

from aios.desktop.icon import BRAND
from tests.desktop import screenshot, session, start_aios, trayer, xfce_panel, xvfb
from tests.helpers import DaemonProcess, wait_until, write_config

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
AGENTS = f"""[agents.tests]
command = ["{sys.executable}", "-c", "import sys, time; time.sleep(0.5); sys.exit(1)"]
description = "Run the test suite"
[agents.watch]
command = ["sleep", "600"]
description = "Rebuild on change"
"""


def click(display: str, x: int, y: int, button: int) -> None:
    conn = xdisplay.Display(display)
    try:
        conn.screen().root.warp_pointer(x, y)
        conn.sync()
        xtest.fake_input(conn, X.ButtonPress, button)
        xtest.fake_input(conn, X.ButtonRelease, button)
        conn.sync()
    finally:
        conn.close()


def grey_desktop(display: str) -> None:
    """A light desktop instead of Xvfb's black root window, as a desktop would have."""
    conn = xdisplay.Display(display)
    try:
        screen = conn.screen()
        root = screen.root
        root.change_attributes(background_pixel=0xD8DCE2)
        root.clear_area(0, 0, screen.width_in_pixels, screen.height_in_pixels)
        conn.sync()
    finally:
        conn.close()


def hover(display: str, x: int, y: int) -> None:
    conn = xdisplay.Display(display)
    try:
        conn.screen().root.warp_pointer(x, y)
        conn.sync()
    finally:
        conn.close()


def find_colour(image: Image.Image, colour: tuple[int, int, int]) -> tuple[int, int] | None:
    """The centre of the pixels near ``colour`` (our icon's blue) in ``image``, if any."""
    xs, ys = [], []
    for y in range(image.height):
        for x in range(image.width):
            pixel = image.getpixel((x, y))
            assert isinstance(pixel, tuple)
            if sum(abs(a - b) for a, b in zip(pixel, colour, strict=True)) < 60:
                xs.append(x)
                ys.append(y)
    if not xs:
        return None
    return (min(xs) + max(xs)) // 2, (min(ys) + max(ys)) // 2


def with_runs(tray: DaemonProcess) -> None:
    """One run going and one failed: the icon shows the attention badge."""
    tray.client.request("POST", "/api/runs", {"agent": "watch", "prompt": ""})
    tray.client.request("POST", "/api/runs", {"agent": "tests", "prompt": ""})
    tray.client.request("POST", "/api/runs", {"agent": "command", "prompt": "echo build ok"})
    wait_until(
        lambda: tray.client.request("GET", "/api/status")["runs"].get("failed", 0) == 1,
        what="the failed run",
    )
    time.sleep(0.5)  # the panel repaints after the item's NewIcon signal; nothing to poll


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="aios-tray-pictures-"))
    strips: list[tuple[str, Image.Image]] = []
    with xvfb() as (display, _server), session(display, work / "desktop") as desktop:
        home = work / "home"
        home.mkdir()
        write_config(home, AGENTS)
        with (
            xfce_panel(desktop),
            contextlib.closing(start_aios(home, desktop.env, work / "aios.err")) as tray,
        ):
            grey_desktop(display)  # once the panel is up: GTK resets the root's background
            with_runs(tray)
            spot: tuple[int, int] = wait_until(
                lambda: find_colour(screenshot(display, (0, 0, 800, 28)), BRAND[:3]),
                timeout=20,
                what="the panel to draw the icon",
            )
            x, y = spot
            strips.append(
                ("xfce4-panel (StatusNotifierItem)", screenshot(display, (0, 0, 240, 28)))
            )
            click(display, x, y, 3)
            time.sleep(1.0)  # the menu maps; GTK gives nothing to poll from outside
            # Hover Launch, the fourth row (GTK's rows are 25 px under a 28 px panel), so its
            # submenu opens beside the menu.
            hover(display, x + 50, 28 + 4 * 25 - 8)
            time.sleep(1.0)
            screenshot(display, (0, 0, 460, 250)).save(DOCS / "tray-menu.png", optimize=True)
            tray.terminate()
    with xvfb() as (display, _server), trayer(display):
        grey_desktop(display)
        home = work / "home-x"
        home.mkdir()
        write_config(home, AGENTS)
        with contextlib.closing(
            start_aios(home, {"DISPLAY": display}, work / "aios-x.err")
        ) as tray:
            with_runs(tray)
            wait_until(
                lambda: find_colour(screenshot(display, (700, 0, 100, 24)), BRAND[:3]),
                timeout=20,
                what="trayer to show the icon",
            )
            strips.append(("trayer (plain X, XEmbed)", screenshot(display, (760, 0, 40, 24))))
            tray.terminate()
    panels(strips).save(DOCS / "tray-panels.png", optimize=True)
    print("wrote", DOCS / "tray-menu.png", DOCS / "tray-panels.png")


def panels(strips: list[tuple[str, Image.Image]]) -> Image.Image:
    """The panel strips at 2x (nearest, so pixels stay honest), each with its label."""
    font = ImageFont.load_default(size=14)
    zoom = 2
    width = max(s.width for _, s in strips) * zoom + 260
    height = sum(s.height * zoom + 16 for _, s in strips) + 16
    out = Image.new("RGB", (width, height), (246, 247, 249))
    draw = ImageDraw.Draw(out)
    y = 16
    for label, strip in strips:
        big = strip.resize((strip.width * zoom, strip.height * zoom), Image.Resampling.NEAREST)
        draw.text((12, y + big.height // 2), label, font=font, fill=(33, 37, 41), anchor="lm")
        out.paste(big, (250, y))
        y += big.height + 16
    return out


if __name__ == "__main__":
    main()
