"""``python -m bench``: run every benchmark and print its figures (never asserted in tests)."""

from __future__ import annotations

from bench import startup

for module in (startup,):
    module.main()
