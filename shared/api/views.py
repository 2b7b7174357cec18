"""Response shapes: the records as Azure Scheduler's JSON (ids, types, names, properties), and
pages with their `nextLink`. No I/O, no rules: what the records hold, shown."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import Request

from shared.engine.records import Collection, HistoryRecord, RunStatus, StoredJob
from shared.engine.run_lookup import RunView
from shared.model.job import ActionName
from shared.names import CollectionRef
from shared.timefmt import to_iso


def collection_json(collection: Collection) -> dict[str, Any]:
    definition = collection.definition
    return {
        "id": collection.ref.resource_id,
        "type": "Microsoft.Scheduler/jobCollections",
        "name": collection.ref.name,
        "location": definition.location,
        "tags": definition.tags or {},
        "properties": definition.properties.to_json_dict(),
    }


def job_json(job: StoredJob) -> dict[str, Any]:
    ref = CollectionRef.from_key(job.collection)
    props = job.properties
    properties: dict[str, Any] = {}
    if props.start_time is not None:
        properties["startTime"] = to_iso(props.start_time)
    properties["action"] = props.action.public_json()
    if props.recurrence is not None:
        properties["recurrence"] = props.recurrence.to_json_dict()
    properties["state"] = job.state.value
    properties["overlap"] = props.overlap.value
    properties["status"] = job.status.to_json_dict()
    return {
        "id": f"{ref.resource_id}/jobs/{job.name}",
        "type": "Microsoft.Scheduler/jobCollections/jobs",
        "name": f"{ref.name}/{job.name}",
        "properties": properties,
    }


def history_json(record: HistoryRecord, output_url: str | None = None) -> dict[str, Any]:
    """`output_url`: where the attempt's output is read (code jobs), if it kept one."""
    ref = CollectionRef.from_key(record.collection)
    props = record.properties.to_json_dict()
    if output_url is not None:
        props["output"] = output_url
    if record.late_seconds:
        props["lateSeconds"] = round(record.late_seconds, 3)
    if record.on_demand:
        props["onDemand"] = True
    return {
        "id": f"{ref.resource_id}/jobs/{record.job}/history/{record.public_id}",
        "type": "Microsoft.Scheduler/jobCollections/jobs/history",
        "name": f"{ref.name}/{record.job}/{record.public_id}",
        "properties": props,
    }


# The action kinds whose attempts keep output (shared/storage/output.py).
_OUTPUT_KINDS = frozenset({"code", "webjob"})


def run_json(view: RunView, job: StoredJob, job_url: str) -> dict[str, Any]:
    """A run (shared/engine/run_lookup.py): while in flight, the attempt under way or next and,
    when it runs and keeps output, the `output` link of it (`current-...`, readable before its
    history row exists); once ended, the outcome. Its attempts so far with their outputs."""
    ref = CollectionRef.from_key(job.collection)
    props: dict[str, Any] = {"expectedExecutionTime": to_iso(view.nominal)}
    if view.on_demand:
        props["onDemand"] = True
    run = view.in_flight
    if run is None:
        props["state"] = "Ended"
        props["status"] = _outcome(view.attempts)
    else:
        running = run.status is RunStatus.RUNNING
        props["state"] = run.status.value
        props["actionName"] = run.phase.value
        props["retryCount"] = run.attempt
        if running and run.started_at is not None:
            props["startTime"] = to_iso(run.started_at)
        if running and _keeps_output(job, run.phase):
            phase = "m" if run.phase is ActionName.MAIN_ACTION else "e"
            attempt = f"current-{view.run_id}-{phase}{run.attempt:03d}"
            props["output"] = f"{job_url}/history/{attempt}/output"
    props["attempts"] = [_attempt_json(record, job_url) for record in view.attempts]
    return {
        "id": f"{ref.resource_id}/jobs/{job.name}/runs/{view.run_id}",
        "type": "Microsoft.Scheduler/jobCollections/jobs/runs",
        "name": f"{ref.name}/{job.name}/{view.run_id}",
        "properties": props,
    }


def _keeps_output(job: StoredJob, phase: ActionName) -> bool:
    action = job.properties.action
    if phase is ActionName.ERROR_ACTION and action.error_action is not None:
        return action.error_action.type.lower() in _OUTPUT_KINDS
    return action.type.lower() in _OUTPUT_KINDS


def _outcome(attempts: list[HistoryRecord]) -> str:
    """An ended run's status: its main action's last attempt (an error action's own result
    does not make the run a success)."""
    main = [r for r in attempts if r.properties.action_name is ActionName.MAIN_ACTION]
    last = (main or attempts)[-1]
    return last.properties.status.value


def _attempt_json(record: HistoryRecord, job_url: str) -> dict[str, Any]:
    props = record.properties
    shown: dict[str, Any] = {
        "id": record.public_id,
        "actionName": props.action_name.value,
        "retryCount": props.retry_count,
        "status": props.status.value,
        "startTime": to_iso(props.start_time),
    }
    if props.end_time is not None:
        shown["endTime"] = to_iso(props.end_time)
    if record.output:
        shown["output"] = f"{job_url}/history/{record.public_id}/output"
    return shown


def page(request: Request, values: Iterable[dict[str, Any]], token: str | None) -> dict[str, Any]:
    """A list response: its values, and the link to the next page when there is one."""
    return {"value": list(values), "nextLink": next_link(request, token)}


def next_link(request: Request, token: str | None) -> str | None:
    """This request's URL with the continuation token (a `$skip` was used up by this page)."""
    if token is None:
        return None
    params = {k: v for k, v in request.query_params.items() if k != "$skip"}
    params["$skiptoken"] = token
    return str(request.url.replace_query_params(**params))
