"""What every command gets from the root group: the configuration and one API client; and the
`--output`/`--query` options of every read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from scheduler_cli.client import Api
from scheduler_cli.config import OUTPUT_FORMATS, Config, load_config

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class State:
    flags: dict[str, str | None]
    profile: str | None
    _config: Config | None = None
    _api: Api | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.flags, self.profile)
        return self._config

    @property
    def api(self) -> Api:
        if self._api is None:
            self._api = Api(self.config)
        return self._api

    def close(self) -> None:
        if self._api is not None:
            self._api.close()


pass_state = click.make_pass_decorator(State)


def read_options(function: F) -> F:
    """`-o/--output` and `--query` (JMESPath), as az has them on every read."""
    function = click.option(
        "--query",
        metavar="JMESPATH",
        help='JMESPath applied to the JSON before formatting, e.g. "[].name".',
    )(function)
    return click.option(
        "-o",
        "--output",
        type=click.Choice(OUTPUT_FORMATS),
        help="Output format (default: table, or SCHED_OUTPUT / the profile's output).",
    )(function)


def output_of(state: State, given: str | None) -> str:
    return given or state.config.output


def job_ref(state: State, name: str, collection: str | None) -> tuple[str, str]:
    """`collection/job`, or `job` with -c/--collection (or SCHED_COLLECTION, the profile's)."""
    if "/" in name:
        left, _, right = name.partition("/")
        if collection and collection != left:
            raise click.UsageError(f"{name!r} names collection {left!r} but -c says {collection!r}")
        return left, right
    chosen = collection or state.config.collection
    if not chosen:
        raise click.UsageError(
            f"which collection holds job {name!r}? write COLLECTION/{name} or give -c COLLECTION "
            "(or SCHED_COLLECTION, or the profile's collection)"
        )
    return chosen, name


def collection_option(function: F) -> F:
    return click.option(
        "-c", "--collection", help="The job's collection, if NAME is not COLLECTION/JOB."
    )(function)


def job_path(collection: str, job: str) -> str:
    return f"jobCollections/{collection}/jobs/{job}"
