"""What the code-job end-to-end tests share: the settings of the devhost process they drive,
job bodies, and polling the app over HTTP (it works in another process: there is no event to
await but its answers)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from tests.support.app_settings import app_settings

CODE_APP = "tests.e2e.code_app.function_app:app"
NEVER = "2099-01-01T00:00:00Z"  # jobs run on demand only


def host_settings(connection: str, prefix: str, **extra: str) -> dict[str, str]:
    """A devhost with its own tables and queues, a dispatch pass every second looking 2 s ahead
    (so the timer, not only the API, dispatches), loopback targets allowed."""
    defaults = {
        "DISPATCH_SCHEDULE": "* * * * * *",
        "SCHEDULER_LOOKAHEAD_SECONDS": "2",
        "SCHEDULER_WEBJOBS_ROOT": str(Path("/nonexistent-webjobs")),
    }
    return app_settings(connection, prefix, **{**defaults, **extra})


def new_prefix() -> str:
    return "e2e" + uuid.uuid4().hex[:10]


def new_collection() -> str:
    return "code-" + uuid.uuid4().hex[:8]


def code_job(handler: str, *, start: str = NEVER, **fields: Any) -> dict[str, Any]:
    """A Code job; `fields` go into `code` except retryPolicy, errorAction and overlap."""
    action: dict[str, Any] = {"type": "Code", "code": {"handler": handler}}
    for name in ("retryPolicy", "errorAction"):
        if name in fields:
            action[name] = fields.pop(name)
    properties: dict[str, Any] = {"startTime": start, "action": action}
    if "overlap" in fields:
        properties["overlap"] = fields.pop("overlap")
    action["code"].update(fields)
    action.setdefault("retryPolicy", {"retryType": "None"})
    return {"properties": properties}


async def until(
    check: Callable[[], Awaitable[Any]], timeout: float = 30, every: float = 0.2
) -> Any:
    """Ask the app until `check` returns something true; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise TimeoutError(f"condition not reached within {timeout} s")
        await asyncio.sleep(every)


async def history(api: httpx.AsyncClient, collection: str, job: str) -> list[dict[str, Any]]:
    """The job's history rows, newest first."""
    answer = await api.get(f"/jobCollections/{collection}/jobs/{job}/history")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["value"])


async def history_rows(
    api: httpx.AsyncClient, collection: str, job: str, count: int, timeout: float = 30
) -> list[dict[str, Any]]:
    """Wait until the job has at least `count` history rows; all of them, newest first."""

    async def enough() -> list[dict[str, Any]] | None:
        rows = await history(api, collection, job)
        return rows if len(rows) >= count else None

    return list(await until(enough, timeout))


async def create(api: httpx.AsyncClient, collection: str, job: str, body: dict[str, Any]) -> None:
    answer = await api.put(f"/jobCollections/{collection}", json={})
    assert answer.status_code in (200, 201), answer.text
    answer = await api.put(f"/jobCollections/{collection}/jobs/{job}", json=body)
    assert answer.status_code in (200, 201), answer.text


async def run_now(api: httpx.AsyncClient, collection: str, job: str) -> None:
    answer = await api.post(f"/jobCollections/{collection}/jobs/{job}/run")
    assert answer.status_code == 200, answer.text
