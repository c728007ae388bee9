"""pystray, loaded even where none of its own backends can (a Wayland-only session).

Its own module so that the StatusNotifierItem backend (which subclasses pystray's base) and the
backend chooser (which picks that backend) both build on it without importing each other.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

__all__ = ["NoTray", "import_pystray"]


class NoTray(Exception):
    """No way to show an icon here; the message says why (for the one stderr line)."""


def import_pystray() -> ModuleType:
    """pystray, for its Menu and MenuItem (and its own backends).

    ``import pystray`` picks a backend and raises if none of its own loads (the X backend
    without an X server, on a Wayland-only session); our StatusNotifierItem backend needs none of
    them, so the import is retried with pystray's dummy backend just for the import.
    """
    try:
        return importlib.import_module("pystray")
    except Exception as exc:  # Xlib.error.DisplayNameError, DisplayConnectionError, ImportError
        first = exc
    previous = os.environ.get("PYSTRAY_BACKEND")
    os.environ["PYSTRAY_BACKEND"] = "dummy"
    try:
        for name in [m for m in sys.modules if m == "pystray" or m.startswith("pystray.")]:
            del sys.modules[name]
        module = importlib.import_module("pystray")
    except Exception as exc:
        raise NoTray(f"no usable tray backend ({type(first).__name__}: {first})") from exc
    finally:
        if previous is None:
            del os.environ["PYSTRAY_BACKEND"]
        else:
            os.environ["PYSTRAY_BACKEND"] = previous
    module.__dict__["_aios_import_error"] = first
    return module
