"""Building blocks shared by every API model: camelCase JSON, case-insensitive enums."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Strict, ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError


class CaseInsensitiveEnum(StrEnum):
    """An enum whose values are the spec's PascalCase names, matched case-insensitively on input.

    Azure Scheduler's docs and wire examples use `http`, `week`, `monday`; the swagger uses `Http`,
    `Week`, `Monday`. We accept both and always answer with the swagger's spelling
    (docs/azure-scheduler.md §1).
    """

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if isinstance(value, str):
            folded = value.casefold()
            for member in cls:
                if member.value.casefold() == folded:
                    return member
        return None


class ApiModel(BaseModel):
    """Base of the JSON models: camelCase on the wire, snake_case in Python, unknown fields
    refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
        # Input can hold secrets (passwords, SAS tokens): errors must never echo it.
        hide_input_in_errors=True,
    )

    def to_json_dict(self) -> dict[str, Any]:
        """The model as the API returns it: camelCase keys, enum values, no nulls."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


CALENDAR_RANGE = "0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z"


def utc_instant(value: datetime, field: str) -> datetime:
    """An aware date-time as UTC at second precision; ValueError if UTC cannot hold it.

    `0001-01-01T00:00:00+14:00` is in year 0 in UTC: Python raises OverflowError, which
    pydantic would not turn into a 400.
    """
    try:
        return value.astimezone(UTC).replace(microsecond=0)
    except OverflowError:
        raise ValueError(
            f"{field} must lie within {CALENDAR_RANGE}, got {value.isoformat()}"
        ) from None


def field_error(field: str, value: object, reason: str) -> ValidationError:
    """A validation error located at `field` (its JSON name), for a rule that a model validator
    checks across fields, so the 400 still names the offending field."""
    error = PydanticCustomError("value_error", "Value error, {reason}", {"reason": reason})
    return ValidationError.from_exception_data(
        "value_error", [InitErrorDetails(type=error, loc=(field,), input=value)]
    )


def _iso_text(value: object) -> object:
    """A date-time is an ISO-8601 string: pydantic would read a number as a Unix time."""
    if isinstance(value, int | float):
        raise ValueError("must be an ISO-8601 date-time string, not a number")
    return value


# JSON numbers only: pydantic's lax mode would read `true` as 1 and "5" as 5.
Integer = Annotated[int, Strict()]
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_text)]
