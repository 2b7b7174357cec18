"""Reading a job body's JSON before validation: fields may be spelled camelCase (the API's) or
snake_case (also accepted), so code that looks into raw JSON asks here which spelling is used."""

from __future__ import annotations

from typing import Any

from pydantic.alias_generators import to_snake


def field_key(data: dict[str, Any], camel: str) -> str:
    """The spelling `data` uses for a field: camelCase, or snake_case when only that is there."""
    snake = to_snake(camel)
    return snake if snake in data and camel not in data else camel


def field_get(data: dict[str, Any], camel: str) -> Any:
    """The field's value under either spelling, or None."""
    return data.get(field_key(data, camel))


__all__ = ["field_get", "field_key"]
