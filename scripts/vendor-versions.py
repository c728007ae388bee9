#!/usr/bin/env python3
"""Put one vendoring script's block into aios/static/vendor/VERSIONS.txt, keeping the others.

    scripts/vendor-versions.py VERSIONS.txt BLOCK

Blocks are separated by a blank line; each starts with "# Written by scripts/NAME; ...", and the
block given replaces the one the same script wrote before (or is added at the end).
"""

from __future__ import annotations

import sys
from pathlib import Path


def merged(existing: str, block: str) -> str:
    author = block.split(";", 1)[0]
    blocks = [b for b in existing.strip().split("\n\n") if b.strip()]
    kept = [b for b in blocks if b.split(";", 1)[0] != author]
    replaced = len(kept) < len(blocks)
    if replaced:
        at = next(i for i, b in enumerate(blocks) if b.split(";", 1)[0] == author)
        kept.insert(at, block.strip())
    else:
        kept.append(block.strip())
    return "\n\n".join(kept) + "\n"


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: vendor-versions.py VERSIONS.txt BLOCK")
    path = Path(sys.argv[1])
    existing = path.read_text() if path.exists() else ""
    path.write_text(merged(existing, sys.argv[2]))


if __name__ == "__main__":
    main()
