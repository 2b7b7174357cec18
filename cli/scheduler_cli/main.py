"""`sched`: the root group, its connection options, and the noun groups under it."""

from __future__ import annotations

from typing import Any

import click

from scheduler_cli import __version__
from scheduler_cli.commands.broadcast import broadcast
from scheduler_cli.commands.collection import collection
from scheduler_cli.commands.device import device
from scheduler_cli.commands.history import history, logs
from scheduler_cli.commands.job import job
from scheduler_cli.commands.webjob import webjob
from scheduler_cli.context import State
from scheduler_cli.errors import CliError

EPILOG = """\b
Configuration: flags, then SCHED_URL, SCHED_KEY, SCHED_IOT_CONNECTION_STRING,
SCHED_COLLECTION, SCHED_OUTPUT, then the profile (--profile or SCHED_PROFILE) of
~/.config/sched/config.yaml (or SCHED_CONFIG).
\b
Exit codes: 0 ok, 1 the operation failed (a broadcast or run that failed), 2 bad usage,
3 not found (404), 4 refused by the API (other 4xx), 5 unauthorized (401/403),
6 app unreachable, 7 server error (5xx).
\b
Shell completion: eval "$(_SCHED_COMPLETE=bash_source sched)" (zsh_source, fish_source).
"""


class SchedGroup(click.Group):
    """Turns a `CliError` from any command into `Error: ...` on stderr and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as error:
            click.echo(f"Error: {error.message}", err=True)
            ctx.exit(int(error.code))


@click.group(
    cls=SchedGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.option("--url", metavar="URL", help="The app's API base, e.g. http://localhost:7071/api.")
@click.option("--key", metavar="KEY", help="The function key (x-functions-key).")
@click.option(
    "--iot-connection-string",
    metavar="TEXT",
    help="IoT Hub-style connection string for devices and broadcasts.",
)
@click.option("--profile", "-p", metavar="NAME", help="A profile of the profile file.")
@click.version_option(__version__, prog_name="sched")
@click.pass_context
def cli(
    ctx: click.Context,
    url: str | None,
    key: str | None,
    iot_connection_string: str | None,
    profile: str | None,
) -> None:
    """Manage the job scheduler's jobs, history, devices, broadcasts and WebJobs."""
    state = State(
        flags={"url": url, "key": key, "iot_connection_string": iot_connection_string},
        profile=profile,
    )
    ctx.obj = state
    ctx.call_on_close(state.close)


cli.add_command(collection)
cli.add_command(job)
cli.add_command(history)
cli.add_command(logs)
cli.add_command(device)
cli.add_command(broadcast)
cli.add_command(webjob)


def main() -> None:
    cli(prog_name="sched")
