"""A unified diff as HTML: each line escaped and wrapped in a class that says what it is.

No script and no style attribute (the CSP forbids both): ``app.css`` colours the classes. Each
file's first line carries an id, so the list of changed files can link to its part of the diff.
"""

from __future__ import annotations

import hashlib
from html import escape

from markupsafe import Markup

_PREFIXES = (
    ("diff --git ", "file"),
    ("@@", "hunk"),
    ("+++ ", "meta"),
    ("--- ", "meta"),
    ("+", "add"),
    ("-", "del"),
    (" ", "ctx"),
    ("\\", "note"),  # \ No newline at end of file
    ("[aios:", "note"),  # our own truncation marker
)


def anchor(path: str) -> str:
    """The id of a file's part of the diff (paths may hold anything; ids may not)."""
    return "diff-" + hashlib.sha1(path.encode(), usedforsecurity=False).hexdigest()[:12]


def file_of(header: str) -> str | None:
    """``diff --git a/P b/P`` → P (AIOS diffs without renames, so both names are the same)."""
    rest = header.removeprefix("diff --git ")
    if not rest.startswith("a/") or (len(rest) - 5) % 2:
        return None
    path = rest[2 : 2 + (len(rest) - 5) // 2]
    return path if rest == f"a/{path} b/{path}" else None


def render(diff: bytes) -> Markup:
    lines = []
    for line in diff.decode("utf-8", errors="replace").splitlines():
        kind = next((k for prefix, k in _PREFIXES if line.startswith(prefix)), "meta")
        attributes = f'class="d-{kind}"'
        if kind == "file" and (path := file_of(line)) is not None:
            attributes += f' id="{anchor(path)}"'
        lines.append(f"<span {attributes}>{escape(line, quote=False)}\n</span>")
    # Every piece of text above went through escape().
    return Markup("".join(lines))  # noqa: S704
