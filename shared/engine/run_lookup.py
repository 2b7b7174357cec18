"""A job's runs as the API shows them: one occurrence with its run row while in flight and the
history rows of the attempts it made. Lets a client that started a run (run now) or knows a job
follow it without guessing ids: its state, the output of the attempt under way, its outcome.

A run's id is its occurrence: the nominal time (compact) and the run's token, the part of every
attempt's history id and output name that is known from the moment the run exists (the same id
the WebJobs routes use). Ended runs are found among the newest attempts that started after the
nominal time (at most SCAN_LIMIT of them): an older run is answered as not found."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shared.engine.records import HistoryRecord, Run
from shared.errors import InvalidRequest
from shared.storage.store import JobStore
from shared.timefmt import compact

SCAN_LIMIT = 1000
# Attempts start at or after their run's nominal time; the margin covers clocks of instances
# that disagree a little (a run row's nominal time and an attempt's start come from different
# machines).
_CLOCK_MARGIN = timedelta(minutes=5)
_RUN_ID = re.compile(r"(\d{8}T\d{6}Z)([A-Za-z0-9-]{0,40})")


@dataclass(frozen=True)
class RunView:
    """One occurrence: its run row while in flight (None once ended), its attempts so far
    (history rows, oldest first)."""

    run_id: str
    nominal: datetime
    on_demand: bool
    in_flight: Run | None
    attempts: list[HistoryRecord] = field(default_factory=list)


def run_id_of(nominal: datetime, token: str) -> str:
    return compact(nominal) + token


def parse_run_id(run_id: str) -> tuple[datetime, str]:
    match = _RUN_ID.fullmatch(run_id)
    if match is None:
        raise InvalidRequest(
            "runId",
            "must be a run id: the nominal time and the run's token, "
            "e.g. 20300506T080000Zmanual-1a2b3c4d",
        )
    nominal = datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return nominal, match.group(2)


def _attempt_run_id(record: HistoryRecord) -> str:
    return run_id_of(record.properties.expected_execution_time, record.run_token)


async def runs_in_flight(store: JobStore, collection: str, job: str) -> list[RunView]:
    """The job's runs in flight, newest nominal time first, each with its attempts so far."""
    runs = await store.runs_of(collection, job)
    if not runs:
        return []
    since = min(run.nominal for run in runs) - _CLOCK_MARGIN
    records = await store.history_since(collection, job, since, SCAN_LIMIT)
    views = [
        RunView(
            run_id_of(run.nominal, run.token),
            run.nominal,
            run.on_demand,
            run,
            _attempts_of(records, run_id_of(run.nominal, run.token)),
        )
        for run in runs
    ]
    return sorted(views, key=lambda view: view.nominal, reverse=True)


async def find_run(store: JobStore, collection: str, job: str, run_id: str) -> RunView | None:
    """The run `run_id` of the job, in flight or ended; None if unknown (or pruned).

    The run rows are read before the history: a run that ends in between is then seen in
    flight with its last attempt recorded, never missed by both reads."""
    nominal, _ = parse_run_id(run_id)
    in_flight = next(
        (
            run
            for run in await store.runs_of(collection, job)
            if run_id_of(run.nominal, run.token) == run_id
        ),
        None,
    )
    records = await store.history_since(collection, job, nominal - _CLOCK_MARGIN, SCAN_LIMIT)
    attempts = _attempts_of(records, run_id)
    if in_flight is None and not attempts:
        return None
    on_demand = in_flight.on_demand if in_flight else any(r.on_demand for r in attempts)
    return RunView(run_id, nominal, on_demand, in_flight, attempts)


def _attempts_of(records: list[HistoryRecord], run_id: str) -> list[HistoryRecord]:
    """The run's attempts, oldest first (the rows come newest first)."""
    return [record for record in reversed(records) if _attempt_run_id(record) == run_id]
