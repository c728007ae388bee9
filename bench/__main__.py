"""``python -m bench``: run every benchmark and print its figures (never asserted in tests)."""

from __future__ import annotations

from bench import dashboard, runs, startup

for module in (startup, runs, dashboard):
    module.main()
