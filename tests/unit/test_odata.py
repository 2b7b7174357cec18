"""`$filter` as Azure Scheduler took it: one `eq` clause on the listed field, any letter case."""

from __future__ import annotations

import pytest

from shared.api.odata import parse_filter
from shared.errors import InvalidRequest
from shared.model.job import HistoryStatus, JobState


def test_no_filter_is_none() -> None:
    assert parse_filter(None, "state", JobState) is None


@pytest.mark.parametrize(
    "text",
    ["state eq 'Enabled'", "State EQ 'enabled'", "  state eq Enabled ", "state eq 'ENABLED'"],
)
def test_one_eq_clause_on_the_field_reads_the_value(text: str) -> None:
    assert parse_filter(text, "state", JobState) is JobState.ENABLED


def test_history_filters_on_status() -> None:
    assert parse_filter("status eq 'failed'", "status", HistoryStatus) is HistoryStatus.FAILED


@pytest.mark.parametrize(
    "text",
    [
        "status eq 'Enabled'",  # another field
        "state ne 'Enabled'",
        "state eq 'Enabled' and state eq 'Disabled'",
        "",
    ],
)
def test_anything_else_is_refused_saying_what_is_supported(text: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_filter(text, "state", JobState)
    assert caught.value.field == "$filter"
    assert caught.value.reason == "only \"state eq '<value>'\" is supported"


def test_an_unknown_value_is_refused_listing_the_allowed_ones() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_filter("state eq 'Paused'", "state", JobState)
    allowed = ", ".join(member.value for member in JobState)
    assert (caught.value.field, caught.value.reason) == (
        "$filter",
        f"state must be one of {allowed}",
    )
