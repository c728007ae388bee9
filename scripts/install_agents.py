"""``make agents``: the real-agents tier's agent CLIs, at pinned versions, in ``.agents/``.

The pins live in ``agents/``: ``package.json`` (with its ``package-lock.json``, installed by
``npm ci``) for Claude Code, Codex CLI and Gemini CLI, ``requirements.txt`` for Aider (in a venv
of its own: aider wants Python 3.10 to 3.12). Nothing is installed globally or put on the user's
PATH: ``.agents/bin`` holds the four CLIs and the ``node`` they run with, and only the tests put
it on a PATH (tests/realagents.py). A stamp keyed on the pins makes a second run a no-op.

Node.js 20 or newer runs the npm ones; where the system's node is older, npm's ``node`` package
(NODE_FALLBACK) is installed into ``.agents/node`` and used instead.

``--if-possible`` (what ``make test`` uses): outside CI, a machine without Node.js and npm, or
without a Python for aider, or where the install fails, gets a note and exit 0 (the tier then
skips and says why); in CI every such problem fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PINS = ROOT / "agents"
TARGET = ROOT / ".agents"
BIN = TARGET / "bin"  # the four CLIs and node: what a test puts first on PATH
STAMP = TARGET / ".installed"
NODE_MAJOR = 20  # gemini-cli 0.61 refuses anything older
# npm's ``node`` package carries the binary: installed into .agents/node only where the system's
# node is older than NODE_MAJOR (Debian bookworm's own nodejs is 18).
NODE_FALLBACK = "22.23.3"
AIDER_PYTHONS = ((3, 10), (3, 11), (3, 12))


@dataclass(frozen=True)
class Pin:
    cli: str  # the executable's name
    package: str  # on npm or PyPI
    version: str
    npm: bool  # else: PyPI, in aider's venv


class Unmet(Exception):
    """A prerequisite this machine lacks, in one sentence saying what to install."""


def pins() -> tuple[Pin, ...]:
    """The pinned CLIs, in the presets' order, read from ``agents/``."""
    npm = json.loads((PINS / "package.json").read_text())["dependencies"]
    pip = {}
    for line in (PINS / "requirements.txt").read_text().splitlines():
        if match := re.fullmatch(r"\s*([A-Za-z0-9_.-]+)==(\S+)\s*", line):
            pip[match[1]] = match[2]
    return (
        Pin("claude", "@anthropic-ai/claude-code", npm["@anthropic-ai/claude-code"], npm=True),
        Pin("codex", "@openai/codex", npm["@openai/codex"], npm=True),
        Pin("aider", "aider-chat", pip["aider-chat"], npm=False),
        Pin("gemini", "@google/gemini-cli", npm["@google/gemini-cli"], npm=True),
    )


def fingerprint() -> str:
    """What the stamp holds: the pin files' contents, so any change of a pin reinstalls."""
    digest = hashlib.sha256(NODE_FALLBACK.encode())
    for name in ("package.json", "package-lock.json", "requirements.txt"):
        digest.update((PINS / name).read_bytes())
    return digest.hexdigest()


def installed() -> bool:
    """Whether ``.agents/`` holds the pinned versions (as last installed by this script)."""
    try:
        current = STAMP.read_text().strip() == fingerprint()
    except OSError:
        return False
    return current and all((BIN / pin.cli).exists() for pin in pins())


def node_version(node: str) -> tuple[int, str]:
    """The major version of ``node`` (0 when it says none) and what it said."""
    said = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    match = re.match(r"v(\d+)\.", said.stdout.strip())
    return (int(match[1]) if match else 0), said.stdout.strip() or "unreadable"


def node_binary() -> str:
    """A node of at least NODE_MAJOR: the system's, or npm's ``node`` package in .agents/node."""
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        raise Unmet("Node.js and npm are not installed (the agent CLIs are npm packages)")
    major, said = node_version(node)
    if major >= NODE_MAJOR:
        return node
    print(f"{node} is {said}, older than {NODE_MAJOR}: taking node {NODE_FALLBACK} from npm")
    prefix = TARGET / "node"
    run(
        "npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--loglevel=error",
        f"node@{NODE_FALLBACK}",
    )  # fmt: skip
    fallback = prefix / "node_modules" / ".bin" / "node"
    major, said = node_version(str(fallback)) if fallback.exists() else (0, "missing")
    if major < NODE_MAJOR:
        raise Unmet(
            f"{node} is too old and npm's node@{NODE_FALLBACK} is {said}: gemini-cli needs "
            f"Node.js {NODE_MAJOR} or newer"
        )
    return str(fallback.resolve())


def aider_python() -> str:
    """A Python aider runs on: the newest of 3.12, 3.11, 3.10 found, else python3 if it is one."""
    wanted = ", ".join(f"{a}.{b}" for a, b in AIDER_PYTHONS)
    for name in (*(f"python{a}.{b}" for a, b in reversed(AIDER_PYTHONS)), "python3"):
        path = shutil.which(name)
        if path is None:
            continue
        said = subprocess.run(
            [path, "-c", "import sys, venv; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )  # a pyenv shim of a version not selected exits non-zero here
        if said.returncode == 0 and tuple(map(int, said.stdout.split())) in AIDER_PYTHONS:
            return path
    raise Unmet(f"aider needs Python {wanted} (with venv), and none is installed")


def run(*argv: str, cwd: Path | None = None, **env: str) -> None:
    print("+", " ".join(argv), flush=True)
    subprocess.run(argv, cwd=cwd, env={**os.environ, **env}, check=True)


def install() -> None:
    python = aider_python()
    if TARGET.exists():
        shutil.rmtree(TARGET)  # whatever was there is of other pins, or half done
    TARGET.mkdir(parents=True)
    node = node_binary()
    npm_dir, aider_dir = TARGET / "npm", TARGET / "aider"
    npm_dir.mkdir()
    for name in ("package.json", "package-lock.json"):
        shutil.copy(PINS / name, npm_dir / name)
    # The packages' own install scripts run on that node too.
    path = os.pathsep.join((str(Path(node).parent), os.environ.get("PATH", "")))
    run("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error", cwd=npm_dir, PATH=path)
    run(python, "-m", "venv", str(aider_dir))
    run(
        str(aider_dir / "bin" / "python"), "-m", "pip", "install", "--quiet",
        "--disable-pip-version-check", "-r", str(PINS / "requirements.txt"),
    )  # fmt: skip
    BIN.mkdir()
    (BIN / "node").symlink_to(node)
    for pin in pins():
        found = npm_dir / "node_modules" / ".bin" / pin.cli if pin.npm else aider_dir / "bin"
        target = found if pin.npm else found / pin.cli
        if not target.exists():
            raise RuntimeError(f"{pin.package} {pin.version} installed no {pin.cli} at {target}")
        (BIN / pin.cli).symlink_to(os.path.relpath(target, BIN))
    STAMP.write_text(fingerprint() + "\n")
    print(f"installed in {TARGET}: " + ", ".join(f"{p.cli} {p.version}" for p in pins()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--if-possible",
        action="store_true",
        help="outside CI, a missing prerequisite or a failed install is a note, not an error",
    )
    args = parser.parse_args(argv)
    if installed():
        return 0
    strict = not args.if_possible or os.environ.get("CI", "").lower() in {"1", "true", "yes"}
    try:
        install()
    except (Unmet, subprocess.CalledProcessError, OSError, RuntimeError) as exc:
        print(f"install_agents: {exc}", file=sys.stderr)
        if strict:
            return 1
        print("install_agents: the real-agents tier will be skipped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
