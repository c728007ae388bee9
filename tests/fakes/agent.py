"""A stand-in for an agent CLI (claude, codex, gemini, aider), run as ``agent.py NAME ARGS...``.

Tests put executables with the CLIs' names on PATH that run this script, so no test ever
depends on which real CLIs are installed, or sends a real prompt. Stdlib only.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    name, args = argv[0], argv[1:]
    print(f"fake {name}: {' '.join(args)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
