"""Starting AIOS at login, per OS.

Each backend owns one entry: an XDG autostart file on Linux and the BSDs, a LaunchAgent property
list on macOS, a value under the ``Run`` key on Windows. ``status()`` re-reads that entry every
time (the user can change it behind our back), ``enable()`` is idempotent, and ``disable()``
removes only what AIOS wrote: an entry at our location that lacks our marker is FOREIGN, reported
and never touched, because it is the user's.

Nothing is loaded right away: no ``launchctl``, no session bus. The entry takes effect at the next
login, which is what "start at login" promises; the running AIOS is already running.
"""

from __future__ import annotations

import contextlib
import os
import plistlib
import re
import subprocess
import sys
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol
from xml.parsers.expat import ExpatError

DESKTOP_MARKER = "X-AIOS-Autostart"
PLIST_MARKER = "AIOSAutostart"
AGENT_LABEL = "dev.aios.agent"
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"  # under HKEY_CURRENT_USER
RUN_VALUE = "AIOS"


class AutostartState(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"
    FOREIGN = "foreign"  # something not written by AIOS sits at our location: report, never touch


@dataclass(frozen=True)
class AutostartStatus:
    state: AutostartState
    location: str  # a file path, or HKCU\<key>\<value name>
    detail: str


class AutostartError(Exception):
    def __init__(self, action: str, location: str, reason: str) -> None:
        super().__init__(f"cannot {action} autostart at {location}: {reason}")
        self.location = location


def launch_command() -> list[str]:
    """The absolute command a login session runs: the tray, without opening the browser.

    Login sessions have a minimal PATH, so nothing is looked up there. The ``aios`` console script
    next to the interpreter (a venv's ``bin``) is preferred because it names the app in process
    lists; ``sys.executable`` is not resolved, since resolving a venv's symlink escapes the venv.
    """
    python = os.path.abspath(sys.executable)
    script = Path(python).with_name("aios.exe" if sys.platform == "win32" else "aios")
    if script.is_file():
        return [str(script), "--no-browser"]
    return [python, "-m", "aios", "--no-browser"]


class Autostart(ABC):
    """One login entry. Subclasses read, write and remove it; the rules live here."""

    def __init__(self, command: Sequence[str], location: str) -> None:
        self.command = list(command)
        self.location = location

    @abstractmethod
    def status(self) -> AutostartStatus: ...

    @abstractmethod
    def _write(self) -> None: ...

    @abstractmethod
    def _remove(self) -> None:
        """Remove the entry; an entry that is already gone is fine."""

    def enable(self) -> AutostartStatus:
        self._change("enable", self._write)
        return self.status()

    def disable(self) -> AutostartStatus:
        self._change("disable", self._remove)
        return self.status()

    def _status(self, state: AutostartState, detail: str) -> AutostartStatus:
        return AutostartStatus(state, self.location, detail)

    def _change(self, action: str, operation: Callable[[], None]) -> None:
        current = self.status()
        if current.state is AutostartState.FOREIGN:
            raise AutostartError(action, self.location, f"{current.detail}; leaving it alone")
        try:
            operation()
        except OSError as exc:
            raise AutostartError(action, self.location, exc.strerror or str(exc)) from exc


class FileAutostart(Autostart):
    """An entry that is one file: read fresh on every status, written atomically."""

    def __init__(self, command: Sequence[str], path: Path) -> None:
        super().__init__(command, str(path))
        self.path = path

    def _read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AutostartError("read", self.location, exc.strerror or str(exc)) from exc

    def _remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def _write_bytes(self, data: bytes) -> None:
        # A half-written entry would be FOREIGN (no marker yet) and so stuck; replace it whole.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".aios-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o644)  # mkstemp's 0600 is safe but unusual for these files
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


# Desktop Entry spec, "The Exec key": arguments with these characters must be double-quoted.
_RESERVED = frozenset(" \t\n\"'\\><~|&;$*?#()`")


def desktop_exec(command: Sequence[str]) -> str:
    """The Exec value for ``command``, quoted by the spec's two layers of escaping."""
    parts = []
    for arg in command:
        if arg and not _RESERVED.intersection(arg):
            quoted = arg
        else:
            quoted = '"' + re.sub(r'(["`$\\])', r"\\\1", arg) + '"'
        # The string-value escapes are undone before the Exec quoting, so backslashes double
        # again; % starts a field code, so a literal one is %%.
        quoted = quoted.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        parts.append(quoted.replace("%", "%%"))
    return " ".join(parts)


class XdgAutostart(FileAutostart):
    """``$XDG_CONFIG_HOME/autostart/aios.desktop``, per the Desktop Application Autostart spec."""

    def status(self) -> AutostartStatus:
        data = self._read()
        if data is None:
            return self._status(AutostartState.DISABLED, "no autostart entry")
        keys = _desktop_keys(data.decode("utf-8", errors="replace"))
        if keys.get(DESKTOP_MARKER) != "true":
            return self._status(AutostartState.FOREIGN, "the entry was not written by AIOS")
        # Desktop settings panels switch an entry off in place rather than deleting it.
        if keys.get("Hidden") == "true" or keys.get("X-GNOME-Autostart-enabled") == "false":
            return self._status(AutostartState.DISABLED, "the entry is switched off")
        wanted = desktop_exec(self.command)
        return self._status(AutostartState.ENABLED, _detail(keys.get("Exec"), wanted))

    def _write(self) -> None:
        lines = [
            "[Desktop Entry]",
            "Type=Application",
            "Name=AIOS",
            "Comment=Start the AIOS agent launcher in the system tray",
            f"Exec={desktop_exec(self.command)}",
            "Terminal=false",
            "Categories=Utility;",
            "X-GNOME-Autostart-enabled=true",
            f"{DESKTOP_MARKER}=true",
        ]
        self._write_bytes(("\n".join(lines) + "\n").encode())


def _desktop_keys(text: str) -> dict[str, str]:
    keys: dict[str, str] = {}
    group = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            group = line
        elif group == "[Desktop Entry]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            keys[key.strip()] = value.strip()
    return keys


def _detail(found: object, wanted: object) -> str:
    if found == wanted:
        return f"starts {found}"
    return f"starts {found}, not the current {wanted}; enable again to update it"


class LaunchAgentAutostart(FileAutostart):
    """``~/Library/LaunchAgents/dev.aios.agent.plist``; launchd reads it at the next login."""

    def status(self) -> AutostartStatus:
        data = self._read()
        if data is None:
            return self._status(AutostartState.DISABLED, "no launch agent")
        try:
            plist = plistlib.loads(data)
        except (plistlib.InvalidFileException, ValueError, ExpatError):
            plist = None
        if not isinstance(plist, dict) or plist.get(PLIST_MARKER) is not True:
            return self._status(AutostartState.FOREIGN, "the launch agent was not written by AIOS")
        return self._status(
            AutostartState.ENABLED, _detail(plist.get("ProgramArguments"), self.command)
        )

    def _write(self) -> None:
        plist = {
            "Label": AGENT_LABEL,
            "ProgramArguments": self.command,
            "RunAtLoad": True,
            "ProcessType": "Interactive",  # a tray app the user sees, not a background daemon
            PLIST_MARKER: True,
        }
        self._write_bytes(plistlib.dumps(plist))


class RegistrySeam(Protocol):
    """The three registry calls we need, on keys under HKEY_CURRENT_USER."""

    def get(self, key: str, name: str) -> str | None: ...
    def set(self, key: str, name: str, value: str) -> None: ...
    def delete(self, key: str, name: str) -> None: ...


class WinRegistry:  # pragma: no cover - winreg exists only on Windows; tests use a fake seam
    """The real registry. ``winreg`` is imported per call so other platforms never load it."""

    def get(self, key: str, name: str) -> str | None:
        if sys.platform != "win32":
            raise AutostartError("read", key, "the Windows registry exists only on Windows")
        import winreg  # noqa: PLC0415 - Windows only

        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, key) as handle:
                value, _kind = winreg.QueryValueEx(handle, name)
        except FileNotFoundError:
            return None
        return str(value)

    def set(self, key: str, name: str, value: str) -> None:
        if sys.platform != "win32":
            raise AutostartError("write", key, "the Windows registry exists only on Windows")
        import winreg  # noqa: PLC0415 - Windows only

        with winreg.CreateKey(winreg.HKEY_CURRENT_USER, key) as handle:
            winreg.SetValueEx(handle, name, 0, winreg.REG_SZ, value)

    def delete(self, key: str, name: str) -> None:
        if sys.platform != "win32":
            raise AutostartError("delete", key, "the Windows registry exists only on Windows")
        import winreg  # noqa: PLC0415 - Windows only

        with (
            contextlib.suppress(FileNotFoundError),
            winreg.OpenKey(winreg.HKEY_CURRENT_USER, key, 0, winreg.KEY_SET_VALUE) as handle,
        ):
            winreg.DeleteValue(handle, name)


