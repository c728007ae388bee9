"""Real git repositories in temporary directories, for the worktree and changes tests."""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import require_tool

IDENTITY = ("-c", "user.name=Test User", "-c", "user.email=test@example.com")


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` (as the test, not as AIOS) and return its stdout, stripped."""
    done = subprocess.run(
        ["git", *IDENTITY, *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def make_repo(path: Path, files: dict[str, str] | None = None, *, commit: bool = True) -> Path:
    """A repository on branch main with ``files`` committed (or none, with ``commit=False``);
    its own identity in its config, so merges made by AIOS there have one."""
    require_tool("git")
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test User")
    git(path, "config", "user.email", "test@example.com")
    if commit:
        for name, text in (files or {"README.md": "hello\n"}).items():
            target = path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", "initial")
    return path


def branches(repo: Path) -> list[str]:
    return git(repo, "branch", "--format=%(refname:short)").splitlines()


def worktree_paths(repo: Path) -> list[str]:
    listing = git(repo, "worktree", "list", "--porcelain")
    return [line.split(" ", 1)[1] for line in listing.splitlines() if line.startswith("worktree ")]


def status(repo: Path) -> str:
    return git(repo, *TAME, "status", "--porcelain")


# -- a hostile repository ----------------------------------------------------------------------

# Every hook git documents (githooks(5)): AIOS's git must start none of them.
HOOKS = (
    "applypatch-msg", "pre-applypatch", "post-applypatch", "pre-commit", "pre-merge-commit",
    "prepare-commit-msg", "commit-msg", "post-commit", "pre-rebase", "post-checkout",
    "post-merge", "pre-push", "pre-receive", "update", "proc-receive", "post-receive",
    "post-update", "reference-transaction", "push-to-checkout", "pre-auto-gc", "post-rewrite",
    "sendemail-validate", "fsmonitor-watchman", "p4-changelist", "p4-prepare-changelist",
    "p4-post-changelist", "p4-pre-submit", "post-index-change",
)  # fmt: skip
# Files the planted attributes route through each driver.
HOSTILE_FILES = {
    "notes.txt": "one\ntwo\nthree\n",  # filter=evil diff=evil merge=evil (every file is)
    "data.proc": "long-running filter\n",  # filter=proc: a process filter
    "conf.inc": "filtered by an included config\n",  # filter=inc, defined in an included file
    "plain.ext": "no diff driver\n",  # !diff: the repository's diff.external shows it
}
_SIGNER = """cat > /dev/null
echo >&2
echo "[GNUPG:] SIG_CREATED D 1 8 00 1 PLANTED" >&2
printf '%s\\n' '-----BEGIN PGP SIGNATURE-----' '' 'planted' '-----END PGP SIGNATURE-----'"""


def plant(repo: Path, markers: Path) -> list[str]:
    """Make ``repo`` hostile: every way its configuration, attributes and hooks can make git
    start a program, each program writing a file named after its vector into ``markers`` when
    it runs (and then doing its job, so git goes on). Returns the vectors' names.

    The scripts live under ``.git/``, so they are not part of the work tree. The attributes
    are committed, as a cloned repository's would be; the configuration is the repository's
    own (``.git/config``) and a file it includes."""
    markers.mkdir(parents=True, exist_ok=True)
    bin_dir = repo / ".git" / "planted"
    bin_dir.mkdir()
    vectors: list[str] = []

    def script(name: str, then: str = "exit 0") -> str:
        path = bin_dir / name
        path.write_text(f'#!/bin/sh\necho "$0 $*" >> "{markers / name}"\n{then}\n')
        path.chmod(0o755)
        vectors.append(name)
        return str(path)

    for hook in HOOKS:
        target = repo / ".git" / "hooks" / hook
        target.write_text(f'#!/bin/sh\necho "$0 $*" >> "{markers / ("hook-" + hook)}"\nexit 0\n')
        target.chmod(0o755)
        vectors.append(f"hook-{hook}")
    settings = {
        "core.fsmonitor": script("fsmonitor", "exit 1"),  # fails: git then looks for itself
        "filter.evil.clean": script("filter-clean", "cat"),
        "filter.evil.smudge": script("filter-smudge", "cat"),
        "filter.evil.required": "true",
        "filter.proc.process": script(
            "filter-process", f'exec "{sys.executable}" -c "{_PROCESS_FILTER}"'
        ),
        "diff.evil.textconv": script("textconv", 'cat "$1"'),
        "diff.evil.command": script("diff-command"),
        "diff.external": script("diff-external"),
        # The merge driver keeps "ours" and says it merged: the other side's work is lost.
        "merge.evil.driver": script("merge-driver") + " %O %A %B",
        "merge.evil.name": "keeps ours",
        "core.pager": script("pager", "cat"),
        "pager.status": "true",
        "core.editor": script("editor"),
        "sequence.editor": script("sequence-editor"),
        "credential.helper": "!" + script("credential-helper"),
        "core.askPass": script("askpass"),
        "core.sshCommand": script("ssh-command"),
        # Signs (as far as git can tell): status on stderr, an armoured "signature" on stdout.
        "gpg.program": script("gpg", _SIGNER),
        "commit.gpgSign": "true",
        "tag.gpgSign": "true",
        "merge.verifySignatures": "true",
        # git 2.54 and later: hooks defined in configuration.
        "hook.planted.command": script("config-hook"),
        "hook.planted.event": "pre-commit",
        "gc.auto": "1",  # with the loose objects below, a commit or merge starts an auto gc
        "gc.autoDetach": "false",
        "include.path": "planted/include.cfg",
    }
    for key, value in settings.items():
        git(repo, "config", "--add", key, value)
    for event in ("post-commit", "post-checkout", "post-merge"):
        git(repo, "config", "--add", "hook.planted.event", event)
    (bin_dir / "include.cfg").write_text(
        f'[filter "inc"]\n\tclean = {script("include-clean", "cat")}\n'
        f"\tsmudge = {script('include-smudge', 'cat')}\n\trequired = true\n"
    )
    for name, text in HOSTILE_FILES.items():
        (repo / name).write_text(text)
    (repo / ".gitattributes").write_text(
        "* filter=evil diff=evil merge=evil\n*.proc filter=proc\n*.inc filter=inc\n*.ext !diff\n"
    )
    _loose_objects(repo, "17", 3)
    tame(repo, "add", "-A")  # as the repository's author's git would have
    tame(repo, "commit", "-q", "-m", "hostile attributes")
    return vectors


# What a test's own git needs in a planted repository, so that setting the scene runs nothing.
TAME = tuple(
    part
    for setting in (
        f"core.hooksPath={os.devnull}", "core.fsmonitor=false", "commit.gpgSign=false",
        "gc.auto=0", "core.pager=cat", "filter.evil.clean=", "filter.evil.smudge=",
        "filter.evil.required=false", "filter.proc.process=", "filter.inc.clean=",
        "filter.inc.smudge=", "filter.inc.required=false", "merge.evil.driver=false",
    )
    for part in ("-c", setting)
)  # fmt: skip


# A long-running filter (gitattributes(5), "Long Running Filter Process") that passes content
# through unchanged: version 2 of the protocol, in pkt-lines.
_PROCESS_FILTER = """
import sys
i, o = sys.stdin.buffer, sys.stdout.buffer
def read():
    n = int(i.read(4), 16)
    return None if n == 0 else i.read(n - 4)
def packets():
    while (p := read()) is not None:
        yield p
def write(*ps):
    for p in ps:
        o.write(b'%04x' % (len(p) + 4) + p)
    o.write(b'0000'); o.flush()
list(packets()); write(b'git-filter-server\\n', b'version=2\\n')
list(packets()); write(b'capability=clean\\n', b'capability=smudge\\n')
while True:
    try:
        list(packets())
    except ValueError:
        break
    data = b''.join(packets())
    write(b'status=success\\n')
    write(*[data[k:k + 65516] for k in range(0, len(data), 65516)])
    write()
""".replace('"', "'")


def tame(repo: Path, *args: str) -> str:
    """git in a planted repository with every planted program off (the test's, not AIOS's)."""
    return git(repo, *TAME, *args)


def _loose_objects(repo: Path, prefix: str, count: int) -> None:
    """Loose objects whose names start with ``prefix``: git estimates how many loose objects
    there are from one such folder, so these make it start an automatic gc."""
    found = 0
    for i in itertools.count():
        content = f"loose {i}\n".encode()
        name = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
        if name.startswith(prefix):
            done = subprocess.run(
                ["git", "hash-object", "-w", "--stdin", "--no-filters"],
                cwd=repo, input=content, capture_output=True, check=True,
            )  # fmt: skip
            assert done.stdout.decode().strip() == name
            found += 1
            if found == count:
                return


def markers_in(markers: Path) -> list[str]:
    """The vectors that ran, each with what it was called with."""
    return sorted(f"{p.name}: {p.read_text().strip()}" for p in markers.iterdir())
