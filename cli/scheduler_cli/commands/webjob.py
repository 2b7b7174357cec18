"""`sched webjob ...`: the app's WebJobs through Kudu's routes (list, show, run --wait,
history, logs, start/stop of continuous ones), as `az webapp webjob` does for App Service."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import click

from scheduler_cli.context import State, output_of, pass_state, read_options
from scheduler_cli.errors import CliError, ExitCode
from scheduler_cli.follow import print_output
from scheduler_cli.output import Column, emit, field

RUN_ENDED = ("Success", "Failed", "Stopped", "Aborted")
JOB_COLUMNS = [
    Column("Name", field("name")),
    Column("Type", field("type")),
    Column("Status", lambda j: j.get("status") or (j.get("latest_run") or {}).get("status")),
    Column("Schedule", field("settings.schedule")),
    Column("Error", field("error")),
]
RUN_COLUMNS = [
    Column("Run", field("id")),
    Column("Status", field("status")),
    Column("Start", field("start_time")),
    Column("End", field("end_time")),
    Column("Duration", field("duration")),
    Column("Trigger", field("trigger")),
]


@click.group()
def webjob() -> None:
    """WebJobs: triggered (run on demand or on schedule) and continuous."""


@webjob.command("list")
@read_options
@pass_state
def list_(state: State, output: str | None, query: str | None) -> None:
    """Every WebJob, both types."""
    emit(state.api.get("webjobs"), output_of(state, output), query, JOB_COLUMNS)


@webjob.command("show")
@click.argument("name")
@click.option("--continuous", is_flag=True, help="NAME is a continuous WebJob.")
@read_options
@pass_state
def show(state: State, name: str, continuous: bool, output: str | None, query: str | None) -> None:
    """Show WebJob NAME (triggered unless --continuous)."""
    kind = "continuouswebjobs" if continuous else "triggeredwebjobs"
    emit(state.api.get(f"{kind}/{quote(name)}"), output_of(state, output), query, JOB_COLUMNS)


@webjob.command("run")
@click.argument("name")
@click.option("--args", "arguments", default="", help="Arguments appended to the script's line.")
@click.option("--wait", is_flag=True, help="Print its output until it ends; exit 1 unless Success.")
@pass_state
def run(state: State, name: str, arguments: str, wait: bool) -> None:
    """Run triggered WebJob NAME now."""
    params = {"arguments": arguments} if arguments else None
    response = state.api.send("POST", f"triggeredwebjobs/{quote(name)}/run", params=params)
    location = response.headers.get("Location", "")
    run_id = location.rstrip("/").rsplit("/", 1)[-1]
    if not wait:
        click.echo(f"Run {run_id} of {name} started.")
        return
    _wait_for(state, name, run_id, location)


def _wait_for(state: State, name: str, run_id: str, location: str) -> None:
    found: dict[str, Any] = state.api.get(location)

    def running() -> bool:
        return state.api.get(location).get("status") not in RUN_ENDED

    print_output(state.api, str(found["output_url"]), follow=True, starting=running)
    while found.get("status") not in RUN_ENDED:  # the output ends just before the status
        time.sleep(0.5)
        found = state.api.get(location)
    click.echo(f"Run {run_id} of {name}: {found['status']}", err=True)
    if found["status"] != "Success":
        raise CliError(f"WebJob {name} run {run_id} ended {found['status']}", ExitCode.FAILED)


@webjob.command("history")
@click.argument("name")
@read_options
@pass_state
def history(state: State, name: str, output: str | None, query: str | None) -> None:
    """The last 50 runs of triggered WebJob NAME, newest first."""
    runs = state.api.get(f"triggeredwebjobs/{quote(name)}/history")["runs"]
    emit(runs, output_of(state, output), query, RUN_COLUMNS)


@webjob.command("logs")
@click.argument("name")
@click.argument("run", required=False)
@click.option("--continuous", is_flag=True, help="NAME is a continuous WebJob (its current run).")
@click.option("--follow/--no-follow", default=True, show_default=True)
@pass_state
def logs(state: State, name: str, run: str | None, continuous: bool, follow: bool) -> None:
    """The output of run RUN of WebJob NAME (default: the latest), followed while it runs."""
    if continuous:
        url = state.api.get(f"continuouswebjobs/{quote(name)}").get("log_url")
    elif run is None:
        url = (state.api.get(f"triggeredwebjobs/{quote(name)}").get("latest_run") or {}).get(
            "output_url"
        )
    else:
        url = state.api.get(f"triggeredwebjobs/{quote(name)}/history/{quote(run)}")["output_url"]
    if not url:
        raise CliError(f"WebJob {name} has no run yet", ExitCode.NOT_FOUND)
    print_output(state.api, str(url), follow)


@webjob.command("start")
@click.argument("name")
@pass_state
def start(state: State, name: str) -> None:
    """Start continuous WebJob NAME (kept running until stopped)."""
    state.api.send("POST", f"continuouswebjobs/{quote(name)}/start")
    click.echo(f"Continuous WebJob {name} started.")


@webjob.command("stop")
@click.argument("name")
@pass_state
def stop(state: State, name: str) -> None:
    """Stop continuous WebJob NAME (gracefully, within seconds)."""
    state.api.send("POST", f"continuouswebjobs/{quote(name)}/stop")
    click.echo(f"Continuous WebJob {name} stopped.")
