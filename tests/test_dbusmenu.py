"""The dbusmenu export and the item's pixmaps, without a bus: pure data in, D-Bus values out."""

from __future__ import annotations

from typing import Any

from PIL import Image

from aios.desktop.dbusmenu import ROOT, Snapshot
from aios.desktop.loader import import_pystray
from aios.desktop.menu import SEPARATOR, Entry, to_pystray
from aios.desktop.sni import PIXMAP_SIZES, pixmaps


def snapshot(entries: list[Entry], clicked: list[str]) -> Snapshot:
    def activate(item: Any) -> None:
        clicked.append(str(item.text))
        item(None)

    return Snapshot.of(to_pystray(lambda: entries, import_pystray()), activate)


def labels(snap: Snapshot, ident: int = ROOT) -> list[str]:
    out = []
    for child in snap.children[ident]:
        props = {k: v.value for k, v in snap.props[child].items()}
        out.append("-" if props.get("type") == "separator" else props["label"])
    return out


def test_entries_become_a_layout_with_ids_props_and_actions() -> None:
    ran: list[str] = []
    clicked: list[str] = []
    snap = snapshot(
        [
            Entry("Open", lambda: ran.append("open"), default=True),
            Entry("2 running", enabled=False),
            SEPARATOR,
            Entry("Launch", submenu=(Entry("my_agent", lambda: ran.append("agent")),)),
            Entry("Start at login", lambda: None, checked=True),
        ],
        clicked,
    )
    assert labels(snap) == ["Open", "2 running", "-", "Launch", "Start at login"]
    launch = snap.children[ROOT][3]
    assert snap.props[launch]["children-display"].value == "submenu"
    assert labels(snap, launch) == ["my__agent"]  # a literal underscore is doubled
    status = snap.children[ROOT][1]
    assert snap.props[status]["enabled"].value is False
    login = snap.children[ROOT][4]
    assert snap.props[login]["toggle-type"].value == "checkmark"
    assert snap.props[login]["toggle-state"].value == 1

    snap.actions[snap.children[launch][0]]()
    snap.actions[snap.children[ROOT][0]]()
    assert ran == ["agent", "open"]
    snap.actions[status]()  # a disabled entry does nothing when clicked
    assert ran == ["agent", "open"]

    node: list[Any] = snap.layout(ROOT, 1, ["label"])
    assert node[0] == ROOT
    assert [child.value[2] for child in node[2]] == [[]] * 5  # depth 1: no grandchildren
    assert all(set(child.value[1]) <= {"label"} for child in node[2])


def test_the_same_menu_is_the_same_snapshot() -> None:
    entries = [Entry("Quit", lambda: None)]
    assert snapshot(entries, []).same_as(snapshot(entries, []))
    assert not snapshot(entries, []).same_as(snapshot([Entry("Quit", None)], []))


def test_pixmaps_are_argb_in_network_order_at_every_size() -> None:
    image = Image.new("RGBA", (64, 64), (10, 20, 30, 255))
    out = pixmaps(image)
    assert [(w, h) for w, h, _ in out] == [(s, s) for s in PIXMAP_SIZES]
    for width, height, data in out:
        assert len(data) == width * height * 4
        assert data[:4] == bytes([255, 10, 20, 30])
    assert pixmaps(None) == []


def test_ids_stay_with_their_place_when_a_submenu_grows() -> None:
    """Panels update the widget of an id in place: a separator must never take a label's id."""
    from aios.desktop.dbusmenu import Ids

    ids = Ids()
    pystray = import_pystray()

    def menu(runs: int) -> Any:
        recent = tuple(Entry(f"run {i}", lambda: None) for i in range(runs))
        entries = [Entry("Recent runs", submenu=recent), SEPARATOR, Entry("Quit", lambda: None)]
        return to_pystray(lambda: entries, pystray)

    before = Snapshot.of(menu(1), lambda item: None, ids)
    after = Snapshot.of(menu(3), lambda item: None, ids)
    assert before.children[ROOT] == after.children[ROOT]
    assert labels(before) == labels(after) == ["Recent runs", "-", "Quit"]
    assert len(after.children[after.children[ROOT][0]]) == 3
