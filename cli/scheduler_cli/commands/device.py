"""`sched device ...`: the IoT Hub-compatible device registry (signed with the IoT policy)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import click

from scheduler_cli.context import State, output_of, pass_state, read_options
from scheduler_cli.errors import usage_error
from scheduler_cli.output import Column, emit, field

COLUMNS = [
    Column("Device", field("deviceId")),
    Column("Status", field("status")),
    Column("Connection", field("connectionState")),
    Column("Endpoint", field("endpoint.uri")),
    Column("Tags", field("tags")),
]
API_VERSION = {"api-version": "2021-04-12"}


def device_path(device_id: str) -> str:
    return f"devices/{quote(device_id, safe='')}"


def json_option(flag: str, text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as error:
        raise usage_error(f"{flag} is not JSON: {error}") from None


def tags_of(tags: tuple[str, ...]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in tags:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise usage_error(f"--tag {item!r}: use KEY=VALUE")
        found[key] = value
    return found


def query_pages(state: State, sql: str) -> list[Any]:
    """Every page of a registry query (continuation headers, as IoT Hub pages)."""
    items: list[Any] = []
    token: str | None = None
    while True:
        headers = {"x-ms-max-item-count": "100"}
        if token:
            headers["x-ms-continuation"] = token
        response = state.api.send(
            "POST", "devices/query", json={"query": sql}, headers=headers, params=API_VERSION
        )
        items.extend(response.json())
        token = response.headers.get("x-ms-continuation")
        if not token:
            return items


@click.group()
def device() -> None:
    """Devices: create, show, list, query, invoke a method, delete."""


@device.command("create")
@click.argument("device_id")
@click.option("--endpoint", metavar="URI", help="Where the device answers methods (our extension).")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Twin tag (repeatable).")
@read_options
@pass_state
def create(
    state: State,
    device_id: str,
    endpoint: str | None,
    tags: tuple[str, ...],
    output: str | None,
    query: str | None,
) -> None:
    """Create device DEVICE_ID (or update it: its endpoint, its tags)."""
    body: dict[str, Any] = {"deviceId": device_id}
    if endpoint:
        body["endpoint"] = {"uri": endpoint}
    made = state.api.send("PUT", device_path(device_id), json=body, params=API_VERSION, ok=(409,))
    if made.status_code == 409:  # it exists: update it, as `create` of az does not but scripts want
        made = state.api.send(
            "PUT", device_path(device_id), json=body, params=API_VERSION, headers={"If-Match": "*"}
        )
    if tags:
        state.api.send(
            "PATCH",
            f"twins/{quote(device_id, safe='')}",
            json={"tags": tags_of(tags)},
            params=API_VERSION,
        )
    shown = state.api.get(device_path(device_id), **API_VERSION)
    emit(shown, output_of(state, output), query, COLUMNS)


@device.command("show")
@click.argument("device_id")
@click.option("--twin", is_flag=True, help="Show its twin (tags, desired, reported).")
@read_options
@pass_state
def show(state: State, device_id: str, twin: bool, output: str | None, query: str | None) -> None:
    """Show device DEVICE_ID."""
    path = f"twins/{quote(device_id, safe='')}" if twin else device_path(device_id)
    emit(state.api.get(path, **API_VERSION), output_of(state, output), query, COLUMNS)


@device.command("list")
@click.option("--top", type=click.IntRange(1, 1000), default=1000, show_default=True)
@read_options
@pass_state
def list_(state: State, top: int, output: str | None, query: str | None) -> None:
    """List devices."""
    found = state.api.get("devices", top=top, **API_VERSION)
    emit(found, output_of(state, output), query, COLUMNS)


@device.command("query")
@click.argument("sql")
@read_options
@pass_state
def query_(state: State, sql: str, output: str | None, query: str | None) -> None:
    """Run a twin query: "SELECT * FROM devices WHERE tags.site = 'berlin'" (every page)."""
    items = query_pages(state, sql)
    emit(items, output_of(state, output), query, COLUMNS if "devices.jobs" not in sql else None)


@device.command("invoke")
@click.argument("device_id")
@click.argument("method")
@click.option("--payload", help="JSON payload.")
@click.option("--timeout", type=click.IntRange(5, 300), default=30, show_default=True)
@read_options
@pass_state
def invoke(
    state: State,
    device_id: str,
    method: str,
    payload: str | None,
    timeout: int,
    output: str | None,
    query: str | None,
) -> None:
    """Call direct method METHOD on device DEVICE_ID and print its answer."""
    body = {
        "methodName": method,
        "payload": json_option("--payload", payload),
        "responseTimeoutInSeconds": timeout,
    }
    answer = state.api.send(
        "POST",
        f"twins/{quote(device_id, safe='')}/methods",
        json=body,
        params=API_VERSION,
        timeout=timeout + 10,
    ).json()
    emit(answer, output_of(state, output), query)


@device.command("delete")
@click.argument("device_id")
@pass_state
def delete(state: State, device_id: str) -> None:
    """Delete device DEVICE_ID."""
    state.api.send("DELETE", device_path(device_id), params=API_VERSION)
    click.echo(f"Device {device_id} deleted.")
