"""The real function_app.py plus one Code handler for the CLI's tests (`--app` of devhost)."""

from __future__ import annotations

from typing import Any

from function_app import app
from shared.kinds.code import CodeContext, register_handler

__all__ = ["app"]


async def greet(ctx: CodeContext) -> dict[str, Any]:
    """Logs and prints its argument, so `sched logs` has lines of both kinds to show."""
    ctx.log.info("hello %s", ctx.arguments.get("who", "nobody"))
    print("printed by the handler")
    return {"greeted": ctx.arguments.get("who")}


register_handler("cli-greet", greet)
