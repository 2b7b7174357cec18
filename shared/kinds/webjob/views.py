"""WebJobs as Kudu's API shows them (Newtonsoft names of Kudu.Contracts/Jobs): jobs, and runs
built from the job's history rows (ended runs) and run rows (runs in flight).

A run's id is its occurrence (nominal time, compact, plus the run's token), the part of the
attempt's names that is known from the moment the run exists; Kudu's ids are digits, but clients
treat them as opaque strings. Dates are ISO 8601 UTC with microseconds; a duration is .NET's
TimeSpan text (`00:01:02.5000000`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.engine.records import HistoryRecord, Run, RunStatus
from shared.kinds.webjob.catalog import WEBJOBS_COLLECTION, WebJobCatalog, job_name_of
from shared.kinds.webjob.folders import TRIGGERED, WebJobFolder
from shared.kinds.webjob.runner import status_of_message
from shared.model.job import ActionName, HistoryStatus
from shared.timefmt import compact

HISTORY_SIZE = 50  # Kudu's WEBJOBS_HISTORY_SIZE default


@dataclass(frozen=True)
class KuduRun:
    id: str
    status: str
    start: datetime
    end: datetime | None
    trigger: str


def run_id(nominal: datetime, token: str) -> str:
    return compact(nominal) + token


def runs_of(
    folder: WebJobFolder, records: Iterable[HistoryRecord], in_flight: Iterable[Run], now: datetime
) -> list[KuduRun]:
    """The folder's runs, newest first, at most HISTORY_SIZE: the last attempt of each ended
    occurrence, then those in flight (Initializing until claimed, then Running)."""
    schedule = f"Schedule - {folder.settings.schedule}" if folder.settings.schedule else "Schedule"
    found: dict[str, KuduRun] = {}
    for record in records:  # newest first: the first row of an occurrence is its last attempt
        props = record.properties
        if props.action_name is not ActionName.MAIN_ACTION:
            continue
        key = run_id(props.expected_execution_time, record.run_token)
        if key in found or props.status is HistoryStatus.POSTPONED:
            continue
        found[key] = KuduRun(
            key,
            _status_of(record),
            props.start_time,
            props.end_time,
            record.trigger or ("External" if record.on_demand else schedule),
        )
    for run in in_flight:
        key = run_id(run.nominal, run.token)
        if key in found or (run.status is RunStatus.SCHEDULED and run.due > now):
            continue
        running = run.status is RunStatus.RUNNING
        found[key] = KuduRun(
            key,
            "Running" if running else "Initializing",
            (run.started_at if running and run.started_at else run.due),
            None,
            run.trigger or ("External" if run.on_demand else schedule),
        )
    ordered = sorted(found.values(), key=lambda r: r.start, reverse=True)
    return ordered[:HISTORY_SIZE]


def in_progress(in_flight: Iterable[Run], now: datetime) -> bool:
    """Whether a run has started or is due (a scheduled one dispatched ahead of its second
    does not count)."""
    return any(r.status is RunStatus.RUNNING or r.due <= now for r in in_flight)


def _status_of(record: HistoryRecord) -> str:
    status = record.properties.status
    if status is HistoryStatus.COMPLETED:
        return "Success"
    if status is HistoryStatus.CANCELLED:
        return "Aborted"
    return status_of_message(record.properties.message)


def kudu_time(instant: datetime | None) -> str | None:
    return None if instant is None else instant.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def kudu_duration(delta: timedelta) -> str:
    """.NET TimeSpan's constant format: `[d.]hh:mm:ss[.fffffff]`."""
    ticks = max(0, round(delta.total_seconds() * 10_000_000))
    seconds, fraction = divmod(ticks, 10_000_000)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    days, hour = divmod(hours, 24)
    text = f"{hour:02d}:{minute:02d}:{second:02d}"
    if days:
        text = f"{days}.{text}"
    return f"{text}.{fraction:07d}" if fraction else text


@dataclass(frozen=True)
class KuduUrls:
    """Absolute URLs under the app's base (`https://host/`), as Kudu gives them."""

    base: str

    def job(self, folder: WebJobFolder) -> str:
        return f"{self.base}api/{folder.type}webjobs/{folder.name}"

    def run(self, folder: WebJobFolder, run: str) -> str:
        return f"{self.job(folder)}/history/{run}"

    def output(self, folder: WebJobFolder, run: str) -> str:
        job = job_name_of(folder.type, folder.name)
        return (
            f"{self.base}api/jobCollections/{WEBJOBS_COLLECTION}/jobs/{job}"
            f"/history/current-{run}-m000/output"
        )


def run_json(folder: WebJobFolder, run: KuduRun, urls: KuduUrls, now: datetime) -> dict[str, Any]:
    end = run.end or now
    output = urls.output(folder, run.id)
    return {
        "id": run.id,
        "name": run.id,
        "status": run.status,
        "start_time": kudu_time(run.start),
        "end_time": kudu_time(run.end),
        "duration": kudu_duration(end - run.start),
        "output_url": output,
        "error_url": output,  # stdout and stderr share one output (stderr lines say ERR)
        "url": urls.run(folder, run.id),
        "job_name": folder.name,
        "trigger": run.trigger,
    }


def job_json(
    folder: WebJobFolder,
    catalog: WebJobCatalog,
    urls: KuduUrls,
    latest: dict[str, Any] | None = None,
    status: str = "Stopped",
) -> dict[str, Any]:
    url = urls.job(folder)
    shown: dict[str, Any] = {
        "name": folder.name,
        "run_command": folder.script.name if folder.script else "",
        "url": url,
        "extra_info_url": f"{url}/history" if folder.type == TRIGGERED else None,
        "type": folder.type,
        "error": catalog.error_of(folder),
        "using_sdk": False,
        "settings": folder.settings.raw,
    }
    if folder.type == TRIGGERED:
        shown["latest_run"] = latest
        shown["history_url"] = f"{url}/history"
        shown["scheduler_logs_url"] = None
    else:
        shown["status"] = status
        shown["detailed_status"] = f"{folder.name} is {status}"
        shown["log_url"] = None
    return shown
