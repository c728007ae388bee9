"""Where AIOS keeps its files.

platformdirs gives the per-OS conventions (XDG on Linux, ~/Library on macOS, %LOCALAPPDATA% on
Windows) so we do not hand-maintain that table. ``AIOS_HOME=DIR`` puts everything under one
directory instead, which is what tests and portable installs use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import platformdirs

from aios.private import ensure_private_dir, make_dirs

__all__ = ["APP_NAME", "Paths", "ensure_private_dir"]

APP_NAME = "aios"


# A NamedTuple, not a dataclass: every CLI command builds one, and importing dataclasses (and
# with it inspect) would cost a command more than the rest of its imports together.
class Paths(NamedTuple):
    config_dir: Path  # config.toml
    data_dir: Path  # history database, run logs
    state_dir: Path  # the daemon's own log file
    run_dir: Path  # runtime file, lock, browser redirect file: private to the user

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Paths:
        env = os.environ if environ is None else environ
        home = env.get("AIOS_HOME")
        if home:
            root = Path(home).expanduser().resolve()
            return cls(root / "config", root / "data", root / "state", root / "run")
        import platformdirs  # noqa: PLC0415 - not needed (nor imported) under AIOS_HOME

        dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
        return cls(
            Path(dirs.user_config_dir),
            Path(dirs.user_data_dir),
            Path(dirs.user_state_dir),
            _runtime_dir(dirs),
        )

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def runtime_file(self) -> Path:
        return self.run_dir / "aios.json"

    @property
    def lock_file(self) -> Path:
        return self.run_dir / "aios.lock"

    def browser_file(self, port: int) -> Path:
        """The 0600 page that logs the browser in, so the token is never on a command line."""
        return self.run_dir / f"open-{port}.html"

    @property
    def session_file(self) -> Path:
        """The browser session's secrets, kept across restarts so open pages stay signed in."""
        return self.run_dir / "session.json"

    @property
    def port_file(self) -> Path:
        """The port the last daemon listened on, tried first by the next one."""
        return self.state_dir / "last-port"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "aios.log"

    @property
    def database(self) -> Path:
        return self.data_dir / "history.sqlite3"

    @property
    def run_logs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def worktrees_dir(self) -> Path:
        """Runs' git worktrees, each beside a marker saying AIOS made it (aios.worktrees)."""
        return self.data_dir / "worktrees"

    def ensure(self) -> None:
        """Create the directories. Data, state and run hold prompts, output, logs and the token:
        they are 0700 whatever existed. The config dir is the user's (AIOS only reads it): made
        private when AIOS creates it, left as it is otherwise."""
        make_dirs(self.config_dir)
        for directory in (self.data_dir, self.state_dir, self.run_dir):
            ensure_private_dir(directory)


def _runtime_dir(dirs: platformdirs.PlatformDirs) -> Path:
    # Without XDG_RUNTIME_DIR (a bare ssh session, a container) platformdirs warns and falls back
    # to a shared /tmp path; our state dir is private to the user and just as good a place.
    if os.name == "posix" and not os.environ.get("XDG_RUNTIME_DIR"):
        return Path(dirs.user_state_dir) / "run"
    return Path(dirs.user_runtime_dir)
