"""Human-readable times: local, labelled with the zone (checked in child processes, whose TZ
can be set without touching this one's)."""

from __future__ import annotations

import subprocess
import sys

import pytest

SHOW = (
    "from aios.formatting import clock, from_iso, timestamp, zone\n"
    "t = from_iso('2026-11-25T06:10:27.301Z')\n"
    "print(zone(t), timestamp(t), clock(t, now=t), clock(t, now=t + 86400), sep='|')\n"
)


@pytest.mark.parametrize(
    ("tz", "shown"),
    [
        ("UTC0", "UTC|2026-11-25 06:10:27|06:10:27|2026-11-25 06:10"),
        ("XYZ-5:30", "XYZ|2026-11-25 11:40:27|11:40:27|2026-11-25 11:40"),
        # Zones known only by their offset get one that says which way it goes.
        ("<+0530>-5:30", "UTC+05:30|2026-11-25 11:40:27|11:40:27|2026-11-25 11:40"),
        ("<-03>3", "UTC-03:00|2026-11-25 03:10:27|03:10:27|2026-11-25 03:10"),
    ],
)
def test_local_time_and_zone_label(tz: str, shown: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SHOW],
        env={"TZ": tz, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == shown
