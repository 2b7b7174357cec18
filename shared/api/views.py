"""Response shapes: the records as Azure Scheduler's JSON (ids, types, names, properties), and
pages with their `nextLink`. No I/O, no rules: what the records hold, shown."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import Request

from shared.engine.records import Collection, HistoryRecord, StoredJob
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
