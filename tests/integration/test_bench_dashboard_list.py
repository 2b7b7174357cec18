"""Bench part (f) at a small size on the session's Azurite: it seeds, lists through the API and
reads the floor, and what it reports adds up (the full size runs in `make bench` only)."""

from __future__ import annotations

import pytest

from bench.dashboard_list import REQUESTS, measure_dashboard_list

pytestmark = pytest.mark.integration


async def test_part_f_lists_every_seeded_job_and_times_each_page_against_the_floor(
    storage_connection: str,
):
    results = await measure_dashboard_list(storage_connection, jobs=120, collections=4)

    assert results["collections"] == 4
    assert results["floor_rows"] == results["total_listed"] == 120
    assert results["page_rows"] == 25
    assert 0 < results["payload_bytes"] < 25_000  # one page, not the 120 jobs
    for name in ("floor", "cold", "warm", "search", "filter_sort"):
        assert len(results[f"{name}_s"]) == REQUESTS
        assert results[f"{name}_p50_s"] > 0
    assert results["cold_ratio"] == results["cold_p50_s"] / results["floor_p50_s"]
