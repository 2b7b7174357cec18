"""The real function_app.py plus one Code handler for the CLI's tests (`--app` of devhost)."""

from __future__ import annotations

import asyncio
from typing import Any

from function_app import app
from shared.kinds.code import CodeContext, register_handler

__all__ = ["app"]


async def greet(ctx: CodeContext) -> dict[str, Any]:
    """Logs and prints its argument, so `sched logs` has lines of both kinds to show."""
    ctx.log.info("hello %s", ctx.arguments.get("who", "nobody"))
    print("printed by the handler")
    return {"greeted": ctx.arguments.get("who")}


async def gated(ctx: CodeContext) -> str:
    """Logs, then waits at the test's gate (tests/support/gate.py, address in `gate`) until it
    answers: lets a test see the output followed while the attempt runs. `go` succeeds; any
    other answer fails the attempt."""
    ctx.log.info("waiting at the gate")
    host, port = str(ctx.arguments["gate"]).rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        answer = (await reader.readline()).decode().strip()
    finally:
        writer.close()
    ctx.log.info("the gate answered %s", answer)
    if answer != "go":
        raise RuntimeError(f"the gate answered {answer!r}")
    return answer


register_handler("cli-greet", greet)
register_handler("cli-gated", gated)
