"""The tray menu as data: what the tray shows, built from its state, then handed to pystray.

Building the menu is a pure function of the tray's state (``Tray.menu_entries``), so adding an
entry (a run awaiting approval, with Allow and Deny) is adding data, and every backend (our
StatusNotifierItem, pystray's GTK, Windows and macOS ones) shows the same entries. pystray
re-reads the entries each time it asks (``Menu`` given one callable), so the menu is never stale.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

log = logging.getLogger("aios.tray")


@dataclass(frozen=True)
class Entry:
    text: str
    action: Callable[[], None] | None = None
    enabled: bool = True
    checked: bool | None = None  # None: not a check item
    default: bool = False  # what a left click on the icon does, where the backend has that
    submenu: tuple[Entry, ...] | None = None
    separator: bool = False

    @property
    def items(self) -> tuple[Entry, ...]:
        return self.submenu or ()

    def find(self, text: str) -> Entry:
        """The submenu entry with this text."""
        return find(self.items, text)

    def activate(self) -> None:
        """What choosing the entry does (a disabled one, or one without an action, refuses)."""
        if self.action is None or not self.enabled:
            raise ValueError(f"menu entry {self.text!r} cannot be chosen")
        self.action()


SEPARATOR = Entry("", separator=True)


def find(entries: Sequence[Entry], text: str) -> Entry:
    for entry in entries:
        if entry.text == text:
            return entry
    raise KeyError(f"no menu entry {text!r} in {[e.text for e in entries]}")


def to_pystray(entries: Callable[[], Sequence[Entry]], pystray: ModuleType) -> Any:
    """A pystray ``Menu`` that re-reads ``entries()`` whenever a backend looks at it."""
    return pystray.Menu(lambda: [_item(e, pystray) for e in entries()])


def _item(entry: Entry, pystray: ModuleType) -> Any:
    if entry.separator:
        return pystray.Menu.SEPARATOR
    if entry.submenu is not None:
        children = [_item(e, pystray) for e in entry.submenu]
        return pystray.MenuItem(entry.text, pystray.Menu(*children), enabled=entry.enabled)
    checked = entry.checked
    return pystray.MenuItem(
        entry.text,
        safely(entry.action) if entry.action is not None else None,
        enabled=entry.enabled and entry.action is not None,
        checked=None if checked is None else (lambda _item: checked),
        default=entry.default,
    )


def safely(fn: Callable[[], None]) -> Callable[[Any, Any], None]:
    """pystray calls actions with (icon, item); ours take nothing. Errors are logged, not lost."""

    def run(_icon: Any = None, _item: Any = None) -> None:
        try:
            fn()
        except Exception:
            log.exception("tray action failed")

    return run
