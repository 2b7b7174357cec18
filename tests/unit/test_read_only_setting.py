"""SCHEDULER_READ_ONLY: parsed at start-up; a typo stops the start instead of leaving the app
writable."""

from __future__ import annotations

import pytest

from shared.config import Settings
from shared.errors import ConfigError

STORAGE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}


@pytest.mark.parametrize(
    ("value", "expected"), [(None, False), ("", False), ("false", False), ("TRUE", True)]
)
def test_read_only_is_true_or_false(value, expected):
    env = STORAGE if value is None else {**STORAGE, "SCHEDULER_READ_ONLY": value}
    assert Settings.from_env(env).read_only is expected


def test_a_typo_stops_the_start():
    with pytest.raises(ConfigError, match="SCHEDULER_READ_ONLY"):
        Settings.from_env({**STORAGE, "SCHEDULER_READ_ONLY": "yes"})
