"""The continuous WebJobs' settings: defaults (WebJobs' 60 s restart delay, a slice under
the Consumption plan's functionTimeout) and a bad value naming the setting."""

from __future__ import annotations

import pytest

from shared.errors import ConfigError
from shared.kinds.webjob import WEBJOB


def test_defaults_fit_the_consumption_plan() -> None:
    options = WEBJOB.configure({})
    assert options.continuous_slice_seconds == 240
    assert options.continuous_restart_delay_seconds == 60
    assert options.continuous_lease_seconds == 30


def test_values_are_read() -> None:
    options = WEBJOB.configure(
        {
            "SCHEDULER_CONTINUOUS_SLICE_SECONDS": "30",
            "SCHEDULER_CONTINUOUS_RESTART_DELAY_SECONDS": "0",
            "SCHEDULER_CONTINUOUS_LEASE_SECONDS": "5",
        }
    )
    assert (options.continuous_slice_seconds, options.continuous_restart_delay_seconds) == (30, 0)
    assert options.continuous_lease_seconds == 5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SCHEDULER_CONTINUOUS_SLICE_SECONDS", "5"),
        ("SCHEDULER_CONTINUOUS_SLICE_SECONDS", "ten"),
        ("SCHEDULER_CONTINUOUS_RESTART_DELAY_SECONDS", "-1"),
        ("SCHEDULER_CONTINUOUS_RESTART_DELAY_SECONDS", "3601"),
        ("SCHEDULER_CONTINUOUS_LEASE_SECONDS", "4"),  # a few missed renewals must not lose it
        ("SCHEDULER_CONTINUOUS_LEASE_SECONDS", "2.5"),
    ],
)
def test_a_bad_value_names_the_setting(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        WEBJOB.configure({name: value})
    assert name in str(raised.value)
