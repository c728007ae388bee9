"""``aios autostart``: start AIOS at login, or not. It needs no running daemon: it reads and
writes the login entry only (``aios.desktop.autostart``, imported when the command runs)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aios.cli.common import EXIT_OK, CliError

if TYPE_CHECKING:
    import argparse


def cmd_autostart(args: argparse.Namespace) -> int:
    """Works without a running daemon: it only reads and writes the login entry."""
    from aios.desktop.autostart import AutostartError, for_platform  # noqa: PLC0415

    try:
        entry = for_platform()
        status = {"enable": entry.enable, "disable": entry.disable, "status": entry.status}[
            args.action
        ]()
    except AutostartError as exc:
        raise CliError(str(exc)) from exc
    print(f"autostart {status.state}: {status.location}")
    if status.detail:
        print(status.detail)
    return EXIT_OK
