"""`sched job ...`: create from flags or a file, show, list, next, run, enable, disable, delete."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import click

from scheduler_cli.context import (
    State,
    collection_option,
    job_path,
    job_ref,
    output_of,
    pass_state,
    read_options,
)
from scheduler_cli.describe import describe_schedule
from scheduler_cli.errors import CliError, ExitCode, usage_error
from scheduler_cli.follow import follow_run
from scheduler_cli.job_body import (
    OVERLAPS,
    RETRY_TYPES,
    ActionFlags,
    RetryFlags,
    build_action,
    build_error_action,
    build_retry,
    read_file,
)
from scheduler_cli.output import Column, emit, field
from scheduler_cli.schedule import ScheduleFlags, apply_schedule

COLUMNS = [
    Column("Name", field("name")),
    Column("State", field("properties.state")),
    Column("Action", field("properties.action.type")),
    Column("Schedule", lambda job: describe_schedule(job.get("properties") or {})),
    Column("Next", field("properties.status.nextExecutionTime")),
    Column("Last", field("properties.status.lastExecutionTime")),
    Column("Runs", field("properties.status.executionCount")),
    Column("Failures", field("properties.status.failureCount")),
]


@click.group()
def job() -> None:
    """Jobs. NAME is COLLECTION/JOB, or JOB with -c COLLECTION."""


@job.command("create")
@click.argument("name")
@collection_option
@click.option("--file", "-f", "file", metavar="PATH", help="Job JSON or YAML (- for stdin).")
@click.option("--at", help="startTime, ISO 8601 (2030-01-01T09:00; on --tz's clock if no offset).")
@click.option("--every", help="Recur every N units: 15m, 2h, 1d, 1w, 1mo.")
@click.option("--weekdays", help="On these days: mon,fri.")
@click.option("--monthdays", help="On these days of the month: 1,15,-1.")
@click.option("--time", "times", help="At these times: 09:00 (or 09:00,09:30).")
@click.option("--cron", help='A cron (5 fields) or NCRONTAB (6) expression: "0 */15 * * * *".')
@click.option("--tz", help="IANA time zone of the schedule: Europe/Berlin.")
@click.option("--count", type=click.IntRange(1), help="Run at most this many times.")
@click.option("--until", help="endTime, ISO 8601.")
@click.option("--http-post", metavar="URL", help="Action: POST to URL.")
@click.option("--http-get", metavar="URL", help="Action: GET URL.")
@click.option("--body", help="Body of the HTTP request.")
@click.option("--header", "headers", multiple=True, metavar="NAME:VALUE", help="HTTP header.")
@click.option("--queue", metavar="NAME", help="Action: put --message on this storage queue.")
@click.option("--message", help="The queue message.")
@click.option(
    "--connection-setting",
    default="AzureWebJobsStorage",
    show_default=True,
    help="App setting holding the queue's connection string.",
)
@click.option("--handler", metavar="NAME", help="Action: run this registered Code handler.")
@click.option("--arg", "args", multiple=True, metavar="KEY=VALUE", help="Handler argument.")
@click.option("--timeout", type=click.IntRange(1, 3600), help="Action timeout in seconds.")
@click.option("--retry", type=click.Choice(RETRY_TYPES, case_sensitive=False), help="Retry type.")
@click.option("--retry-count", type=click.IntRange(0, 20), help="Retries after the first try.")
@click.option("--retry-interval", help="Fixed: wait between tries (30s, 5m, PT30S).")
@click.option("--min-backoff", help="Exponential: first wait (5s).")
@click.option("--max-backoff", help="Exponential: longest wait (1h).")
@click.option("--error-http-post", metavar="URL", help="Error action: POST to URL.")
@click.option("--error-queue", metavar="NAME", help="Error action: a storage queue message.")
@click.option("--error-message", help="Body or message of the error action.")
@click.option("--overlap", type=click.Choice(OVERLAPS, case_sensitive=False))
@click.option("--disabled", is_flag=True, help="Create it Disabled.")
@read_options
@pass_state
def create(state: State, /, name: str, collection: str | None, **flags: Any) -> None:
    """Create or replace job NAME from flags, or from --file with flags on top.

    \b
    sched job create ops/standup --weekdays mon,fri --time 09:00 --tz Europe/Berlin \\
        --http-post https://example.com/standup --retry fixed --retry-count 3
    sched job create ops/report --every 15m --handler feed-poll --arg url=https://x/rss
    sched job create ops/nightly -f nightly.json
    """
    coll, name = job_ref(state, name, collection)
    output, query = flags.pop("output"), flags.pop("query")
    body = read_file(flags["file"]) if flags["file"] else {"properties": {}}
    properties = body["properties"]
    apply_schedule(
        properties,
        ScheduleFlags(
            at=flags["at"],
            every=flags["every"],
            weekdays=flags["weekdays"],
            monthdays=flags["monthdays"],
            times=flags["times"],
            cron=flags["cron"],
            tz=flags["tz"],
            count=flags["count"],
            until=flags["until"],
        ),
    )
    retry = RetryFlags(
        flags["retry"],
        flags["retry_count"],
        flags["retry_interval"],
        flags["min_backoff"],
        flags["max_backoff"],
    )
    action = build_action(
        ActionFlags(
            http_post=flags["http_post"],
            http_get=flags["http_get"],
            body=flags["body"],
            headers=flags["headers"],
            timeout=flags["timeout"],
            queue=flags["queue"],
            message=flags["message"],
            connection_setting=flags["connection_setting"],
            handler=flags["handler"],
            args=flags["args"],
        ),
        retry,
    )
    if action is not None:
        properties["action"] = action
    elif flags["retry"] is not None:
        if not isinstance(properties.get("action"), dict):
            raise usage_error("--retry needs an action (--http-post, --queue, --handler or --file)")
        properties["action"]["retryPolicy"] = build_retry(retry)
    error_action = build_error_action(
        flags["error_http_post"], flags["error_queue"], flags["error_message"]
    )
    if error_action is not None:
        if not isinstance(properties.get("action"), dict):
            raise usage_error("an error action needs an action (--http-post, --queue, --handler)")
        properties["action"]["errorAction"] = error_action
    if not isinstance(properties.get("action"), dict):
        raise usage_error(
            "what should the job do? give --http-post URL, --http-get URL, --queue NAME, "
            "--handler NAME or --file"
        )
    if flags["overlap"]:
        properties["overlap"] = flags["overlap"].capitalize()
    if flags["disabled"]:
        properties["state"] = "Disabled"
    made = state.api.send("PUT", job_path(coll, name), json=body).json()
    emit(made, output_of(state, output), query, COLUMNS)


@job.command("show")
@click.argument("name")
@collection_option
@read_options
@pass_state
def show(
    state: State, name: str, collection: str | None, output: str | None, query: str | None
) -> None:
    """Show job NAME with its state and counters."""
    coll, job_name = job_ref(state, name, collection)
    emit(state.api.get(job_path(coll, job_name)), output_of(state, output), query, COLUMNS)


@job.command("list")
@click.argument("collection")
@click.option(
    "--state", "job_state", type=click.Choice(["Enabled", "Disabled", "Completed", "Faulted"])
)
@click.option("--top", type=click.IntRange(1), help="At most this many jobs.")
@read_options
@pass_state
def list_(
    state: State,
    collection: str,
    job_state: str | None,
    top: int | None,
    output: str | None,
    query: str | None,
) -> None:
    """List the jobs of COLLECTION (every page)."""
    params = {"$filter": f"state eq '{job_state}'"} if job_state else {}
    items = list(state.api.pages(f"jobCollections/{collection}/jobs", top, **params))
    emit(items, output_of(state, output), query, COLUMNS)


@job.command("next")
@click.argument("name")
@collection_option
@click.option("-n", "--count", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--after", help="Preview as if saved at this instant (ISO 8601; default now).")
@read_options
@pass_state
def next_(
    state: State,
    name: str,
    collection: str | None,
    count: int,
    after: str | None,
    output: str | None,
    query: str | None,
) -> None:
    """The coming occurrences of job NAME and its schedule in words."""
    coll, job_name = job_ref(state, name, collection)
    found = state.api.get(job_path(coll, job_name))
    properties = found.get("properties") or {}
    params: dict[str, Any] = {"count": count}
    if after:
        params["after"] = after
    times = state.api.get(f"{job_path(coll, job_name)}/occurrences", **params)["value"]
    zone = (properties.get("recurrence") or {}).get("timeZone")
    data = {
        "name": found.get("name"),
        "schedule": describe_schedule(properties),
        "occurrences": times,
    }
    chosen = output_of(state, output)
    if chosen != "table" or query:
        emit(data, chosen, query)
        return
    click.echo(f"Schedule: {data['schedule']}")
    rows = [{"#": i + 1, "UTC": t, **_local(t, zone)} for i, t in enumerate(times)]
    if not rows:
        click.echo("No coming occurrence.")
        return
    emit(rows, "table")


def _local(utc: str, zone: str | None) -> dict[str, str]:
    if not zone or zone == "UTC":
        return {}
    instant = datetime.fromisoformat(utc.replace("Z", "+00:00"))
    return {zone: instant.astimezone(ZoneInfo(zone)).strftime("%a %Y-%m-%d %H:%M:%S %Z")}


@job.command("run")
@click.argument("name")
@collection_option
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Print the run's output until it ends; exit 1 unless it ends Completed.",
)
@pass_state
def run(state: State, name: str, collection: str | None, follow: bool) -> None:
    """Run job NAME now, whatever its schedule (see `sched history NAME --follow`)."""
    coll, job_name = job_ref(state, name, collection)
    response = state.api.send("POST", f"{job_path(coll, job_name)}/run")
    location = response.headers.get("Location")
    run_id = str(location or "").rstrip("/").rsplit("/", 1)[-1]
    if not follow:
        started = f"Run {run_id}" if run_id else "Run"
        click.echo(f"{started} of {coll}/{job_name} requested.")
        return
    if not location:
        raise CliError(
            "the app did not say which run it started (an app older than `job run --follow`)",
            ExitCode.FAILED,
        )
    status = follow_run(state.api, location)
    click.echo(f"Run {run_id} of {coll}/{job_name}: {status}", err=True)
    if status != "Completed":
        raise CliError(f"job {coll}/{job_name} run {run_id} ended {status}", ExitCode.FAILED)


def _set_state(state: State, name: str, collection: str | None, value: str) -> None:
    coll, job_name = job_ref(state, name, collection)
    state.api.send("PATCH", job_path(coll, job_name), json={"properties": {"state": value}})
    click.echo(f"Job {coll}/{job_name} {value.lower()}.")


@job.command("enable")
@click.argument("name")
@collection_option
@pass_state
def enable(state: State, name: str, collection: str | None) -> None:
    """Enable job NAME."""
    _set_state(state, name, collection, "Enabled")


@job.command("disable")
@click.argument("name")
@collection_option
@pass_state
def disable(state: State, name: str, collection: str | None) -> None:
    """Disable job NAME (a run already dispatched is cancelled)."""
    _set_state(state, name, collection, "Disabled")


@job.command("delete")
@click.argument("name")
@collection_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def delete(state: State, name: str, collection: str | None, yes: bool) -> None:
    """Delete job NAME with its history."""
    coll, job_name = job_ref(state, name, collection)
    if not yes:
        click.confirm(f"Delete job {coll}/{job_name} and its history?", abort=True)
    state.api.send("DELETE", job_path(coll, job_name))
    click.echo(f"Job {coll}/{job_name} deleted.")
