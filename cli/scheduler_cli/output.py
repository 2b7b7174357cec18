"""Printing what a read returns: `--query` (JMESPath, as az applies it: to the JSON, before
formatting) then `--output table|json|yaml`. Tables are rich tables at the terminal's width:
columns shrink and wrap rather than overflow."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click
import jmespath
import jmespath.exceptions
import yaml
from rich.console import Console
from rich.table import Table

from scheduler_cli.errors import usage_error


@dataclass(frozen=True)
class Column:
    """A table column: its header and how to take its cell from one item."""

    header: str
    cell: Callable[[Any], Any]


def field(path: str) -> Callable[[Any], Any]:
    """A cell read by a JMESPath expression (e.g. `properties.status.nextExecutionTime`)."""
    compiled = jmespath.compile(path)
    return compiled.search


def console() -> Console:
    """A console on the current stdout (Click's test runner swaps it); width from the terminal."""
    return Console(file=sys.stdout, soft_wrap=False, highlight=False)


def apply_query(data: Any, query: str | None) -> Any:
    if not query:
        return data
    try:
        return jmespath.search(query, data)
    except jmespath.exceptions.JMESPathError as error:
        raise usage_error(f"--query {query!r} is not valid JMESPath: {error}") from None


def emit(
    data: Any,
    output: str,
    query: str | None = None,
    columns: Sequence[Column] | None = None,
) -> None:
    """The columns describe the unqueried shape; a queried result gets a generic table."""
    shaped = apply_query(data, query)
    if output == "json":
        click.echo(json.dumps(shaped, indent=2, ensure_ascii=False))
    elif output == "yaml":
        click.echo(yaml.safe_dump(shaped, sort_keys=False, allow_unicode=True), nl=False)
    else:
        print_table(shaped, None if query else columns)


def print_table(data: Any, columns: Sequence[Column] | None) -> None:
    items = data if isinstance(data, list) else [data]
    if columns is None:
        columns = _generic_columns(items)
    if columns is None:  # scalars, or a list of them
        for item in items:
            click.echo(_text(item))
        return
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for column in columns:
        table.add_column(column.header, overflow="fold")
    for item in items:
        table.add_row(*(_text(column.cell(item)) for column in columns))
    console().print(table)


def _generic_columns(items: list[Any]) -> list[Column] | None:
    """One column per key of the items (objects), in order of appearance."""
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    keys: list[str] = []
    for item in items:
        keys.extend(key for key in item if key not in keys)
    return [Column(key, _getter(key)) for key in keys]


def _getter(key: str) -> Callable[[Any], Any]:
    return lambda item: item.get(key)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def echo_line(item: Any, output: str, line: Callable[[Any], str]) -> None:
    """One item of a followed stream: JSON lines for json, a YAML document for yaml, else
    the human line."""
    if output == "json":
        click.echo(json.dumps(item, ensure_ascii=False))
    elif output == "yaml":
        click.echo("---\n" + yaml.safe_dump(item, sort_keys=False, allow_unicode=True), nl=False)
    else:
        click.echo(line(item))
    sys.stdout.flush()
