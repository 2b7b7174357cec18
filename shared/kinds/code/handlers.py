"""Code-job handlers: registered by name by the app (next to function_app.py), looked up by the
`Code` kind.

    from shared.kinds.code import handler, CodeContext

    @handler("nightly-report")
    async def nightly_report(ctx: CodeContext) -> dict[str, int]:
        ctx.log.info("starting")
        return {"rows": 3}

The registry is the process's, like the action kinds: a stored job's handler must mean the same
everywhere. It is built on first use, never at import of `shared`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.storage.app_clients import AppStorageClients


@dataclass(frozen=True)
class CodeContext:
    """What a handler gets: which attempt of which run, its arguments, its deadline, a logger
    whose records go to the attempt's output, and the app's storage clients."""

    collection: str
    job: str
    nominal: datetime  # the occurrence's nominal time (an on-demand run's: when it was asked)
    attempt: int  # 0 for the first attempt, then retries
    idempotency_key: str  # the same for every attempt of one occurrence
    arguments: Mapping[str, Any]
    deadline: datetime  # aware; the attempt fails when it passes
    log: logging.Logger = field(repr=False)
    storage: AppStorageClients = field(repr=False)
    settings: Settings = field(repr=False)  # the app's settings (network policy for calls)


Handler = Callable[[CodeContext], Any | Awaitable[Any]]

_handlers: dict[str, Handler] | None = None


def known_handlers() -> dict[str, Handler]:
    """The handlers this process knows, by name."""
    global _handlers
    if _handlers is None:
        _handlers = {}
    return _handlers


def register_handler(name: str, function: Handler) -> None:
    """Make `function` the handler called `name` (a second registration of a name replaces it)."""
    if not name or not name.strip():
        raise ValueError("a handler name must not be empty")
    known_handlers()[name] = function


def unregister_handler(name: str) -> None:
    """Forget a handler (tests that register one clean up with it)."""
    known_handlers().pop(name, None)


def handler(name: str) -> Callable[[Handler], Handler]:
    """Decorator: `@handler("name")` registers the function under `name`."""

    def register(function: Handler) -> Handler:
        register_handler(name, function)
        return function

    return register
