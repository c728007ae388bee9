from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import DaemonProcess, start_daemon


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "aios-home"
    path.mkdir()
    return path


@pytest.fixture
def daemon(home: Path) -> Iterator[DaemonProcess]:
    proc = start_daemon(home)
    try:
        yield proc
    finally:
        proc.close()
