"""The run history store, against real SQLite files and real log files in tmp_path."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import pytest

from aios.runs import (
    Activity,
    Approval,
    Changes,
    ChangeStatus,
    Denial,
    FailureKind,
    FileChange,
    Permission,
    Run,
    RunState,
    Tokens,
    Worktree,
    WorktreeState,
    new_run_id,
)
from aios.store import Store
from aios.store_errors import AmbiguousRun, StoreError, UnknownRun
from aios.store_schema import MIGRATIONS, SCHEMA_VERSION

MARKER = b"\n[aios: output truncated at"


def run_async(test: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        await test()

    asyncio.run(main())


def make_store(tmp_path: Path, **options: Any) -> Store:
    return Store(tmp_path / "data" / "history.sqlite3", tmp_path / "data" / "runs", **options)


@asynccontextmanager
async def opened(tmp_path: Path, **options: Any) -> AsyncIterator[Store]:
    store = make_store(tmp_path, **options)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def make_run(state: RunState = RunState.QUEUED, *, run_id: str | None = None) -> Run:
    return Run(id=run_id or new_run_id(), agent="shell", prompt="hi", cwd="/", state=state)


def test_save_get_round_trips_every_persisted_field(tmp_path: Path) -> None:
    values: dict[str, Any] = {
        "id": "0123456789ab",
        "agent": "claude",
        "prompt": "fix it — ünïcode\nand newlines",
        "cwd": "/home/me/src",
        "state": RunState.FAILED,
        "pid": 4242,
        "exit_code": -9,
        "created_at": 1_700_000_000.123456,
        "started_at": 1_700_000_001.5,
        "ended_at": 1_700_000_002.25,
        "restarts": 3,
        "error": "executable not found",
        "pid_started_at": 1_700_000_000.987654,
        "permission": Permission.FULL,
        "format": "claude-stream-json",
        "terminal": True,
        "activity": Activity.RETRYING,
        "activity_detail": "API retry 2/10, next in 4 s",
        "session_id": "8af1dbf7-7b4b-410a-80dd-12b0e59f662e",
        "model": "claude-opus-4-8",
        "tokens": Tokens(input=10, output=20, cached=30),
        "cost_usd": 0.0123,
        "num_turns": 4,
        "denials": (Denial("Write", "hello.py"), Denial("Bash")),
        "error_kind": FailureKind.AUTH,
        "hint": "Log in.",
        "parent": "fedcba987654",
        "worktree": Worktree(
            "/data/worktrees/0123456789ab/src",
            "aios/0123456789ab-fix-it",
            "9" * 40,
            "main",
            "/home/me/src",
            WorktreeState.MERGED,
        ),
        "changes": Changes.of(
            [
                FileChange("b.py", ChangeStatus.ADDED, 3, 0),
                FileChange("a.png", ChangeStatus.MODIFIED, None, None),
            ],
            commits=2,
        ),
        "pending_approval": Approval("req-1", "Bash", "npm test"),
        "cpu_percent": 12.5,
        "rss_bytes": 1024,
    }
    # If Run grows a field, this test must be taught about it (and the store must persist it).
    assert set(values) == {f.name for f in dataclasses.fields(Run)}

    async def test() -> None:
        async with opened(tmp_path) as store:
            await store.save(Run(**values))
            got = await store.get("0123456789ab")
            # Live-only fields are not kept: a pending request dies with its process.
            live_only = {"cpu_percent": None, "rss_bytes": None, "pending_approval": None}
            assert got == Run(**{**values, **live_only})
            assert got is not None
            assert type(got.state) is RunState
            assert await store.get("nope") is None

            bare = Run(id="bare", agent="a", prompt="", cwd="/")
            await store.save(bare)
            assert await store.get("bare") == bare

    run_async(test)


def test_save_updates_in_place_and_keeps_insertion_order(tmp_path: Path) -> None:
    async def test() -> None:
        async with opened(tmp_path) as store:
            first, second = make_run(run_id="first"), make_run(run_id="second")
            await store.save(first)
            await store.save(second)
            first = dataclasses.replace(first, state=RunState.RUNNING, pid=99)
            await store.save(first)
            assert [r.id for r in await store.list()] == ["second", "first"]
            assert await store.get("first") == first

    run_async(test)


def test_list_newest_first_with_paging_and_state_filter(tmp_path: Path) -> None:
    async def test() -> None:
        async with opened(tmp_path) as store:
            states = [RunState.SUCCEEDED, RunState.RUNNING, RunState.FAILED] * 3
            ids = [f"run{i}" for i in range(len(states))]
            for run_id, state in zip(ids, states, strict=True):
                await store.save(make_run(state, run_id=run_id))
            newest_first = ids[::-1]

            assert [r.id for r in await store.list()] == newest_first
            page1 = await store.list(limit=4)
            page2 = await store.list(limit=4, before=page1[-1].id)
            page3 = await store.list(limit=4, before=page2[-1].id)
            assert [r.id for r in page1 + page2 + page3] == newest_first
            assert await store.list(before=ids[0]) == []

            finished = await store.list(states={RunState.SUCCEEDED, RunState.FAILED})
            assert [r.id for r in finished] == [i for i in newest_first if i[-1] not in "147"]
            assert [r.id for r in await store.list(states=[RunState.RUNNING], before="run4")] == [
                "run1"
            ]
            assert await store.list(states=()) == []

            with pytest.raises(UnknownRun, match="no run matches 'ghost'"):
                await store.list(before="ghost")

    run_async(test)


def test_resolve_exact_prefix_ambiguous_unknown(tmp_path: Path) -> None:
    async def test() -> None:
        async with opened(tmp_path) as store:
            for run_id in ("abc123", "abd456", "ab", "x_y", "x%z"):
                await store.save(make_run(run_id=run_id))

            assert (await store.resolve("abc")).id == "abc123"
            assert (await store.resolve("abd456")).id == "abd456"
            # "ab" is a prefix of three ids, but it is also one run's full id.
            assert (await store.resolve("ab")).id == "ab"
            with pytest.raises(AmbiguousRun) as info:
                await store.resolve("a")
            assert sorted(info.value.candidates) == ["ab", "abc123", "abd456"]
            assert "abc123" in str(info.value)

            for missing in ("zz", "", "abc1234"):
                with pytest.raises(UnknownRun, match=f"no run matches '{missing}'"):
                    await store.resolve(missing)
            # LIKE wildcards in a prefix are plain characters.
            assert (await store.resolve("x_")).id == "x_y"
            assert (await store.resolve("x%")).id == "x%z"
            with pytest.raises(UnknownRun):
                await store.resolve("%")
            with pytest.raises(UnknownRun):
                await store.resolve("_")

    run_async(test)


def test_delete_removes_row_and_log(tmp_path: Path) -> None:
    async def test() -> None:
        async with opened(tmp_path) as store:
            run = make_run(RunState.SUCCEEDED)
            await store.save(run)
            await store.append_log(run.id, b"output\n")
            log_file = store.logs_dir / f"{run.id}.log"
            assert await store.log_size(run.id) == 7  # the write is done by any later call
            assert log_file.exists()

            await store.delete(run.id)
            assert await store.get(run.id) is None
            assert not log_file.exists()
            with pytest.raises(UnknownRun):
                await store.delete(run.id)

    run_async(test)


def test_retention_prunes_oldest_final_runs_never_live_ones(tmp_path: Path) -> None:
    async def test() -> None:
        async with opened(tmp_path, retention=3) as store:
            plan = [
                ("live1", RunState.RUNNING),
                ("old1", RunState.SUCCEEDED),
                ("old2", RunState.FAILED),
                ("live2", RunState.QUEUED),
                ("old3", RunState.STOPPED),
            ]
            pruned_ids = []
            for run_id, state in plan:
                pruned = await store.save(make_run(state, run_id=run_id))
                pruned_ids += [run.id for run in pruned]  # the caller deals with their worktrees
                await store.append_log(run_id, b"x")
            assert [r.id for r in await store.list()] == ["old3", "live2", "live1"]
            assert pruned_ids == ["old1", "old2"]
            assert not (store.logs_dir / "old1.log").exists()
            assert not (store.logs_dir / "old2.log").exists()
            assert (store.logs_dir / "old3.log").exists()

            # Only live runs left to prune: the history grows past retention rather than lose one.
            for run_id in ("live3", "live4"):
                await store.save(make_run(RunState.STARTING, run_id=run_id))
            assert [r.id for r in await store.list()] == ["live4", "live3", "live2", "live1"]
            assert await store.counts() == {"running": 1, "queued": 1, "starting": 2, "total": 4}

    run_async(test)


def test_update_never_brings_back_a_deleted_run_and_worktrees_are_found_by_path(
    tmp_path: Path,
) -> None:
    async def test() -> None:
        async with opened(tmp_path) as store:
            shared = Worktree("/wt/a", "aios/a", "1" * 40, "main", "/repo")
            parent = dataclasses.replace(make_run(RunState.SUCCEEDED), worktree=shared)
            child = dataclasses.replace(make_run(RunState.RUNNING), worktree=shared)
            other = make_run(RunState.SUCCEEDED)
            for run in (parent, child, other):
                await store.save(run)
            assert [r.id for r in await store.with_worktree("/wt/a")] == [parent.id, child.id]
            assert await store.with_worktree("/wt/b") == []

            removed = dataclasses.replace(shared, state=WorktreeState.REMOVED)
            assert await store.update(dataclasses.replace(parent, worktree=removed))
            got = await store.get(parent.id)
            assert got is not None and got.worktree == removed
            await store.delete(parent.id)
            assert not await store.update(parent)
            assert await store.get(parent.id) is None

            await store.write_file(other.id, b"diff --git a/x b/x\n", "diff")
            await store.write_file(other.id, b"shorter\n", "diff")
            assert await store.read_log(other.id, stream="diff") == b"shorter\n"
            await store.delete(other.id)
            assert not (store.logs_dir / f"{other.id}.diff").exists()

    run_async(test)


def test_counts(tmp_path: Path) -> None:
    async def test() -> None:
        async with opened(tmp_path) as store:
            assert await store.counts() == {"total": 0}
            for state in (RunState.RUNNING, RunState.FAILED, RunState.FAILED):
                await store.save(make_run(state))
            assert await store.counts() == {"running": 1, "failed": 2, "total": 3}

    run_async(test)


def test_counts_follow_updates_deletes_pruning_and_a_restart(tmp_path: Path) -> None:
    """The counts are kept in memory, not queried: they must say what a GROUP BY would."""

    def queried(database: Path) -> dict[str, int]:
        with closing(sqlite3.connect(database)) as db:
            rows = db.execute("SELECT state, COUNT(*) FROM runs GROUP BY state").fetchall()
        counts = dict(rows)
        return {**counts, "total": sum(counts.values())}

    async def test() -> None:
        async with opened(tmp_path, retention=10) as store:
            runs = [make_run(RunState.QUEUED) for _ in range(6)]
            await store.save_many(runs)
            states = [RunState.RUNNING, *[RunState.SUCCEEDED] * 4]
            runs = [
                dataclasses.replace(run, state=state)
                for run, state in zip(runs, states, strict=False)
            ] + runs[len(states) :]
            await store.save_many(runs)  # one transaction, several updates
            await store.delete(runs[1].id)
            for _ in range(12):  # past retention: the oldest finished runs are pruned
                await store.save(make_run(RunState.FAILED))
            assert store.summary() == await store.counts() == queried(store.database)
            assert store.summary()["total"] == 10
            before = store.summary()
        async with opened(tmp_path, retention=10) as store:
            assert store.summary() == before

    run_async(test)


def test_commits_are_durable_across_a_crash_not_synced_each_time(tmp_path: Path) -> None:
    """WAL with synchronous=NORMAL: see aios/store_schema.py for why, and what it risks."""

    async def test() -> None:
        async with opened(tmp_path) as store:
            db = store._db._conn  # the setting lives on the worker's connection
            level = await asyncio.get_running_loop().run_in_executor(
                store._executor,
                lambda: db.execute("PRAGMA synchronous").fetchone()[0],
            )
            assert level == 1  # NORMAL

    run_async(test)


def test_log_writes_overlap_but_stay_in_order_and_report_failures(tmp_path: Path) -> None:
    """append_log returns before its write is done (up to a few writes ahead): reads, sizes and
    close_log still see every byte in order, and a write that failed is raised later."""

    async def test() -> None:
        async with opened(tmp_path) as store:
            chunks = [bytes([65 + n % 26]) * 100_000 for n in range(20)]
            for chunk in chunks:
                await store.append_log("run1", chunk)
            assert await store.log_size("run1") == 2_000_000
            assert await store.read_log("run1") == b"".join(chunks)
            await store.close_log("run1")

            (store.logs_dir / "run2.log").mkdir()  # a log that cannot be opened for writing
            with pytest.raises(StoreError):
                await store.append_log("run2", b"x")
                await store.close_log("run2")

    run_async(test)


def test_log_append_and_read(tmp_path: Path) -> None:
    async def test() -> None:
        async with opened(tmp_path) as store:
            assert await store.read_log("r1") == b""
            assert await store.log_size("r1") == 0
            await store.append_log("r1", b"hello ")
            await store.append_log("r1", b"w\xc3\xb6rld\r\n\x00")
            assert await store.read_log("r1") == b"hello w\xc3\xb6rld\r\n\x00"
            assert await store.read_log("r1", offset=6) == b"w\xc3\xb6rld\r\n\x00"
            assert await store.read_log("r1", offset=6, limit=2) == b"w\xc3"
            assert await store.read_log("r1", offset=1000) == b""
            assert await store.log_size("r1") == 15

            await store.close_log("r1")
            assert await store.log_size("r1") == 15
            await store.append_log("r1", b"!")  # reopening appends, never truncates
            assert await store.read_log("r1", offset=14) == b"\x00!"

            with pytest.raises(ValueError, match="negative"):
                await store.read_log("r1", offset=-1)
            with pytest.raises(UnknownRun):
                await store.append_log("../escape", b"x")

    run_async(test)


def test_log_cap_keeps_the_first_bytes_and_marks_truncation_once(tmp_path: Path) -> None:
    cap = 1000

    async def test() -> None:
        async with opened(tmp_path, log_cap_bytes=cap) as store:
            chunks = [bytes([65 + i]) * 300 for i in range(10)]
            for chunk in chunks:
                await store.append_log("big", chunk)
            data = await store.read_log("big")
            assert data[:cap] == b"".join(chunks)[:cap]
            assert data.count(MARKER) == 1
            assert data.endswith(b"later output was not kept]\n")
            assert len(data) == await store.log_size("big")
            assert cap < len(data) <= cap + 80

            # Exactly at the cap nothing was lost yet; the next byte is what gets marked.
            await store.append_log("exact", b"x" * cap)
            assert await store.log_size("exact") == cap
            await store.append_log("exact", b"y")
            assert (await store.read_log("exact")).count(MARKER) == 1

            await store.close_log("big")
            await store.append_log("big", b"more")
            assert await store.read_log("big") == data

        # A later daemon sees the marker is there already.
        async with opened(tmp_path, log_cap_bytes=cap) as store:
            await store.append_log("big", b"more")
            assert await store.read_log("big") == data

    run_async(test)


def test_history_and_live_runs_survive_a_restart(tmp_path: Path) -> None:
    async def test() -> None:
        async with opened(tmp_path) as store:
            for state in RunState:
                await store.save(make_run(state, run_id=str(state)))
        store = make_store(tmp_path)
        try:
            live = await store.open()
            assert sorted(r.id for r in live) == sorted(str(s) for s in RunState if s.is_live)
            assert all(r.state == RunState(r.id) for r in live)
            assert len(await store.list()) == len(RunState)
        finally:
            await store.close()

    run_async(test)


def test_migrations_set_user_version_and_wal(tmp_path: Path) -> None:
    async def test() -> None:
        async with opened(tmp_path) as store:
            database = store.database
        with closing(sqlite3.connect(database)) as db:
            assert SCHEMA_VERSION >= 1
            assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
            assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        # Reopening an up-to-date database runs nothing and keeps the version.
        async with opened(tmp_path):
            pass
        with closing(sqlite3.connect(database)) as db:
            assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)

    run_async(test)


def test_a_version_1_history_is_migrated_with_its_runs(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.database.parent.mkdir(parents=True)
    with closing(sqlite3.connect(store.database)) as db:
        for statement in MIGRATIONS[0]:
            db.execute(statement)
        db.execute(
            "INSERT INTO runs (id, agent, prompt, cwd, state, created_at, restarts)"
            " VALUES ('old', 'claude', 'p', '/', 'succeeded', 1.0, 0)"
        )
        db.execute("PRAGMA user_version = 1")
        db.commit()

    async def test() -> None:
        await store.open()
        try:
            old = await store.get("old")
            assert old is not None and old.state is RunState.SUCCEEDED
            assert (old.format, old.denials, old.tokens, old.permission) == ("text", (), None, None)
        finally:
            await store.close()

    run_async(test)


def test_newer_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.database.parent.mkdir(parents=True)
    with closing(sqlite3.connect(store.database)) as db:
        db.execute("CREATE TABLE future (x)")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        db.commit()
    before = store.database.read_bytes()

    async def test() -> None:
        try:
            with pytest.raises(StoreError, match="newer") as info:
                await store.open()
            assert str(store.database) in str(info.value)
        finally:
            await store.close()

    run_async(test)
    assert store.database.read_bytes() == before


def test_garbage_database_is_an_error_and_left_byte_identical(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.database.parent.mkdir(parents=True)
    garbage = b"this is not a database, it is a shopping list\n" * 100
    store.database.write_bytes(garbage)

    async def test() -> None:
        try:
            with pytest.raises(StoreError) as info:
                await store.open()
            message = str(info.value)
            assert str(store.database) in message
            assert "not a database" in message
        finally:
            await store.close()

    run_async(test)
    assert store.database.read_bytes() == garbage


def test_close_is_idempotent_and_later_calls_fail_cleanly(tmp_path: Path) -> None:
    async def test() -> None:
        store = make_store(tmp_path)
        await store.close()  # never opened
        store = make_store(tmp_path)
        with pytest.raises(StoreError, match="not open"):
            await store.get("x")
        await store.open()
        await store.append_log("r", b"x")
        await store.close()
        await store.close()
        with pytest.raises(StoreError, match="closed"):
            await store.save(make_run())

    run_async(test)


def test_concurrent_callers_are_serialised(tmp_path: Path) -> None:
    async def test() -> None:
        async with opened(tmp_path) as store:
            runs = [make_run() for _ in range(50)]
            await asyncio.gather(*(store.save(run) for run in runs))
            await asyncio.gather(*(store.append_log("shared", b"%03d\n" % i) for i in range(50)))
            assert (await store.counts())["total"] == 50
            lines = (await store.read_log("shared")).splitlines()
            assert sorted(lines) == [b"%03d" % i for i in range(50)]

    run_async(test)


# Audit events are raised on the thread doing the work, so they show where the store's
# blocking calls really run. Hooks cannot be removed, so one is installed and switched on and off.
_recording = threading.Event()
_audit_log: list[tuple[str, str, str]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _recording.is_set() and event in {"sqlite3.connect", "open", "os.remove"} and args:
        _audit_log.append((event, str(args[0]), threading.current_thread().name))


sys.addaudithook(_audit)


def test_database_and_log_work_happen_off_the_event_loop_thread(tmp_path: Path) -> None:
    async def test() -> None:
        async with opened(tmp_path) as store:
            run = make_run(RunState.SUCCEEDED)
            await store.save(run)
            await store.append_log(run.id, b"out")
            await store.read_log(run.id)
            await store.delete(run.id)

    _audit_log.clear()
    _recording.set()
    try:
        run_async(test)
    finally:
        _recording.clear()
    ours = [entry for entry in _audit_log if str(tmp_path) in entry[1]]
    assert {event for event, _, _ in ours} == {"sqlite3.connect", "open", "os.remove"}
    assert {thread for _, _, thread in ours if not thread.startswith("aios-store")} == set()
    # The connection is made on the store thread and sqlite3's check_same_thread then refuses
    # any use of it from elsewhere, so every later query ran there too.
