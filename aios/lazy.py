"""Modules imported on first use, not at start-up: what an idle daemon never touches stays out.

``psutil = lazy_import("psutil")`` gives an object that imports the module the first time one of
its attributes is read, then hands every attribute on, so ``psutil.Process(...)`` reads the same
wherever it is written. An idle daemon, with no run to watch, never loads it (``make bench``
measures idle RSS against a bare Quart app). The import itself is ``importlib.import_module``,
which is thread-safe (unlike ``importlib.util.LazyLoader`` before Python 3.12): the first use may
well be on a worker thread.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _Lazy:
    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attribute)


def lazy_import(name: str) -> Any:
    return _Lazy(name)
