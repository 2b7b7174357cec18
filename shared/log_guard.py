"""No log line may carry a secret, at any level, whoever turns debug logging on.

httpcore's debug records print the raw response headers of every call (`receive_response_headers
.complete return_value=(..., [(b'X-Echo', b'Basic YWxp...')])`), and hpack's print HTTP/2 header
blocks: a target that echoes the request's `Authorization` header, or a token endpoint's answer,
would put a password or a token in the log when the app runs with `--verbose` or a DEBUG root
logger. Those records are dropped: the loggers are kept at INFO, and a filter on every logger
that creates such records drops them even if someone sets that logger to DEBUG later. Their INFO
and higher records (httpx's "HTTP Request: GET <url> 200") name only the job's own URL.
"""

from __future__ import annotations

import logging

# The loggers httpcore and hpack create records on (a filter applies only where a record is made).
HEADER_LOGGERS = (
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "hpack",
    "hpack.hpack",
    "hpack.table",
)


class DropBelowInfo(logging.Filter):
    """Lets INFO and above through; debug records of these libraries carry raw headers."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.INFO


_FILTER = DropBelowInfo()


def install() -> None:
    """Idempotent; called when the action runners are built, before any call is made."""
    for name in HEADER_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.INFO:
            logger.setLevel(logging.INFO)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


__all__ = ["DropBelowInfo", "HEADER_LOGGERS", "install"]
