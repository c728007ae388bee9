"""A pystray menu exported as ``com.canonical.dbusmenu``, the menu protocol of tray items.

A StatusNotifierItem names an object implementing this interface; the panel reads the layout
(``GetLayout``), shows it, and sends ``Event(id, "clicked", ...)`` when the user picks an entry.
Spec: the ``com.canonical.dbusmenu`` introspection XML shipped with libdbusmenu.

The pystray menu is read (its callables evaluated) into a :class:`Snapshot` with ids numbered in
order; the snapshot is rebuilt when the tray says the menu changed (``refresh``) and when the
panel is about to open it (``AboutToShow``, so "Start at login" is re-read from disk each time).
A click resolves its id in the snapshot the panel was last told about, and the action runs on a
thread of its own: actions may wait on the service, and the D-Bus loop must keep answering.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from dbus_fast import Variant
from dbus_fast.annotations import DBusSignature, DBusStr, DBusUInt32
from dbus_fast.constants import PropertyAccess
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property, dbus_signal

log = logging.getLogger("aios.desktop.dbusmenu")

INTERFACE = "com.canonical.dbusmenu"
ROOT = 0

Props = dict[str, Variant]
Layout = Annotated[list[Any], DBusSignature("u(ia{sv}av)")]
Void = Annotated[None, DBusSignature("")]  # dbus-fast reads signatures from annotations


class Ids:
    """Ids that stay with an entry's place across snapshots, and are never reused.

    libdbusmenu (the panels' client) updates the widget it made for an id in place: it follows a
    new label, but not a standard item turning into a separator or a submenu. So an id is keyed by
    the entry's parent, position and kind, and a run added to a submenu shifts nothing else.
    """

    def __init__(self) -> None:
        self._ids: dict[tuple[int, int, str], int] = {}

    def __call__(self, parent: int, position: int, kind: str) -> int:
        return self._ids.setdefault((parent, position, kind), len(self._ids) + 1)


@dataclass
class Snapshot:
    """The menu as the panel sees it: properties and children per id, and what each id does."""

    ids: Ids = field(default_factory=Ids)
    props: dict[int, Props] = field(default_factory=lambda: {ROOT: _root_props()})
    children: dict[int, list[int]] = field(default_factory=lambda: {ROOT: []})
    actions: dict[int, Callable[[], None]] = field(default_factory=dict)

    @classmethod
    def of(cls, menu: Any, activate: Callable[[Any], None], ids: Ids | None = None) -> Snapshot:
        snap = cls(ids or Ids())
        if menu is not None:
            snap._add(menu, ROOT, activate)
        return snap

    def _add(self, menu: Any, parent: int, activate: Callable[[Any], None]) -> None:
        for position, item in enumerate(i for i in menu.items if i.visible):
            separator = item is menu.SEPARATOR
            kind = "separator" if separator else "submenu" if item.submenu else "item"
            ident = self.ids(parent, position, kind)
            self.children[parent].append(ident)
            if separator:
                self.props[ident] = {"type": Variant("s", "separator")}
                continue
            props: Props = {
                # Underscores mark mnemonics in dbusmenu labels; a literal one is doubled.
                "label": Variant("s", str(item.text).replace("_", "__")),
                "enabled": Variant("b", bool(item.enabled)),
            }
            if item.checked is not None:
                props["toggle-type"] = Variant("s", "radio" if item.radio else "checkmark")
                props["toggle-state"] = Variant("i", 1 if item.checked else 0)
            self.props[ident] = props
            if item.submenu is not None:
                props["children-display"] = Variant("s", "submenu")
                self.children[ident] = []
                self._add(item.submenu, ident, activate)
            else:
                self.actions[ident] = _bind(activate, item)

    def layout(self, ident: int, depth: int, names: list[str]) -> list[Any]:
        """``(ia{sv}av)`` for ``ident`` and its children down to ``depth`` (-1: all)."""
        kids: list[Variant] = []
        if depth != 0:
            kids = [
                Variant("(ia{sv}av)", self.layout(child, depth - 1, names))
                for child in self.children.get(ident, [])
            ]
        return [ident, self.properties(ident, names), kids]

    def properties(self, ident: int, names: list[str]) -> Props:
        props = self.props.get(ident, {})
        return {k: v for k, v in props.items() if not names or k in names}

    def same_as(self, other: Snapshot) -> bool:
        return self.props == other.props and self.children == other.children


def _root_props() -> Props:
    return {"children-display": Variant("s", "submenu")}


def _bind(activate: Callable[[Any], None], item: Any) -> Callable[[], None]:
    return lambda: activate(item)


class DBusMenu(ServiceInterface):
    """``com.canonical.dbusmenu`` for the pystray menu that ``menu()`` returns."""

    def __init__(self, menu: Callable[[], Any], activate: Callable[[Any], None]) -> None:
        super().__init__(INTERFACE)
        self._menu = menu
        self._activate = activate
        self._revision = 1
        self._ids = Ids()
        self._snapshot = Snapshot.of(menu(), activate, self._ids)

    def refresh(self) -> None:
        """Re-read the menu; tell the panel if anything it shows changed. On the bus's loop."""
        fresh = Snapshot.of(self._menu(), self._activate, self._ids)
        changed = not fresh.same_as(self._snapshot)
        self._snapshot = fresh
        if changed:
            self._revision += 1
            self.LayoutUpdated(self._revision, ROOT)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    # -- the interface -----------------------------------------------------------------------------

    @dbus_property(access=PropertyAccess.READ)
    def Version(self) -> DBusUInt32:
        return 3

    @dbus_property(access=PropertyAccess.READ)
    def TextDirection(self) -> DBusStr:
        return "ltr"

    @dbus_property(access=PropertyAccess.READ)
    def Status(self) -> DBusStr:
        return "normal"

    @dbus_property(access=PropertyAccess.READ)
    def IconThemePath(self) -> Annotated[list[str], DBusSignature("as")]:
        return []

    @dbus_method()
    def GetLayout(
        self,
        parent_id: Annotated[int, DBusSignature("i")],
        recursion_depth: Annotated[int, DBusSignature("i")],
        property_names: Annotated[list[str], DBusSignature("as")],
    ) -> Layout:
        return [self._revision, self._snapshot.layout(parent_id, recursion_depth, property_names)]

    @dbus_method()
    def GetGroupProperties(
        self,
        ids: Annotated[list[int], DBusSignature("ai")],
        property_names: Annotated[list[str], DBusSignature("as")],
    ) -> Annotated[list[Any], DBusSignature("a(ia{sv})")]:
        wanted = ids or list(self._snapshot.props)
        return [
            [i, self._snapshot.properties(i, property_names)]
            for i in wanted
            if i in self._snapshot.props
        ]

    @dbus_method()
    def GetProperty(
        self, ident: Annotated[int, DBusSignature("i")], name: DBusStr
    ) -> Annotated[Variant, DBusSignature("v")]:
        return self._snapshot.props.get(ident, {}).get(name, Variant("s", ""))

    @dbus_method()
    def Event(
        self,
        ident: Annotated[int, DBusSignature("i")],
        event_id: DBusStr,
        data: Annotated[Variant, DBusSignature("v")],
        timestamp: DBusUInt32,
    ) -> Void:
        self._event(ident, event_id)

    @dbus_method()
    def EventGroup(
        self, events: Annotated[list[Any], DBusSignature("a(isvu)")]
    ) -> Annotated[list[int], DBusSignature("ai")]:
        errors = [ident for ident, *_ in events if ident not in self._snapshot.props]
        for ident, event_id, _data, _timestamp in events:
            self._event(ident, event_id)
        return errors

    @dbus_method()
    def AboutToShow(
        self, ident: Annotated[int, DBusSignature("i")]
    ) -> Annotated[bool, DBusSignature("b")]:
        before = self._revision
        self.refresh()
        return self._revision != before

    @dbus_method()
    def AboutToShowGroup(
        self, ids: Annotated[list[int], DBusSignature("ai")]
    ) -> Annotated[list[Any], DBusSignature("aiai")]:
        before = self._revision
        self.refresh()
        return [[ROOT] if self._revision != before else [], []]

    @dbus_signal()
    def LayoutUpdated(
        self, revision: int, parent: int
    ) -> Annotated[list[int], DBusSignature("ui")]:
        return [revision, parent]

    @dbus_signal()
    def ItemsPropertiesUpdated(self) -> Annotated[list[Any], DBusSignature("a(ia{sv})a(ias)")]:
        return [[], []]

    def _event(self, ident: int, event_id: str) -> None:
        if event_id != "clicked":
            return  # "opened", "closed", "hovered": nothing to do
        action = self._snapshot.actions.get(ident)
        if action is None:
            log.debug("click on unknown or inactive menu id %s", ident)
            return
        threading.Thread(target=action, name="aios-menu-action", daemon=True).start()
