"""Code jobs: Python handlers registered by the app, run as the `Code` action kind."""

from __future__ import annotations

from shared.kinds.code.handlers import (
    CodeContext,
    Handler,
    handler,
    known_handlers,
    register_handler,
    unregister_handler,
)

__all__ = [
    "CodeContext",
    "Handler",
    "handler",
    "known_handlers",
    "register_handler",
    "unregister_handler",
]
