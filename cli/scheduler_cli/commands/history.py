"""`sched history NAME [--follow]` and `sched logs NAME [RUN]`: a job's attempts, and the
output of a code job's attempt (followed while it runs)."""

from __future__ import annotations

import time
from typing import Any

import click

from scheduler_cli.client import Api
from scheduler_cli.context import (
    State,
    collection_option,
    job_path,
    job_ref,
    output_of,
    pass_state,
    read_options,
)
from scheduler_cli.errors import CliError, ExitCode
from scheduler_cli.follow import follow_attempt, print_output
from scheduler_cli.output import Column, echo_line, emit, field

FINAL_STATES = ("Completed", "Faulted")
COLUMNS = [
    Column("Run", lambda row: run_id(row)),
    Column("Status", field("properties.status")),
    Column("Action", field("properties.actionName")),
    Column("Expected", field("properties.expectedExecutionTime")),
    Column("Start", field("properties.startTime")),
    Column("End", field("properties.endTime")),
    Column("Retry", field("properties.retryCount")),
    Column("Message", field("properties.message")),
]


def run_id(row: dict[str, Any]) -> str:
    """The history id, the last part of `name` (`collection/job/id`), which `logs` takes."""
    return str(row.get("name", "")).rsplit("/", 1)[-1]


def _line(row: dict[str, Any]) -> str:
    p = row.get("properties") or {}
    message = " ".join(str(p.get("message") or "").split())[:160]
    return (
        f"{p.get('startTime', '')}  {p.get('status', ''):<9}  {p.get('actionName', '')}  "
        f"{run_id(row)}  {message}"
    )


@click.command("history")
@click.argument("name")
@collection_option
@click.option("--top", type=click.IntRange(1, 100), default=20, show_default=True)
@click.option("--status", type=click.Choice(["Completed", "Failed", "Cancelled"]))
@click.option("--follow", "-f", is_flag=True, help="Keep printing new rows (oldest first).")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between polls.")
@click.option(
    "--timeout",
    type=float,
    help="Stop following after this many seconds (it stops anyway once the job is final).",
)
@read_options
@pass_state
def history(
    state: State,
    name: str,
    collection: str | None,
    top: int,
    status: str | None,
    follow: bool,
    interval: float,
    timeout: float | None,
    output: str | None,
    query: str | None,
) -> None:
    """The attempts of job NAME, newest first; with --follow, tail new ones as they land.

    Following ends when the job reaches a final state (Completed, Faulted: no row can come
    after it), after --timeout, or on Ctrl+C; with -o json it prints one JSON object a line."""
    coll, job_name = job_ref(state, name, collection)
    path = f"{job_path(coll, job_name)}/history"
    params: dict[str, Any] = {"$top": top}
    if status:
        params["$filter"] = f"status eq '{status}'"
    chosen = output_of(state, output)
    if not follow:
        emit(state.api.get(path, **params)["value"], chosen, query, COLUMNS)
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    seen: set[str] = set()
    try:
        while True:
            final = _job_state(state.api, coll, job_name) in FINAL_STATES
            rows = state.api.get(path, **params)["value"]
            for row in reversed(rows):  # oldest first, as a tail prints
                if row.get("id") not in seen:
                    seen.add(str(row.get("id")))
                    echo_line(row, chosen, _line)
            if final or (deadline is not None and time.monotonic() >= deadline):
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        return


def _job_state(api: Api, collection: str, job: str) -> str | None:
    found = api.get(job_path(collection, job))
    return (found.get("properties") or {}).get("state")


@click.command("logs")
@click.argument("name")
@click.argument("run", required=False)
@collection_option
@click.option(
    "--follow/--no-follow",
    default=True,
    show_default=True,
    help="Keep printing while the attempt runs.",
)
@pass_state
def logs(state: State, name: str, run: str | None, collection: str | None, follow: bool) -> None:
    """The output of a code job's attempt RUN (a history id from `sched history`). Without RUN:
    the attempt under way, followed until it ends, if the job has one running; else the newest
    attempt that has output."""
    coll, job_name = job_ref(state, name, collection)
    path = job_path(coll, job_name)
    if run is None:
        running = _running_with_output(state.api, path)
        if running is not None:
            location = f"{path}/runs/{run_id(running)}"
            output = str(running["properties"]["output"])
            if follow:
                follow_attempt(state.api, location, output)
            else:
                print_output(state.api, output, follow=False)
            return
        rows = state.api.get(f"{path}/history", **{"$top": 100})["value"]
        with_output = [row for row in rows if (row.get("properties") or {}).get("output")]
        if not with_output:
            raise CliError(
                f"job {coll}/{job_name} has no attempt with output yet (only code jobs and "
                "WebJobs keep output)",
                ExitCode.NOT_FOUND,
            )
        run = run_id(with_output[0])
    print_output(state.api, f"{path}/history/{run}/output", follow)


def _running_with_output(api: Api, path: str) -> dict[str, Any] | None:
    """The newest of the job's runs with an attempt under way that keeps output, if any."""
    runs = api.get(f"{path}/runs", **{"$filter": "state eq 'Running'"})["value"]
    return next((r for r in runs if (r.get("properties") or {}).get("output")), None)
