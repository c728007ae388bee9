"""Logging: stderr plus a rotating file in the state dir, with secrets scrubbed from both."""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
from collections.abc import Iterable
from pathlib import Path

from aios import private

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


BACKUPS = 3


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Creates its files 0600: the log holds prompts, paths and errors of the user's work."""

    def _open(self) -> io.TextIOWrapper:
        fd = private.open_fd(self.baseFilename, os.O_WRONLY | os.O_APPEND)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


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
    handlers: list[logging.Handler] = [logging.StreamHandler()]
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
