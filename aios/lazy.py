"""Modules imported on first use, not at start-up: what an idle daemon never touches stays out.

``lazy_import("psutil")`` returns the module object at once, but runs its code only when an
attribute is first read (``importlib.util.LazyLoader``), so ``psutil.Process(...)`` reads the
same wherever it is written. An idle daemon, with no run to watch, then never loads it
(``make bench`` measures idle RSS against a bare Quart app).
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_import(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"no module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
