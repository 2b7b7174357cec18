"""The OData query options the list operations take, as Azure Scheduler did: `$top`, `$skip`,
`$skiptoken` (the continuation of a `nextLink`) and a one-clause `$filter`."""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, TypeVar

from fastapi import Query

from shared.errors import InvalidRequest

MAX_PAGE = 100

Top = Annotated[int, Query(alias="$top", ge=1, le=MAX_PAGE)]
Skip = Annotated[int, Query(alias="$skip", ge=0, le=100_000)]
SkipToken = Annotated[str | None, Query(alias="$skiptoken", max_length=300)]
Filter = Annotated[str | None, Query(alias="$filter", max_length=200)]

E = TypeVar("E", bound=Enum)

_FILTER = re.compile(r"^\s*(\w+)\s+eq\s+'?(\w+)'?\s*$", re.IGNORECASE)


def parse_filter(text: str | None, field: str, kind: type[E]) -> E | None:
    """`state eq 'Enabled'` (jobs) or `status eq 'Failed'` (history): the one clause Azure
    Scheduler took. The value is read by `kind` (our enums take any letter case)."""
    if text is None:
        return None
    match = _FILTER.match(text)
    if not match or match.group(1).lower() != field:
        raise InvalidRequest("$filter", f"only \"{field} eq '<value>'\" is supported")
    try:
        return kind(match.group(2))
    except ValueError:
        allowed = ", ".join(str(member.value) for member in kind)
        raise InvalidRequest("$filter", f"{field} must be one of {allowed}") from None
