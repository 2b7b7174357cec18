"""The user's handlers: registered by name with `@handler`, living in the user's module, not in
shared/. Each one talks to the test only through what a real job would: its arguments, its
output (logs, prints, the return value) and HTTP calls to servers the test runs."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from shared.kinds.code import CodeContext, handler
from shared.samples.feed_poll import feed_poll


@handler("greet")
def greet(ctx: CodeContext) -> dict[str, Any]:
    """Sync: runs in a thread of its own; its print() and log records are its output."""
    name = str(ctx.arguments.get("name", "world"))
    ctx.log.info("greeting %s", name)
    print(f"hello, {name}")
    return {"greeted": name, "attempt": ctx.attempt}


@handler("fail")
async def fail(ctx: CodeContext) -> None:
    ctx.log.warning("attempt %d is about to fail", ctx.attempt)
    raise RuntimeError(f"boom on attempt {ctx.attempt}")


@handler("sleep")
async def sleep(ctx: CodeContext) -> None:
    """Sleeps past its timeout when asked to: cancelled at the deadline."""
    ctx.log.info("sleeping %s s", ctx.arguments["seconds"])
    await asyncio.sleep(float(ctx.arguments["seconds"]))
    ctx.log.info("woke up")


@handler("call")
async def call(ctx: CodeContext) -> int:
    """Logs, then calls `url` (a server that may hold its answer: the attempt runs meanwhile)."""
    ctx.log.info("calling on attempt %d", ctx.attempt)
    async with httpx.AsyncClient(timeout=120) as client:
        answer = await client.post(str(ctx.arguments["url"]), content=ctx.idempotency_key)
    ctx.log.info("answered %d", answer.status_code)
    return answer.status_code


@handler("chatty")
def chatty(ctx: CodeContext) -> int:
    lines = int(ctx.arguments["lines"])
    for number in range(lines):
        print(f"line {number:04d} " + "x" * 40)
    return lines


@handler("feed-poll-once-failing")
async def feed_poll_once_failing(ctx: CodeContext) -> dict[str, Any]:
    """The shipped feed sample, but the first attempt fails after it stored the items (as a
    worker that dies between storing and answering): the retry must store none again."""
    result = await feed_poll(ctx)
    if ctx.attempt == 0:
        raise RuntimeError(f"failing after storing {result['new']} new item(s)")
    return result
