"""Settings from the environment: defaults, and a clear error for a table prefix Azure refuses."""

from __future__ import annotations

import pytest

from shared.settings import Settings

CONNECTION = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}


def test_defaults_name_the_tables() -> None:
    settings = Settings.from_env(CONNECTION)
    assert (settings.collections_table, settings.due_table) == (
        "SchedulerCollections",
        "SchedulerDue",
    )


@pytest.mark.parametrize("prefix", ["A", "Sched2", "x" * 30])
def test_a_valid_prefix_is_taken(prefix: str) -> None:
    assert (
        Settings.from_env({**CONNECTION, "SCHEDULER_TABLE_PREFIX": prefix}).table_prefix == prefix
    )


@pytest.mark.parametrize("prefix", ["", "2sched", "sched-uler", "x" * 31])
def test_a_prefix_azure_would_refuse_is_named_at_start(prefix: str) -> None:
    with pytest.raises(RuntimeError, match="SCHEDULER_TABLE_PREFIX"):
        Settings.from_env({**CONNECTION, "SCHEDULER_TABLE_PREFIX": prefix})
