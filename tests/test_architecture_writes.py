"""The lifecycle core is the only writer of run records (issue 20): read from the code itself.

The rule, as checked here on every module of ``aios/`` parsed with ``ast``: outside the core
modules (``CORE``) nothing

- assigns to an attribute of a run (``run.state = …``, ``a.run.pid, b = …``), augments one
  (``run.restarts += 1``), annotates one (``run.x: int = …``) or deletes one;
- calls ``setattr``, ``delattr`` or ``object.__setattr__`` on a run;
- makes a new record from a run with ``dataclasses.replace`` (a new snapshot is a write too:
  only the core may hand one out).

How a run is recognised, without running anything: an expression is a run when its last name
(``run`` in ``run``, in ``effect.run`` and in ``runs[0]`` alike) is ``run``, ends in ``_run``,
or is one of ``RUN_NAMES``; or when it is a name the enclosing function annotates with a type
that mentions ``Run`` (a parameter ``x: Run | None``, a local ``x: list[Run] = …``). Names for
runs in this code base follow that (reviewers: keep it so). And since ``Run`` is frozen
(checked below), any assignment that slipped past the names would raise at run time anyway;
this test catches the ways round that (``object.__setattr__``), and ``replace`` calls.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from aios.runs import Run, RunState

AIOS = Path(__file__).resolve().parent.parent / "aios"
CORE = {"agents/lifecycle.py", "agents/learning.py"}
RUN_NAMES = {"run", "runs", "parent", "stored", "leftover", "interrupted", "snapshot"}
WRITERS = {"setattr", "delattr"}


def _last_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Subscript | ast.Starred):
        node = node.value
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _mentions_run(annotation: ast.expr | None) -> bool:
    if annotation is None:
        return False
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return "Run" in annotation.value.replace("|", " ").replace("[", " ").split()
    return any(isinstance(n, ast.Name) and n.id == "Run" for n in ast.walk(annotation))


class Writes(ast.NodeVisitor):
    """Finds writes to run records in one module: (line, what) for each."""

    def __init__(self) -> None:
        self.found: list[tuple[int, str]] = []
        self._typed: list[set[str]] = [set()]  # names annotated as runs, per function

    def is_run(self, node: ast.expr) -> bool:
        name = _last_name(node)
        if name is None:
            return False
        base = node
        while isinstance(base, ast.Subscript | ast.Starred):
            base = base.value
        typed = isinstance(base, ast.Name) and base.id in self._typed[-1]
        return typed or name in RUN_NAMES or name.endswith("_run")

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        args = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        typed = {a.arg for a in args if _mentions_run(a.annotation)}
        self._typed.append(typed)
        self.generic_visit(node)
        self._typed.pop()

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def _targets(self, targets: list[ast.expr], line: int, how: str) -> None:
        for target in targets:
            if isinstance(target, ast.Tuple | ast.List):
                self._targets(list(target.elts), line, how)
            elif isinstance(target, ast.Attribute) and self.is_run(target.value):
                self.found.append((line, f"{how} {ast.unparse(target)}"))

    def visit_Assign(self, node: ast.Assign) -> None:
        self._targets(node.targets, node.lineno, "assigns")
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._targets([node.target], node.lineno, "augments")
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if isinstance(node.target, ast.Name) and _mentions_run(node.annotation):
            self._typed[-1].add(node.target.id)
        self._targets([node.target], node.lineno, "assigns")
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        self._targets(node.targets, node.lineno, "deletes")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func, args = node.func, node.args
        name = ast.unparse(func)
        if args and self.is_run(args[0]):
            if name in WRITERS or name.endswith("__setattr__") or name.endswith("__delattr__"):
                self.found.append((node.lineno, f"calls {name} on {ast.unparse(args[0])}"))
            elif name in {"replace", "dataclasses.replace"}:
                self.found.append((node.lineno, f"makes a record: {ast.unparse(node)[:60]}"))
        self.generic_visit(node)


def writes(source: str) -> list[tuple[int, str]]:
    finder = Writes()
    finder.visit(ast.parse(source))
    return finder.found


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(AIOS.rglob("*.py")):
        yield path.relative_to(AIOS).as_posix(), path


def test_nothing_outside_the_core_writes_a_run_record() -> None:
    offences = [
        f"aios/{name}:{line}: {what}"
        for name, path in modules()
        if name not in CORE
        for line, what in writes(path.read_text(encoding="utf-8"))
    ]
    assert offences == [], "only the lifecycle core writes run records:\n" + "\n".join(offences)


def test_the_core_modules_exist_and_do_write_runs() -> None:
    """The allow-list names real modules, and the rule sees their writes (it is not blind)."""
    for name in CORE:
        assert (AIOS / name).is_file(), name
    assert writes((AIOS / "agents/lifecycle.py").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "source",
    [
        "run.state = 1",
        "self.run.pid = 2",
        "live.run.activity, x = 1, 2",
        "runs[0].state = 1",
        "parent.restarts += 1",
        "new_run.error: str = 'x'",
        "del run.pid",
        "setattr(run, 'state', 1)",
        "object.__setattr__(effect.run, 'state', 1)",
        "replace(run, state=1)",
        "dataclasses.replace(stored, pid=None)",
        "def f(x: Run) -> None:\n    x.state = 1",
        "def f(x: 'Run | None') -> None:\n    x.state = 1",
        "def f() -> None:\n    x: list[Run] = []\n    x[0].pid = 1",
    ],
)
def test_the_rule_finds_each_kind_of_write(source: str) -> None:
    assert len(writes(source)) == 1, source


@pytest.mark.parametrize(
    "source",
    [
        "runner.state = 1",  # not a run by its name
        "outcome = replace(outcome, lost='x')",
        "tree = replace(run.worktree, state=1)",  # a worktree, not a run
        "def f(x: Worktree) -> None:\n    x.state = 1",
        "run = other",  # rebinding a name is no write to a record
    ],
)
def test_the_rule_lets_other_writes_be(source: str) -> None:
    assert writes(source) == [], source


def test_a_run_record_is_frozen() -> None:
    run = Run(id="x", agent="a", prompt="", cwd="/")
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.state = RunState.RUNNING  # type: ignore[misc]
    assert dataclasses.fields(Run) and Run.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert not hasattr(run, "__dict__")  # slots: no attribute can be added beside the fields
