"""Logging: stderr plus a rotating file in the state dir, with secrets scrubbed from both."""

from __future__ import annotations

import logging
import logging.handlers
import os
from collections.abc import Iterable
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


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
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                log_file, maxBytes=1024 * 1024, backupCount=3, encoding="utf-8", delay=True
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
    log_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
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
