"""App settings, read from the environment (local.settings.json's Values, or the Function App's
application settings). Every name here is documented in README.md and local.settings.example.json.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from shared.model.actions import DEFAULT_LIMITS, RequestLimits
from shared.outbound_policy import OutboundPolicy


@dataclass(frozen=True)
class Settings:
    storage_connection: str
    table_prefix: str = "Scheduler"
    execution_queue: str = "scheduler-executions"
    lookahead: timedelta = timedelta(seconds=120)
    http_timeout: timedelta = timedelta(seconds=60)
    # A claimed attempt's lease outlives the action's timeout by this much (to record it).
    lease_margin: timedelta = timedelta(seconds=30)
    history_max_age: timedelta = timedelta(days=60)
    history_max_rows: int = 1000
    max_jobs_per_collection: int | None = None
    min_recurrence: timedelta = timedelta(minutes=1)
    max_job_size: int = 16 * 1024
    request_limits: RequestLimits = DEFAULT_LIMITS
    outbound: OutboundPolicy = OutboundPolicy()  # what jobs may use of the app's identity/storage

    @property
    def due_table(self) -> str:
        return f"{self.table_prefix}Due"

    @property
    def collections_table(self) -> str:
        return f"{self.table_prefix}Collections"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        connection = env.get("SCHEDULER_STORAGE") or env.get("AzureWebJobsStorage")
        if not connection:
            raise RuntimeError("AzureWebJobsStorage (or SCHEDULER_STORAGE) must be set")
        prefix = env.get("SCHEDULER_TABLE_PREFIX", "Scheduler")
        if not _TABLE_PREFIX.fullmatch(prefix):
            # A collection's table is the prefix, "C" and 32 hex digits: at most 63 characters.
            raise RuntimeError(
                "SCHEDULER_TABLE_PREFIX must be 1-30 letters and digits, starting with a letter"
            )
        try:
            outbound = OutboundPolicy.from_settings(env)
        except ValueError as error:
            raise RuntimeError(str(error)) from None
        return cls(
            storage_connection=connection,
            table_prefix=prefix,
            execution_queue=env.get("SCHEDULER_EXECUTION_QUEUE", "scheduler-executions"),
            lookahead=timedelta(seconds=int(env.get("SCHEDULER_LOOKAHEAD_SECONDS", "120"))),
            http_timeout=timedelta(seconds=int(env.get("SCHEDULER_HTTP_TIMEOUT_SECONDS", "60"))),
            lease_margin=timedelta(seconds=int(env.get("SCHEDULER_LEASE_MARGIN_SECONDS", "30"))),
            history_max_age=timedelta(days=int(env.get("SCHEDULER_HISTORY_MAX_DAYS", "60"))),
            history_max_rows=int(env.get("SCHEDULER_HISTORY_MAX_ROWS", "1000")),
            max_jobs_per_collection=_optional_int(env.get("SCHEDULER_MAX_JOBS_PER_COLLECTION")),
            min_recurrence=timedelta(
                seconds=int(env.get("SCHEDULER_MIN_RECURRENCE_SECONDS", "60"))
            ),
            max_job_size=int(env.get("SCHEDULER_MAX_JOB_SIZE", str(16 * 1024))),
            request_limits=RequestLimits(
                uri_length=int(env.get("SCHEDULER_MAX_REQUEST_URI_LENGTH", "2048")),
                header_count=int(env.get("SCHEDULER_MAX_REQUEST_HEADER_COUNT", "50")),
                headers_length=int(env.get("SCHEDULER_MAX_REQUEST_HEADERS_LENGTH", "4096")),
                body_length=int(env.get("SCHEDULER_MAX_REQUEST_BODY_LENGTH", "8192")),
            ),
            outbound=outbound,
        )


_TABLE_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9]{0,29}")


def _optional_int(text: str | None) -> int | None:
    return int(text) if text else None
