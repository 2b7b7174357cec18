"""An attempt uses the settings parsed at start-up: it reads no app setting from the environment
(Azure restarts the app when its settings change, so start-up is the one time to read them)."""

from __future__ import annotations

import pytest

from shared.config import Settings
from shared.model.job import HistoryStatus
from shared.names import CollectionRef
from shared.runtime import Runtime
from tests.support.app_settings import app_settings
from tests.support.engine import work_queue
from tests.support.http_target import HttpTarget

pytestmark = pytest.mark.integration

REF = CollectionRef.parse("main")


async def test_an_attempt_uses_the_network_policy_parsed_at_start(
    storage_connection: str, unique_name: str, target: HttpTarget
) -> None:
    env = app_settings(storage_connection, unique_name)
    runtime = await Runtime.create(Settings.from_env(env), app_settings=env)
    try:
        # Changed after start-up: a running app never sees it (it used to refuse every call).
        env["SCHEDULER_ALLOWED_NETWORKS"] = "no-such-network"
        await runtime.jobs.put_collection(REF, {"properties": {"state": "Enabled"}})
        action = {
            "type": "Http",
            "request": {"uri": target.url},
            "retryPolicy": {"retryType": "None"},
        }
        job = {"properties": {"action": action}}
        await runtime.jobs.put_job(REF, "now", job)

        async def recorded() -> bool:
            rows, _ = await runtime.store.history(REF.key, "now", top=10)
            return bool(rows)

        await work_queue(runtime, recorded)
        rows, _ = await runtime.store.history(REF.key, "now", top=10)
        [row] = [r.properties for r in rows]
        assert row.status is HistoryStatus.COMPLETED, row.message
        assert len(target.requests) == 1
    finally:
        await runtime.close()
