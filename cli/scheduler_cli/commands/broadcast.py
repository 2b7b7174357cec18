"""`sched broadcast ...`: IoT Hub jobs on the registry (a method or twin update to every device
a condition selects), with `--wait` and a progress bar as `az iot hub job create --wait`."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from scheduler_cli.commands.device import API_VERSION, json_option, query_pages
from scheduler_cli.context import State, output_of, pass_state, read_options
from scheduler_cli.errors import CliError, ExitCode, usage_error
from scheduler_cli.job_body import read_file
from scheduler_cli.output import Column, emit, field

ENDED = ("completed", "failed", "cancelled")
COLUMNS = [
    Column("Job", field("jobId")),
    Column("Type", field("type")),
    Column("Status", field("status")),
    Column("Start", field("startTime")),
    Column("Devices", field("deviceJobStatistics.deviceCount")),
    Column("Succeeded", field("deviceJobStatistics.succeededCount")),
    Column("Failed", field("deviceJobStatistics.failedCount")),
    Column("Reason", field("failureReason")),
]


def job_path(job_id: str) -> str:
    return f"jobs/v2/{quote(job_id, safe='')}"


@click.group()
def broadcast() -> None:
    """Broadcast jobs: one method call or twin update to many devices."""


@broadcast.command("create")
@click.argument("job_id")
@click.option("--file", "-f", "file", metavar="PATH", help="The JobRequest as JSON or YAML.")
@click.option("--method", "method_name", help="Direct method to call on each device.")
@click.option("--payload", help="The method's JSON payload.")
@click.option("--response-timeout", type=click.IntRange(5, 300), help="Per-device, seconds.")
@click.option("--twin-patch", help='JSON twin patch, e.g. {"properties":{"desired":{"a":1}}}.')
@click.option("-q", "--query-condition", help="Which devices: tags.site = 'berlin'.")
@click.option("--start-time", help="ISO 8601 (default: now).")
@click.option(
    "--max-time",
    type=click.IntRange(1),
    default=3600,
    show_default=True,
    help="maxExecutionTimeInSeconds.",
)
@click.option("--max-per-minute", type=click.IntRange(1), help="rollout.maximumPerMinute.")
@click.option("--wait", is_flag=True, help="Show progress until it ends; exit 1 unless completed.")
@click.option("--poll-interval", default=1.0, show_default=True, help="Seconds between polls.")
@read_options
@pass_state
def create(state: State, /, job_id: str, **flags: Any) -> None:
    """Create broadcast JOB_ID from flags or --file (flags on top of the file)."""
    body: dict[str, Any] = {}
    if flags["file"]:
        body = read_file(flags["file"])
        body = body.get("properties", body) if set(body) == {"properties"} else body
    body["jobId"] = job_id
    if flags["method_name"] and flags["twin_patch"]:
        raise usage_error("give --method or --twin-patch, not both")
    if flags["method_name"]:
        method: dict[str, Any] = {
            "methodName": flags["method_name"],
            "payload": json_option("--payload", flags["payload"]),
        }
        if flags["response_timeout"]:
            method["responseTimeoutInSeconds"] = flags["response_timeout"]
        body.update(type="scheduleDeviceMethod", cloudToDeviceMethod=method)
    elif flags["twin_patch"]:
        body.update(
            type="scheduleUpdateTwin", updateTwin=json_option("--twin-patch", flags["twin_patch"])
        )
    if "type" not in body:
        raise usage_error("what should each device get? give --method NAME or --twin-patch JSON")
    if flags["query_condition"]:
        body["queryCondition"] = flags["query_condition"]
    if "queryCondition" not in body:
        raise usage_error("which devices? give -q/--query-condition, e.g. \"tags.site = 'x'\"")
    if flags["start_time"]:
        body["startTime"] = flags["start_time"]
    body.setdefault("startTime", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    body.setdefault("maxExecutionTimeInSeconds", flags["max_time"])
    if flags["max_per_minute"]:
        body["rollout"] = {"maximumPerMinute": flags["max_per_minute"]}
    made = state.api.send("PUT", job_path(job_id), json=body, params=API_VERSION).json()
    if flags["wait"]:
        made = wait_for(state, job_id, flags["poll_interval"])
    emit(made, output_of(state, flags["output"]), flags["query"], COLUMNS)
    if flags["wait"] and made.get("status") != "completed":
        reason = made.get("failureReason") or "see its device records"
        raise CliError(f"broadcast {job_id} ended {made.get('status')}: {reason}", ExitCode.FAILED)


def wait_for(state: State, job_id: str, interval: float) -> dict[str, Any]:
    """Polls the job until it ends; the bar (on stderr) counts devices done of deviceCount."""
    err = Console(file=sys.stderr)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task(job_id, total=None, detail="")
        while True:
            found: dict[str, Any] = state.api.get(job_path(job_id), **API_VERSION)
            stats = found.get("deviceJobStatistics") or {}
            done = int(stats.get("succeededCount", 0)) + int(stats.get("failedCount", 0))
            progress.update(
                task,
                total=stats.get("deviceCount") or None,
                completed=done,
                detail=f"{found.get('status')}  ok {stats.get('succeededCount', 0)}  "
                f"failed {stats.get('failedCount', 0)}",
            )
            if found.get("status") in ENDED:
                return found
            time.sleep(interval)


@broadcast.command("show")
@click.argument("job_id")
@read_options
@pass_state
def show(state: State, job_id: str, output: str | None, query: str | None) -> None:
    """Show broadcast JOB_ID with its device statistics."""
    emit(state.api.get(job_path(job_id), **API_VERSION), output_of(state, output), query, COLUMNS)


@broadcast.command("list")
@click.option(
    "--type", "job_type", type=click.Choice(["scheduleDeviceMethod", "scheduleUpdateTwin"])
)
@click.option("--status", type=click.Choice([*ENDED, "queued", "scheduled", "running"]))
@read_options
@pass_state
def list_(
    state: State, job_type: str | None, status: str | None, output: str | None, query: str | None
) -> None:
    """List broadcasts (every page)."""
    params: dict[str, Any] = dict(API_VERSION)
    if job_type:
        params["jobType"] = job_type
    if status:
        params["jobStatus"] = status
    items: list[Any] = []
    token: str | None = None
    while True:
        headers = {"x-ms-continuation": token} if token else None
        response = state.api.send("GET", "jobs/v2/query", params=params, headers=headers)
        items.extend(response.json())
        token = response.headers.get("x-ms-continuation")
        if not token:
            break
    emit(items, output_of(state, output), query, COLUMNS)


@broadcast.command("cancel")
@click.argument("job_id")
@read_options
@pass_state
def cancel(state: State, job_id: str, output: str | None, query: str | None) -> None:
    """Cancel broadcast JOB_ID: devices not called yet are not called."""
    found = state.api.send("POST", f"{job_path(job_id)}/cancel", params=API_VERSION).json()
    emit(found, output_of(state, output), query, COLUMNS)


@broadcast.command("devices")
@click.argument("job_id")
@read_options
@pass_state
def devices(state: State, job_id: str, output: str | None, query: str | None) -> None:
    """The per-device records of broadcast JOB_ID."""
    escaped = job_id.replace("'", "''")
    items = query_pages(state, f"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '{escaped}'")
    columns = [
        Column("Device", field("deviceId")),
        Column("Status", field("status")),
        Column("Start", field("startTimeUtc")),
        Column("End", field("endTimeUtc")),
        Column("Outcome", field("outcome")),
        Column("Error", field("error.description")),
    ]
    emit(items, output_of(state, output), query, columns)