class RegistryAutostart(Autostart):
    """``HKCU\\...\\CurrentVersion\\Run`` value ``AIOS``, holding one quoted command line."""

    def __init__(self, command: Sequence[str], registry: RegistrySeam) -> None:
        super().__init__(command, f"HKCU\\{RUN_KEY}\\{RUN_VALUE}")
        self.registry = registry

    def status(self) -> AutostartStatus:
        try:
            value = self.registry.get(RUN_KEY, RUN_VALUE)
        except OSError as exc:
            raise AutostartError("read", self.location, exc.strerror or str(exc)) from exc
        if value is None:
            return self._status(AutostartState.DISABLED, "no Run value")
        # A Run value carries no marker of its own; ours is the only aios line that ends so.
        if not (value.rstrip().endswith("--no-browser") and "aios" in value.lower()):
            return self._status(AutostartState.FOREIGN, "the Run value was not written by AIOS")
        return self._status(AutostartState.ENABLED, _detail(value, self._line()))

    def _line(self) -> str:
        return subprocess.list2cmdline(self.command)

    def _write(self) -> None:
        self.registry.set(RUN_KEY, RUN_VALUE, self._line())

    def _remove(self) -> None:
        self.registry.delete(RUN_KEY, RUN_VALUE)


def for_platform(
    platform: str = sys.platform,
    *,
    command: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    registry: RegistrySeam | None = None,
) -> Autostart:
    """The autostart entry for ``platform``; ``environ`` supplies HOME and XDG_CONFIG_HOME."""
    argv = launch_command() if command is None else list(command)
    env = os.environ if environ is None else environ
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    if platform == "win32":
        return RegistryAutostart(argv, WinRegistry() if registry is None else registry)
    if platform == "darwin":
        path = home / "Library" / "LaunchAgents" / f"{AGENT_LABEL}.plist"
        return LaunchAgentAutostart(argv, path)
    if platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        config = env.get("XDG_CONFIG_HOME", "")
        # The Base Directory spec says a relative XDG_CONFIG_HOME is invalid and to be ignored.
        base = Path(config) if os.path.isabs(config) else home / ".config"
        return XdgAutostart(argv, base / "autostart" / "aios.desktop")
    raise AutostartError("set up", platform, "no autostart mechanism is known for this platform")
