"""`sched collection ...`: job collections (Azure Scheduler's JobCollections operations)."""

from __future__ import annotations

from typing import Any

import click

from scheduler_cli.context import State, output_of, pass_state, read_options
from scheduler_cli.output import Column, emit, field

COLUMNS = [
    Column("Name", field("name")),
    Column("State", field("properties.state")),
    Column("SKU", field("properties.sku.name")),
    Column("Max jobs", field("properties.quota.maxJobCount")),
]
SKUS = ("Free", "Standard", "P10Premium", "P20Premium")


@click.group()
def collection() -> None:
    """Job collections: create, show, list, enable, disable, delete."""


@collection.command("create")
@click.argument("name")
@click.option("--sku", type=click.Choice(SKUS, case_sensitive=False), help="Limits by SKU.")
@click.option("--max-job-count", type=int, help="properties.quota.maxJobCount")
@click.option("--location", help="location (kept as given)")
@read_options
@pass_state
def create(
    state: State,
    name: str,
    sku: str | None,
    max_job_count: int | None,
    location: str | None,
    output: str | None,
    query: str | None,
) -> None:
    """Create (or replace) collection NAME."""
    properties: dict[str, Any] = {}
    if sku:
        properties["sku"] = {"name": sku}
    if max_job_count is not None:
        properties["quota"] = {"maxJobCount": max_job_count}
    body: dict[str, Any] = {"properties": properties}
    if location:
        body["location"] = location
    made = state.api.send("PUT", f"jobCollections/{name}", json=body).json()
    emit(made, output_of(state, output), query, COLUMNS)


@collection.command("show")
@click.argument("name")
@read_options
@pass_state
def show(state: State, name: str, output: str | None, query: str | None) -> None:
    """Show collection NAME."""
    emit(state.api.get(f"jobCollections/{name}"), output_of(state, output), query, COLUMNS)


@collection.command("list")
@read_options
@pass_state
def list_(state: State, output: str | None, query: str | None) -> None:
    """List the collections."""
    items = list(state.api.pages("jobCollections"))
    emit(items, output_of(state, output), query, COLUMNS)


@collection.command("enable")
@click.argument("name")
@pass_state
def enable(state: State, name: str) -> None:
    """Enable collection NAME and all its jobs."""
    state.api.send("POST", f"jobCollections/{name}/enable")
    click.echo(f"Collection {name} enabled.")


@collection.command("disable")
@click.argument("name")
@pass_state
def disable(state: State, name: str) -> None:
    """Disable collection NAME: none of its jobs fires."""
    state.api.send("POST", f"jobCollections/{name}/disable")
    click.echo(f"Collection {name} disabled.")


@collection.command("delete")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def delete(state: State, name: str, yes: bool) -> None:
    """Delete collection NAME with all its jobs and history."""
    if not yes:
        click.confirm(f"Delete collection {name} with all its jobs and history?", abort=True)
    state.api.send("DELETE", f"jobCollections/{name}")
    click.echo(f"Collection {name} deleted.")
