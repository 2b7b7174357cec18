"""What a handler writes goes to its attempt's output, and only to its own.

Decision: `sys.stdout` and `sys.stderr` are replaced once per process by a router that looks
up the current attempt's writer in a context variable, and falls through to the real stream
outside any attempt. Swapping `sys.stdout` per attempt would mix concurrent attempts (the
swap is global); a context variable is per task, and `asyncio.to_thread`-style threads started
with a copy of the context (as the Code runner starts a sync handler) see it too. Threads a
handler starts itself without copying the context write to the real stream.
"""

from __future__ import annotations

import contextvars
import io
import logging
import sys
import threading
from typing import TextIO

from shared.storage.output import OutputWriter

current_output: contextvars.ContextVar[_StreamLines | None] = contextvars.ContextVar(
    "code_job_output", default=None
)
_install_lock = threading.Lock()


class _StreamLines:
    """Partial lines of stdout and stderr of one attempt, cut at newlines into its writer."""

    def __init__(self, writer: OutputWriter) -> None:
        self.writer = writer
        self._partial = {"OUT": "", "ERR": ""}
        self._lock = threading.Lock()

    def write(self, level: str, text: str) -> None:
        with self._lock:
            pending = self._partial[level] + text
            *whole, self._partial[level] = pending.split("\n")
        for line in whole:
            self.writer.line(level, line)

    def finish(self) -> None:
        with self._lock:
            rest, self._partial = self._partial, {"OUT": "", "ERR": ""}
        for level, text in rest.items():
            if text:
                self.writer.line(level, text)


class _Router(io.TextIOBase):
    """Writes to the current attempt's output when there is one, else to the real stream."""

    def __init__(self, real: TextIO, level: str) -> None:
        self.real = real
        self._level = level

    def write(self, text: str) -> int:
        lines = current_output.get()
        if lines is None:
            return self.real.write(text)
        lines.write(self._level, text)
        return len(text)

    def flush(self) -> None:
        if current_output.get() is None:
            self.real.flush()

    def isatty(self) -> bool:
        return False


def install_stream_router() -> None:
    """Route stdout and stderr through the context (idempotent; the runner calls it)."""
    with _install_lock:
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router(sys.stdout, "OUT")
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router(sys.stderr, "ERR")


def capture(writer: OutputWriter) -> tuple[_StreamLines, contextvars.Token[_StreamLines | None]]:
    """Start routing this context's stdout/stderr to `writer`."""
    lines = _StreamLines(writer)
    return lines, current_output.set(lines)


class OutputLogHandler(logging.Handler):
    """A handler's log records, as lines of its output (`LEVEL message`, traceback included)."""

    def __init__(self, writer: OutputWriter) -> None:
        super().__init__(logging.DEBUG)
        self._writer = writer
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._writer.line(record.levelname, self.format(record))
        except Exception:  # a logging handler must never raise into its caller
            self.handleError(record)


def attempt_logger(name: str, writer: OutputWriter) -> logging.Logger:
    """A logger of its own per attempt (not in logging's registry, so none is kept alive),
    writing to the output and also passing records on to `shared.kinds.code.handlers`."""
    logger = logging.Logger(name, logging.DEBUG)
    logger.addHandler(OutputLogHandler(writer))
    logger.parent = logging.getLogger("shared.kinds.code.handlers")
    return logger
