"""A diff as HTML: every line escaped and classed; files anchored for the list to link to."""

from __future__ import annotations

from aios.server.diffview import anchor, file_of, render

DIFF = b"""diff --git a/x y.html b/x y.html
new file mode 100644
--- /dev/null
+++ b/x y.html
@@ -0,0 +1,2 @@
+<script>alert(1)</script>
-gone & "quoted"
 same
\\ No newline at end of file

[aios: diff truncated at 1 MiB; the rest is in git]
"""


def test_every_line_is_escaped_and_classed() -> None:
    html = str(render(DIFF))
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert f'<span class="d-file" id="{anchor("x y.html")}">diff --git a/x y.html' in html
    for kind, text in (
        ("meta", "new file mode"),
        ("meta", "--- /dev/null"),
        ("meta", "+++ b/x y.html"),
        ("hunk", "@@ -0,0 +1,2 @@"),
        ("add", "+&lt;script&gt;"),
        ("del", '-gone &amp; "quoted"'),
        ("ctx", " same"),
        ("note", "\\ No newline"),
        ("note", "[aios: diff truncated"),
    ):
        assert f'<span class="d-{kind}">{text}' in html, (kind, text)
    assert html.count("\n") == DIFF.count(b"\n")


def test_file_names_come_from_the_header_only_when_unambiguous() -> None:
    assert file_of("diff --git a/lib/a.py b/lib/a.py") == "lib/a.py"
    assert file_of("diff --git a/a b/c") is None
    assert file_of('diff --git "a/t\\tab" "b/t\\tab"') is None
    assert anchor("a") != anchor("b") and anchor("a").startswith("diff-")
