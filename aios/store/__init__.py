"""The run history: one SQLite database, plus one raw output log file per run.

sqlite3 calls and file writes block, so every one of them happens on a single worker thread
and the asyncio API just hands work to it. One thread also means one connection and no
locking of our own: jobs run one at a time, in the order they were submitted.

Durability: WAL with ``synchronous = NORMAL``. A committed change is in the WAL file before
``save`` returns, so it survives the daemon crashing or being killed in any way, and the
database is never corrupted; only a power loss or an OS crash can take back the last changes
since the WAL was last synced (at each checkpoint). ``FULL`` would fsync every state change,
3-4 ms each on our machines - more than the whole budget from an agent's exit to its event
(docs/performance.md).

The runs per state (the summary every state change publishes, and the overview's counts) are
kept in memory, updated by every write and read without a query or a thread hop: a GROUP BY
over a long history takes longer than the rest of a page.

When the disk or the database fails (``Trouble``: the disk is full, the database is read-only,
gives I/O errors or is damaged), nothing that lives in memory is lost: run records that could not
be written are kept (``_unsaved``) and read back as they are, deletes that could not be made are
remembered (``_doomed``), and both are written at the next write or ``retry``. Output that cannot
be written for lack of space is dropped and counted; a line in the log says how much, once space
returns. ``problem`` is the trouble as it stands, and ``on_problem`` hears when it changes.

Exceptions::

    StoreError            the database or a log file could not be used (the message names it)
    ├── UnknownRun        no run has that id (or id prefix)
    ├── AmbiguousRun      an id prefix matches more than one run
    └── StoreUnavailable  the disk is full, or the database is read-only, failing or damaged:
                          not AIOS's fault, and said so
"""

from __future__ import annotations

from aios.store.errors import AmbiguousRun, StoreError, StoreUnavailable, Trouble, UnknownRun
from aios.store.history import CHAIN_MAX, Store, Usage
from aios.store.logs import SUFFIXES, Stream
from aios.store.schema import COLUMNS, MIGRATIONS, SCHEMA_VERSION, check_database

__all__ = [
    "CHAIN_MAX",
    "COLUMNS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SUFFIXES",
    "AmbiguousRun",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "Stream",
    "Trouble",
    "UnknownRun",
    "Usage",
    "check_database",
]
