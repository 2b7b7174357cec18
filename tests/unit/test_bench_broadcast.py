"""(d)'s own arithmetic: the simulator's failure and slow shares, and the report's verdicts."""

from __future__ import annotations

from collections import Counter

from bench.broadcast import DeviceSimulator, device_ids
from bench.report import rollout_within


def test_the_simulator_fails_and_slows_the_configured_share_of_devices_every_run():
    simulator = DeviceSimulator(fail_percent=5, slow_percent=5)
    shares = Counter(simulator.behaviour(d) for d in device_ids("main", 10_000))
    assert 400 <= shares["fail"] <= 600 and 400 <= shares["slow"] <= 600
    assert simulator.behaviour("main-000001") == DeviceSimulator().behaviour("main-000001")


def test_the_rollout_passes_only_within_five_percent_of_the_limit_and_when_completed():
    def results(rate: float | None, status: str = "completed") -> dict[str, object]:
        return {"paced_limit": 600, "paced": {"achieved_per_minute": rate, "status": status}}

    assert rollout_within(results(599))
    assert rollout_within(results(629)) and not rollout_within(results(631))
    assert not rollout_within(results(569))
    assert not rollout_within(results(None))
    assert not rollout_within(results(600, status="running"))
