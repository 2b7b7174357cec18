"""A tiny function app for the devhost tests: HTTP echo, a timer and a queue trigger.

Behaviour comes from app settings read at call time (SAMPLE_TIMER_SECONDS, SAMPLE_WORK_SECONDS),
and every invocation is written to RECORDER so tests can wait on it with `wait_until`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
from fastapi import FastAPI, Request


@dataclass
class Call:
    function: str
    started: float
    finished: float | None = None
    data: dict[str, Any] = field(default_factory=dict)


class Recorder:
    """Calls per function plus the highest number running at once."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.calls: list[Call] = []
        self.running: dict[str, int] = {}
        self.max_running: dict[str, int] = {}

    def begin(self, function: str, **data: Any) -> Call:
        call = Call(function, time.monotonic(), data=data)
        self.calls.append(call)
        self.running[function] = self.running.get(function, 0) + 1
        self.max_running[function] = max(self.max_running.get(function, 0), self.running[function])
        return call

    def end(self, call: Call) -> None:
        call.finished = time.monotonic()
        self.running[call.function] -= 1

    def of(self, function: str) -> list[Call]:
        return [c for c in self.calls if c.function == function]

    def __repr__(self) -> str:
        return f"Recorder(calls={self.calls})"


RECORDER = Recorder()


async def wait_until(condition: Callable[[], bool | Awaitable[bool]], timeout: float = 10) -> None:
    """Poll `condition` (sync or async) until true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if await result if inspect.isawaitable(result) else result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; {RECORDER}")
        await asyncio.sleep(0.02)


app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="items/{item_id}", methods=["GET", "POST"])
async def echo_item(req: func.HttpRequest) -> func.HttpResponse:
    payload = {
        "method": req.method,
        "url": req.url,
        "route_params": dict(req.route_params),
        "params": dict(req.params),
        "header": req.headers.get("x-sample"),
        "body": req.get_body().decode(),
    }
    response = func.HttpResponse(json.dumps(payload), status_code=201, mimetype="application/json")
    response.headers.add_header("Set-Cookie", "a=1")
    response.headers.add_header("Set-Cookie", "b=2")
    return response


@app.route(route="hello", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def hello(req: func.HttpRequest, context: func.Context) -> str:
    """Sync, with a context, returning a plain str."""
    return f"hello from {context.function_name}"


@app.route(route="broken")
async def broken(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("broken on purpose")


@app.timer_trigger(schedule="%SAMPLE_SCHEDULE%", arg_name="timer")
async def tick(timer: func.TimerRequest) -> None:
    call = RECORDER.begin("tick", past_due=timer.past_due)
    await asyncio.sleep(float(os.environ.get("SAMPLE_TIMER_SECONDS", "0")))
    RECORDER.end(call)


@app.queue_trigger(arg_name="message", queue_name="%SAMPLE_QUEUE%", connection="SampleStorage")
async def work(message: func.QueueMessage) -> None:
    """Fails when the body starts with "fail"."""
    body = message.get_body().decode()
    call = RECORDER.begin("work", body=body, dequeue_count=message.dequeue_count, id=message.id)
    try:
        await asyncio.sleep(float(os.environ.get("SAMPLE_WORK_SECONDS", "0")))
        if body.startswith("fail"):
            raise RuntimeError(f"failing on purpose: {body}")
    finally:
        RECORDER.end(call)


def _create_api() -> FastAPI:
    state = {"lifespan_started": False}

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["lifespan_started"] = True
        yield

    api = FastAPI(lifespan=lifespan)

    @api.api_route("/api/ping/{name}", methods=["GET", "PUT"])
    async def ping(name: str, request: Request) -> dict[str, Any]:
        return {
            "name": name,
            "path": request.url.path,
            "query": request.url.query,
            "body": (await request.body()).decode(),
            "lifespan_started": state["lifespan_started"],
        }

    return api


# The real app's shape: one catch-all HTTP function (ASGI startup on the first request).
asgi_app = func.AsgiFunctionApp(app=_create_api(), http_auth_level=func.AuthLevel.FUNCTION)
