"""Rows <-> records: how each record of shared/engine/records.py is written to a table entity
and read back. The keys come from shared/storage/keys.py; `ENTITY_VERSION` marks the layout of
the rows that carry one, so a later layout can read the rows an earlier one wrote."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.data.tables import TableEntity

from shared.engine.records import (
    Collection,
    DueEntry,
    HistoryRecord,
    JobListing,
    Run,
    RunStatus,
    StoredJob,
    Tally,
    TallyRow,
    Watch,
)
from shared.model.collection import CollectionDefinition
from shared.model.job import (
    ActionName,
    HistoryStatus,
    JobHistoryProperties,
    JobState,
    load_stored_definition,
)
from shared.names import CollectionRef
from shared.storage.keys import JOB_COUNT_KEY, due_job, due_key, filed, job_key, job_name
from shared.timefmt import from_iso, to_iso

ENTITY_VERSION = 1


@dataclass(frozen=True)
class JobCount:
    """The collection's counter row: how many jobs it holds, and its ETag to change it by."""

    jobs: int
    etag: str


def opt_iso(value: datetime | None) -> str | None:
    return to_iso(value) if value else None


def opt_dt(value: Any) -> datetime | None:
    return from_iso(value) if value else None


def collection_entity(collection: Collection) -> dict[str, Any]:
    return {
        "PartitionKey": collection.ref.namespace,
        "RowKey": collection.ref.name,
        "v": ENTITY_VERSION,
        "definition": json.dumps(
            collection.definition.model_dump(mode="json", by_alias=True, exclude_none=True)
        ),
        "created_at": to_iso(collection.created_at),
    }


def job_entity(job: StoredJob) -> dict[str, Any]:
    return {
        "PartitionKey": job.collection,
        "RowKey": job_key(job.name),
        "v": ENTITY_VERSION,
        "definition": json.dumps(
            job.properties.model_dump(mode="json", by_alias=True, exclude_none=True)
        ),
        "state": job.state.value,
        "created_at": to_iso(job.created_at),
        "generation": job.generation,
        "next_fire": opt_iso(job.next_fire),
        "occurrences": job.occurrences,
        "execution_count": job.execution_count,
        "failure_count": job.failure_count,
        "faulted_count": job.faulted_count,
        "missed_count": job.missed_count,
        "last_execution_time": opt_iso(job.last_execution_time),
        "scheduled_from": opt_iso(job.scheduled_from),
        "closing": job.final_state.value if job.final_state else None,
        "closing_generation": job.final_state_generation,
    }


# What job_listing_from_entity reads: a query asks only for these ($select).
LISTING_COLUMNS = ("RowKey", "state", "definition", "next_fire", "last_execution_time")


def job_listing_from_entity(collection: str, entity: TableEntity) -> JobListing:
    """A job row's listing columns; the definition's JSON is parsed for its action's type
    only (validating 10,000 definitions would cost more than reading them)."""
    action = json.loads(entity["definition"]).get("action") or {}
    return JobListing(
        collection=collection,
        name=job_name(entity["RowKey"]),
        state=JobState(entity["state"]),
        kind=str(action.get("type") or ""),
        next_fire=opt_dt(entity.get("next_fire")),
        last_execution_time=opt_dt(entity.get("last_execution_time")),
    )


def job_from_entity(entity: TableEntity) -> StoredJob:
    return StoredJob(
        collection=entity["PartitionKey"],
        name=job_name(entity["RowKey"]),
        properties=load_stored_definition(json.loads(entity["definition"])),
        state=JobState(entity["state"]),
        created_at=from_iso(entity["created_at"]),
        generation=int(entity["generation"]),
        next_fire=opt_dt(entity.get("next_fire")),
        occurrences=int(entity["occurrences"]),
        execution_count=int(entity["execution_count"]),
        failure_count=int(entity["failure_count"]),
        faulted_count=int(entity["faulted_count"]),
        missed_count=int(entity["missed_count"]),
        last_execution_time=opt_dt(entity.get("last_execution_time")),
        scheduled_from=opt_dt(entity.get("scheduled_from")),
        final_state=JobState(entity["closing"]) if entity.get("closing") else None,
        final_state_generation=int(entity.get("closing_generation") or 0),
        etag=entity.metadata["etag"],
    )


def run_entity(run: Run) -> dict[str, Any]:
    return {
        "PartitionKey": run.collection,
        "RowKey": run.row_key,
        "v": ENTITY_VERSION,
        "job": run.job,
        "generation": run.generation,
        "nominal": to_iso(run.nominal),
        "token": run.token,
        "repeat_count": run.repeat_count,
        "due": to_iso(run.due),
        "manual": run.on_demand,
        "args": run.arguments,
        "trigger": run.trigger,
        "last": run.last,
        "phase": run.phase.value,
        "attempt": run.attempt,
        "status": run.status.value,
        "faulted": run.faulted,
        "late_seconds": float(run.late_seconds),
        "missed": run.missed,
        "claimed_until": opt_iso(run.claimed_until),
        "started_at": opt_iso(run.started_at),
        "watch_at": opt_iso(run.watch_at),
        "created": opt_iso(run.created),
        "replaced_by": run.replaced_by,
    }


