"""AIOS: an agent launcher and task manager that lives in the system tray."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
