"""``python -m aios``: the same entry point as the ``aios`` console script."""

from __future__ import annotations

import sys

from aios.cli import main

sys.exit(main())
