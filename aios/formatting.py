"""Human-readable figures shared by the CLI and the dashboard (no web imports: the CLI is fast)."""

from __future__ import annotations


def duration(seconds: float | None) -> str:
    """``42s``, ``3m 07s``, ``2h 05m``; empty for no value."""
    if seconds is None:
        return ""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


MINUS = "\N{MINUS SIGN}"  # typeset like the plus beside it, as diff summaries are


def change_summary(files: int, added: int, deleted: int, commits: int = 0) -> str:
    """``3 files +40 −2`` (with ``, 1 commit`` when there were any); ``no changes``."""  # noqa: RUF002
    if not files and not commits:
        return "no changes"
    text = f"{files} file{'' if files == 1 else 's'} +{added} {MINUS}{deleted}"
    if commits:
        text += f", {commits} commit{'' if commits == 1 else 's'}"
    return text
