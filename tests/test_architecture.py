"""The import graph of ``aios/``, read from the code with ``ast``: no cycles, arrows only downward.

Every import counts, at module level or inside a function (a function-level import is still a
dependency, only a later one). The layers and the rules are data here and a table in
docs/architecture.md; the test checks that the two say the same.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "aios"
DOC = ROOT / "docs" / "architecture.md"
MAX_LINES = 500
SHELL_MAX_LINES = 450

# The lifecycle core: pure, fed events; the only writer of run records.
CORE = ("agents.lifecycle", "agents.effects", "agents.learning", "agents.errors")

STORE = (
    "store",
    "store_db",
    "store_errors",
    "store_logs",
    "store_schema",
    "checkouts",
    "worktrees",
)
# What the server and the tray may not import of the store: their exceptions and value types
# (Usage, Stream) are the facade's words too; the store itself is not.
STORE_ITSELF = {"Store", "Database", "check_database", "Worktrees"}

# Lowest first: a module may import its own layer and the layers below it, never one above.
# Names are relative to ``aios``; a package's name covers all its modules, and the longest name
# that matches a module decides its layer.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("records", ("runs",)),
    (
        "foundation",
        (
            "__init__", "private", "paths", "runtime", "logs", "credentials", "events",
            "unseen", "tasks", "workers", "memory", "lazy", "template", "git", "workdir", "disk",
            "formatting", "client", "wsclient", "browser",
        ),
    ),
    ("desktop", ("desktop",)),
    ("hooks", ("hooks",)),
    ("core", CORE),
    ("store", STORE),
    ("agents", ("agents",)),
    ("config", ("config", "config_values")),
    ("facade", ("facade",)),
    ("server", ("server",)),
    ("host", ("host",)),
    ("faces", ("tray", "cli", "follow", "__main__")),
)  # fmt: skip


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, relative to aios ("agents.output")
    target: str  # the imported module, relative to aios
    names: tuple[str, ...]  # what ``from target import ...`` named; empty for ``import target``
    line: int

    def __str__(self) -> str:
        return f"aios/{self.source.replace('.', '/')}.py:{self.line} imports {self.target}"


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _relative(name: str) -> str | None:
    """``aios.x.y`` -> ``x.y``; ``aios`` -> ``__init__``; None outside AIOS."""
    if name == "aios":
        return "__init__"
    return name.removeprefix("aios.") if name.startswith("aios.") else None


def _imports_of(module: str, path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(tree):  # every depth: function-level imports count too
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (target := _relative(alias.name)) is not None:
                    yield Import(module, target, (), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package, one level up per extra dot
                base = package[: len(package) - node.level + 1] if node.level > 1 else package
                full = ".".join(["aios", *base, *([node.module] if node.module else [])])
            else:
                full = node.module or ""
            if (target := _relative(full)) is None:
                continue
            names = tuple(alias.name for alias in node.names)
            # ``from aios.agents import lifecycle`` imports the module aios.agents.lifecycle.
            submodules = [f"{target}.{n}" if target != "__init__" else n for n in names]
            if all(name in MODULES for name in submodules):
                for name, sub in zip(names, submodules, strict=True):
                    yield Import(module, sub, (name,), node.lineno)
            else:
                yield Import(module, target, names, node.lineno)


def imports() -> list[Import]:
    return [i for m, p in MODULES.items() for i in _imports_of(m, p) if i.target != i.source]


def layer_of(module: str) -> int:
    best: tuple[int, int] | None = None  # (length of the matching name, layer)
    for index, (_, names) in enumerate(LAYERS):
        for name in names:
            matches = module == name or module.startswith(name + ".")
            if matches and (best is None or len(name) > best[0]):
                best = (len(name), index)
    assert best is not None, f"aios.{module} is in no layer: add it to LAYERS and the doc's table"
    return best[1]


def room_of(module: str) -> str:
    """The top-level module or package a module is in: the rooms of docs/architecture.md."""
    return module.split(".", maxsplit=1)[0]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _inside(module: str, *names: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in names)


def _breaking(rule: str) -> list[str]:
    return [str(i) for i in imports() if not RULES[rule](i)]


# The rules beyond the layer order, as predicates an import must satisfy (docs/architecture.md).
RULES: dict[str, Callable[[Import], bool]] = {
    "runs imports nothing of AIOS": lambda i: i.source != "runs",
    "the core imports only runs, formatting and the core": lambda i: (
        not _inside(i.source, *CORE) or _inside(i.target, "runs", "formatting", *CORE)
    ),
    "the store never imports agents, config or anything above": lambda i: (
        not _inside(i.source, *STORE) or layer_of(i.target) <= layer_of("store")
    ),
    "desktop modules never import runs' rooms, the server or the host": lambda i: (
        not _inside(i.source, "desktop")
        or not _inside(
            i.target, "server", "host", "facade", "tray", "agents", "store", "config", "runs"
        )
    ),
    "only the tray uses the desktop, beyond opening folders and starting at login": lambda i: (
        not _inside(i.target, "desktop")
        or _inside(i.source, "desktop", "tray")
        or i.target in ("desktop.opener", "desktop.autostart")
    ),
    "server and tray reach runs only through the facade": lambda i: (
        not _inside(i.source, "server", "tray")
        or i.target == "agents.errors"
        or (i.target.startswith("store") and bool(i.names) and not STORE_ITSELF & set(i.names))
        or not _inside(i.target, *STORE, "agents", "git")
    ),
}


def test_the_graph_is_read() -> None:
    # A parser that found nothing would pass every rule below.
    edges = {(i.source, i.target) for i in imports()}
    assert ("facade", "agents.supervisor") in edges
    assert ("desktop.backend", "desktop.sni") in edges  # a function-level import
    assert ("agents.formats.aider", "agents.formats.aider_chat") in edges  # a package import


def test_cycles_are_found() -> None:
    # As main had them before issue 20: sni and the backend chooser importing each other.
    edges = {"desktop.sni": {"desktop.backend"}, "desktop.backend": {"desktop.sni", "runs"}}
    assert _cycles(edges) == [["desktop.backend", "desktop.sni"]]
    assert _cycles({"a": {"b"}, "b": {"c"}}) == []


def test_no_module_imports_another_in_a_cycle() -> None:
    edges: dict[str, set[str]] = {}
    for i in imports():
        edges.setdefault(i.source, set()).add(i.target)
    assert _cycles(edges) == []


def test_no_package_imports_another_in_a_cycle() -> None:
    edges: dict[str, set[str]] = {}
    for i in imports():
        if room_of(i.source) != room_of(i.target):
            edges.setdefault(room_of(i.source), set()).add(room_of(i.target))
    assert _cycles(edges) == []


def test_every_module_is_in_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


def test_arrows_only_go_down() -> None:
    upward = [
        f"{i} ({LAYERS[layer_of(i.source)][0]} -> {LAYERS[layer_of(i.target)][0]})"
        for i in imports()
        if layer_of(i.target) > layer_of(i.source)
    ]
    assert upward == []


@pytest.mark.parametrize("rule", list(RULES))
def test_rule(rule: str) -> None:
    assert _breaking(rule) == []


def test_the_rules_catch_what_they_forbid() -> None:
    def breaks(source: str, target: str, *names: str) -> list[str]:
        made = Import(source, target, names, 1)
        return [rule for rule, holds in RULES.items() if not holds(made)]

    assert breaks("runs", "private") == ["runs imports nothing of AIOS"]
    assert breaks("agents.lifecycle", "store") == [
        "the core imports only runs, formatting and the core"
    ]
    assert breaks("store", "agents.supervisor") == [
        "the store never imports agents, config or anything above"
    ]
    assert breaks("desktop.sni", "server.api") == [
        "desktop modules never import runs' rooms, the server or the host"
    ]
    assert breaks("server.pages", "store", "Store") == [
        "server and tray reach runs only through the facade"
    ]
    assert breaks("tray", "agents.supervisor") == [
        "server and tray reach runs only through the facade"
    ]
    assert breaks("server.pages", "desktop.icon") == [
        "only the tray uses the desktop, beyond opening folders and starting at login"
    ]
    assert breaks("server.errors", "agents.errors") == []
    assert breaks("server.api", "store_errors", "UnknownRun") == []
    assert breaks("server.api", "store_db", "Database") == [
        "server and tray reach runs only through the facade"
    ]


def test_the_layers_are_the_documented_ones() -> None:
    """docs/architecture.md's table of layers lists the same layers, in the same order, with the
    same modules."""
    rows = re.findall(r"^\| (\d+) \| (\w+) \| (.+?) \|", DOC.read_text(encoding="utf-8"), re.M)
    documented = [
        (name, tuple(m.strip("`/").replace("/", ".") for m in re.findall(r"`[^`]+`", cells)))
        for _, name, cells in rows
    ]
    assert documented == [(name, names) for name, names in LAYERS]


def test_the_rules_are_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert [rule for rule in RULES if f"- {rule}" not in text] == []


def test_no_module_is_over_500_lines() -> None:
    lengths = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in MODULES.items()}
    assert [f"aios.{m}: {n} lines" for m, n in lengths.items() if n > MAX_LINES] == []
    # The run shell stays thin: what it does beyond carrying out the core belongs elsewhere.
    assert lengths["agents.supervisor"] < SHELL_MAX_LINES


def test_domain_errors_carry_no_http_status() -> None:
    """The core and the store say what went wrong; the server's table says how HTTP answers it,
    one entry for each error they can raise."""
    from aios.agents import errors as core_errors
    from aios.server.errors import STATUS
    from aios.store_errors import StoreError

    def subclasses(kind: type[Exception]) -> list[type[Exception]]:
        return [kind, *(sub for direct in kind.__subclasses__() for sub in subclasses(direct))]

    domain = subclasses(core_errors.SupervisorError) + subclasses(StoreError)
    assert [kind.__name__ for kind in domain if kind not in STATUS] == []
    # Neither a class attribute nor one set in __init__ (``self.status = ...``).
    statuses = [
        f"{path.name}:{node.lineno}"
        for path in (MODULES["agents.errors"], MODULES["store_errors"])
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Name | ast.Attribute)
        and isinstance(node.ctx, ast.Store)
        and (node.id if isinstance(node, ast.Name) else node.attr) == "status"
    ]
    assert statuses == []
