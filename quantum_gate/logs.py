"""structlog set-up: JSON lines when stderr is not a terminal (journald), readable on a terminal.

Event names are dotted (``cutover.detected``, ``stream.reconnected``, ``gate.evaluated``) with data as
key/values; callers log state changes, not every tick. Python warnings (numpy's RuntimeWarning on
hostile numbers) and records of the standard ``logging`` module (APScheduler) go through structlog
too (``python.warning``, ``python.log``), so every stderr line stays one JSON object in journald.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any, TextIO

import structlog

MAX_MESSAGE = 300


def configure(level: str = "info", json_lines: bool | None = None) -> None:
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    warnings.showwarning = _show_warning
    root = logging.getLogger()
    root.handlers = [_StructlogHandler()]
    root.setLevel(logging.WARNING)


def _show_warning(  # noqa: PLR0917 - the signature of warnings.showwarning
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    structlog.get_logger("quantum_gate").warning(
        "python.warning",
        category=category.__name__,
        message=str(message)[:MAX_MESSAGE],
        where=f"{Path(filename).name}:{lineno}",
    )


class _StructlogHandler(logging.Handler):
    """Standard-library log records as structlog events (without it, logging's last-resort handler
    writes them to stderr as plain text)."""

    def emit(self, record: logging.LogRecord) -> None:
        fields: dict[str, Any] = {"logger": record.name, "message": record.getMessage()[:MAX_MESSAGE]}
        if record.exc_info and record.exc_info[0] is not None:
            fields["error"] = record.exc_info[0].__name__
        structlog.get_logger("quantum_gate").log(record.levelno, "python.log", **fields)
