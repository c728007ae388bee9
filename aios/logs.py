"""Logging: stderr plus a rotating file in the state dir, with secrets scrubbed from both.

A log that cannot be written for lack of space (or any other OSError) drops its records and
says so once, in one line on stderr (and again when it can write once more): never the
"--- Logging error ---" traceback the standard handlers print for every record.
"""

from __future__ import annotations

import contextlib
import io
import logging
import logging.handlers
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from aios import private

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


BACKUPS = 3


class _DropWhenUnwritable:
    """For a handler whose stream may fail (a full disk): drop records, say so once."""

    dropped = 0

    def describe(self) -> str:
        return "the log"

    def emit(self, record: logging.LogRecord) -> None:
        failed_before = self.dropped
        super().emit(record)  # type: ignore[misc]
        if failed_before and self.dropped == failed_before:  # written again
            _say(f"aios: {self.describe()} is written again ({failed_before} records dropped)")
            self.dropped = 0

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):
            super().handleError(record)  # type: ignore[misc]
            return
        if not self.dropped:
            _say(
                f"aios: {self.describe()} cannot be written ({exc.strerror or exc}); "
                "log records are dropped until it can"
            )
        self.dropped += 1
        self.forget_stream()

    def forget_stream(self) -> None:
        pass


def _say(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # stderr itself may be the full disk
        print(line, file=sys.__stderr__, flush=True)


class QuietStreamHandler(_DropWhenUnwritable, logging.StreamHandler):  # type: ignore[type-arg]
    def describe(self) -> str:
        return "standard error"


class PrivateRotatingFileHandler(_DropWhenUnwritable, logging.handlers.RotatingFileHandler):
    """Creates its files 0600: the log holds prompts, paths and errors of the user's work."""

    def describe(self) -> str:
        return f"the log file {self.baseFilename}"

    def _open(self) -> io.TextIOWrapper:
        fd = private.open_fd(self.baseFilename, os.O_WRONLY | os.O_APPEND)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)

    def forget_stream(self) -> None:
        # What the failed write left in the buffer would fail again at every record: drop the
        # stream (and its buffer); the next record opens the file afresh (delay=True).
        stream, self.stream = self.stream, None
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.close()


class RedactSecrets(logging.Filter):
    """Replaces any secret that slips into a record (a URL with ``?token=``...) before output."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, "[redacted]")
            record.msg, record.args = message, None
        return True


def setup(log_file: Path | None, *, level: int = logging.INFO) -> list[logging.Handler]:
    """Install our handlers on the ``aios`` logger; returns them so they can be removed."""
    handlers: list[logging.Handler] = [QuietStreamHandler()]
    if log_file is not None:
        private.ensure_private_dir(log_file.parent)
        # The current file and its rotated copies, as an older version may have left them.
        private.tighten_all([log_file, *(Path(f"{log_file}.{n}") for n in range(1, BACKUPS + 1))])
        handlers.append(
            PrivateRotatingFileHandler(
                log_file, maxBytes=1024 * 1024, backupCount=BACKUPS, encoding="utf-8", delay=True
            )
        )
    logger = logging.getLogger("aios")
    logger.setLevel(level)
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
    return handlers


def write_exception(log_file: Path, message: str, exc: BaseException) -> None:
    """Append one record with its traceback, for a process that has no handlers (the CLI).

    Written directly, not through a handler: a handler that cannot write prints a traceback of
    its own on stderr, and this must fail with an OSError the caller can put in one line.
    """
    record = logging.LogRecord(
        "aios.cli", logging.ERROR, __file__, 0, message, None, (type(exc), exc, exc.__traceback__)
    )
    text = logging.Formatter(FORMAT).format(record) + "\n"
    private.ensure_private_dir(log_file.parent)
    fd = private.open_fd(log_file, os.O_WRONLY | os.O_APPEND)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(text)


def teardown(handlers: Iterable[logging.Handler]) -> None:
    logger = logging.getLogger("aios")
    for handler in handlers:
        logger.removeHandler(handler)
        handler.close()


def redact(secrets: Iterable[str]) -> RedactSecrets:
    """Attach a redaction filter to every handler of the ``aios`` logger."""
    redactor = RedactSecrets(secrets)
    for handler in logging.getLogger("aios").handlers:
        handler.addFilter(redactor)
    return redactor
