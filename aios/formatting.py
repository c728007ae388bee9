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
