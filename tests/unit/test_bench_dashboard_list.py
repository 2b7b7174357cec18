"""(f)'s own arithmetic: how the jobs are dealt over collections and states, and the verdicts."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from bench.dashboard_list import DISABLED_EVERY, SEARCH, plan_jobs
from bench.report import dashboard_within, render
from shared.model.job import JobState

FIRST = datetime(2031, 1, 1, tzinfo=UTC)


def test_jobs_are_dealt_evenly_over_the_collections_with_a_share_disabled():
    plans = plan_jobs(10_000, 20, FIRST)
    assert len({plan.name for plan in plans}) == 10_000
    assert set(Counter(plan.collection for plan in plans).values()) == {500}
    disabled = sum(plan.state is JobState.DISABLED for plan in plans)
    assert disabled == -(-10_000 // DISABLED_EVERY)
    assert 50 <= sum(SEARCH in plan.name for plan in plans) <= 300  # the search finds a page


def test_a_time_passes_only_within_its_factor_of_a_floor_that_was_measured():
    assert dashboard_within(1.5, 1.5) and not dashboard_within(1.51, 1.5)
    assert dashboard_within(0.05, 0.1) and not dashboard_within(0.2, 0.1)
    assert not dashboard_within(None, 1.5)


def test_the_report_shows_f_with_its_verdicts():
    timed = {
        f"{name}_{suffix}": value
        for name in ("cold", "warm", "search", "filter_sort")
        for suffix, value in (("p50_s", 0.5), ("ratio", 1.0), ("s", [0.5]))
    }
    dashboard = {
        "jobs": 10_000,
        "collections": 20,
        "seed_s": 3.0,
        "requests": 10,
        "floor_p50_s": 0.5,
        "floor_rows": 10_000,
        "every_column_p50_s": 1.0,
        "total_listed": 10_000,
        "page_rows": 25,
        "payload_bytes": 16_000,
        **timed,
    }
    results = {
        "azurite_version": "3",
        "cores": 2,
        "finished_at": "now",
        "order": ["f"],
        "run_cpu": {"other_cpu": 0.0, "wall": 1.0},
        "total_s": 1.0,
        "dashboard": dashboard,
    }
    text = render(results)
    assert "(f) cold list / floor       1.00 <= 1.5" in text
    assert "(f) warm list / floor       1.000 <= 0.25" in text
    assert "25 rows of 10,000, 16,000 bytes" in text
