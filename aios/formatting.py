"""Human-readable figures shared by the CLI and the dashboard (no web imports: the CLI is fast)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta


def duration(seconds: float | None, *, precise: bool = False) -> str:
    """``42s``, ``3m 07s``, ``2h 05m``; empty for no value. ``precise`` keeps a tenth of a second
    below a minute (``0.5s``, ``12.3s``: how long a tool call or an agent's turn took).

    The one way AIOS writes a duration: the dashboard (whose script counts live ones up the same
    way, static/app.js), the CLI, activity details and the lines AIOS adds to a run's log."""
    if seconds is None:
        return ""
    if precise and seconds < 60:
        return f"{max(seconds, 0):.1f}s"
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


# Times for people (the dashboard, `aios ps`) are this machine's local time, labelled with its
# zone; times for programs (the API, `--json`) are UTC in ISO 8601. One convention each.


def zone(timestamp: float | None = None) -> str:
    """The local zone's name at ``timestamp`` (now by default): ``CET``, ``UTC``, ``UTC+05:30``."""
    moment = datetime.fromtimestamp(time.time() if timestamp is None else timestamp).astimezone()
    name = moment.strftime("%Z")
    if name and not name.startswith(("+", "-")):
        return name
    offset = moment.utcoffset() or timedelta()
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def timestamp(value: float) -> str:
    """``2026-11-25 07:10:27``, local time."""
    return datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def clock(value: float | None, now: float | None = None) -> str:
    """Local time, short: ``07:10:27`` today, ``2026-11-24 07:10`` before; empty for no value."""
    if value is None:
        return ""
    moment = datetime.fromtimestamp(value)
    today = datetime.fromtimestamp(time.time() if now is None else now).date()
    return moment.strftime("%H:%M:%S" if moment.date() == today else "%Y-%m-%d %H:%M")


def from_iso(text: str) -> float:
    """A timestamp from the API's ISO 8601 (``2026-11-25T06:10:27.301Z``)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


MINUS = "\N{MINUS SIGN}"  # typeset like the plus beside it, as diff summaries are


def change_summary(files: int, added: int, deleted: int, commits: int = 0) -> str:
    """``3 files +40 −2`` (with ``, 1 commit`` when there were any); ``no changes``."""  # noqa: RUF002
    if not files and not commits:
        return "no changes"
    text = f"{files} file{'' if files == 1 else 's'} +{added} {MINUS}{deleted}"
    if commits:
        text += f", {commits} commit{'' if commits == 1 else 's'}"
    return text


def exit_status(code: int | None, signal: str | None = None) -> str:
    """How a run ended, in the exit column: ``3``, or the signal's name (``SIGTERM``) where one
    ended it; empty while it has not (or never started)."""
    if code is None:
        return ""
    return signal or str(code)