def run_from_entity(entity: TableEntity) -> Run:
    return Run(
        collection=entity["PartitionKey"],
        job=entity["job"],
        generation=int(entity["generation"]),
        nominal=from_iso(entity["nominal"]),
        token=entity.get("token") or "",
        repeat_count=int(entity["repeat_count"]),
        due=from_iso(entity["due"]),
        on_demand=bool(entity["manual"]),
        arguments=entity.get("args") or "",
        trigger=entity.get("trigger") or "",
        last=bool(entity["last"]),
        phase=ActionName(entity["phase"]),
        attempt=int(entity["attempt"]),
        status=RunStatus(entity["status"]),
        faulted=bool(entity["faulted"]),
        late_seconds=float(entity["late_seconds"]),
        missed=int(entity["missed"]),
        claimed_until=opt_dt(entity.get("claimed_until")),
        started_at=opt_dt(entity.get("started_at")),
        watch_at=opt_dt(entity.get("watch_at")),
        created=opt_dt(entity.get("created")),
        replaced_by=entity.get("replaced_by") or "",
        etag=entity.metadata["etag"],
        written_at=entity.metadata.get("timestamp"),
    )


def watch_entity(watch: Watch, now: datetime) -> dict[str, Any]:
    return {
        "PartitionKey": watch.collection,
        "RowKey": watch.row_key,
        "deadline": to_iso(watch.deadline),
        "filed": filed(watch.deadline, now),
    }


def watch_from_entity(entity: TableEntity) -> Watch:
    subject = entity["RowKey"].split("|", 2)[2]
    return Watch(entity["PartitionKey"], from_iso(entity["deadline"]), subject)


def tally_entity(row: TallyRow) -> dict[str, Any]:
    tally = row.tally
    return {
        "PartitionKey": row.collection,
        "RowKey": row.key,
        "job": row.job,
        "executions": tally.executions,
        "failures": tally.failures,
        "faulted": tally.faulted,
        "last_execution_time": opt_iso(tally.last_execution_time),
        "generation": row.generation,
        "closing": row.final_state.value if row.final_state else None,
    }


def tally_from_entity(entity: TableEntity) -> TallyRow:
    return TallyRow(
        collection=entity["PartitionKey"],
        job=entity["job"],
        key=entity["RowKey"],
        tally=Tally(
            int(entity["executions"]),
            int(entity["failures"]),
            int(entity["faulted"]),
            opt_dt(entity.get("last_execution_time")),
        ),
        generation=int(entity["generation"]),
        final_state=JobState(entity["closing"]) if entity.get("closing") else None,
    )


def history_entity(record: HistoryRecord) -> dict[str, Any]:
    props = record.properties
    return {
        "PartitionKey": record.collection,
        "RowKey": record.row_key,
        "v": ENTITY_VERSION,
        "job": record.job,
        "start_time": to_iso(props.start_time),
        "end_time": opt_iso(props.end_time),
        "expected_execution_time": to_iso(props.expected_execution_time),
        "action_name": props.action_name.value,
        "status": props.status.value,
        "message": props.message[:30000],
        "retry_count": props.retry_count,
        "repeat_count": props.repeat_count,
        "late_seconds": float(record.late_seconds),
        "manual": record.on_demand,
        "run_token": record.run_token,
        "output": record.output,
        "trigger": record.trigger,
    }


def history_from_entity(entity: TableEntity) -> HistoryRecord:
    return HistoryRecord(
        collection=entity["PartitionKey"],
        job=entity["job"],
        properties=JobHistoryProperties(
            start_time=from_iso(entity["start_time"]),
            end_time=opt_dt(entity.get("end_time")),
            expected_execution_time=from_iso(entity["expected_execution_time"]),
            action_name=ActionName(entity["action_name"]),
            status=HistoryStatus(entity["status"]),
            message=entity["message"],
            retry_count=int(entity["retry_count"]),
            repeat_count=int(entity["repeat_count"]),
        ),
        late_seconds=float(entity.get("late_seconds") or 0.0),
        on_demand=bool(entity.get("manual")),
        run_token=entity.get("run_token") or "",
        output=bool(entity.get("output")),
        trigger=entity.get("trigger") or "",
    )


def collection_from_entity(entity: TableEntity) -> Collection:
    subscription, resource_group = entity["PartitionKey"].split("|")
    return Collection(
        ref=CollectionRef(subscription, resource_group, entity["RowKey"]),
        definition=CollectionDefinition.model_validate(json.loads(entity["definition"])),
        created_at=from_iso(entity["created_at"]),
    )


def job_count_entity(collection: str, jobs: int) -> dict[str, Any]:
    return {"PartitionKey": collection, "RowKey": JOB_COUNT_KEY, "v": ENTITY_VERSION, "jobs": jobs}


def job_count_from_entity(entity: TableEntity) -> JobCount:
    etag = entity.metadata["etag"]
    if etag is None:  # every row read from the service has one; without it no write is safe
        raise ValueError("the job counter was read without its ETag")
    return JobCount(int(entity["jobs"]), etag)


def due_entity(entry: DueEntry, filed_in: str) -> dict[str, Any]:
    return {
        "PartitionKey": entry.collection,
        "RowKey": due_key(entry),
        "due": to_iso(entry.due),
        "filed": filed_in,
    }


def due_from_entity(entity: TableEntity) -> DueEntry:
    return DueEntry(from_iso(entity["due"]), entity["PartitionKey"], due_job(entity["RowKey"]))


__all__ = [
    "ENTITY_VERSION",
    "JobCount",
    "collection_entity",
    "collection_from_entity",
    "job_count_entity",
    "job_count_from_entity",
    "due_entity",
    "due_from_entity",
    "history_entity",
    "history_from_entity",
    "job_entity",
    "job_from_entity",
    "opt_dt",
    "opt_iso",
    "run_entity",
    "run_from_entity",
    "tally_entity",
    "tally_from_entity",
    "watch_entity",
    "watch_from_entity",
]
