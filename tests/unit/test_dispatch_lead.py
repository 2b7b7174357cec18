"""The adaptive lead: a heavy minute is dispatched early enough for its last message to be on
the queue before its second; an empty or light future changes nothing (shared/engine/lead.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.engine.lead import MAX_LEAD, dispatch_horizon, lead_for
from shared.engine.records import DueEntry
from shared.storage.dispatch_queue import DispatchSlice, slices_of
from shared.storage.keys import due_key, due_minute

NOW = datetime(2030, 5, 6, 8, 57, 0, tzinfo=UTC)
LOOKAHEAD = timedelta(seconds=120)
NINE = datetime(2030, 5, 6, 9, 0, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def test_without_rows_ahead_the_horizon_is_the_lookahead() -> None:
    assert dispatch_horizon(NOW, LOOKAHEAD, {}) == NOW + LOOKAHEAD


def test_a_light_minute_beyond_the_lookahead_waits_for_its_pass() -> None:
    assert dispatch_horizon(NOW, LOOKAHEAD, {NINE: 10}, rate=100.0) == NOW + LOOKAHEAD


def test_a_heavy_minute_whose_lead_reaches_this_pass_is_taken_whole() -> None:
    # 09:00 starts 180 s from now, 60 s beyond the lookahead; 10,000 rows at 100/s need 110 s.
    horizon = dispatch_horizon(NOW, LOOKAHEAD, {NINE: 10_000}, rate=100.0)
    assert horizon == NINE + MINUTE


def test_rows_before_a_minute_add_to_its_lead() -> None:
    # 4,900 rows alone need 59 s (not enough to reach back 60 s); with 1,000 before, 69 s.
    alone = {NINE: 4_900}
    assert dispatch_horizon(NOW, LOOKAHEAD, alone, rate=100.0) == NOW + LOOKAHEAD
    behind = {NOW + MINUTE: 1_000, NINE: 4_900}
    assert dispatch_horizon(NOW, LOOKAHEAD, behind, rate=100.0) == NINE + MINUTE


def test_the_lead_is_bounded() -> None:
    far = NOW + timedelta(minutes=30)
    assert dispatch_horizon(NOW, LOOKAHEAD, {far: 10**9}) == NOW + LOOKAHEAD
    near_limit = NOW + MAX_LEAD - timedelta(seconds=30)
    assert dispatch_horizon(NOW, LOOKAHEAD, {near_limit: 10**9}) == NOW + MAX_LEAD


def test_the_lead_is_rows_over_rate_plus_a_margin() -> None:
    assert lead_for(1_000, 100.0, timedelta(seconds=10)) == timedelta(seconds=20)


def test_a_due_key_names_its_minute() -> None:
    entry = DueEntry(NINE + timedelta(seconds=59, microseconds=5), "c", "job|with|bars")
    assert due_minute(due_key(entry)) == NINE


def test_slices_cover_each_collection_up_to_the_horizon_without_gaps() -> None:
    horizon = NINE + MINUTE
    entries = [DueEntry(NINE, "a", f"j{i:03d}") for i in range(250)]
    entries += [DueEntry(NINE, "b", "only")]
    parts = slices_of(entries, horizon, size=100)
    by_collection: dict[str, list[DispatchSlice]] = {}
    for part in parts:
        assert part.horizon == horizon
        by_collection.setdefault(part.collection, []).append(part)
    a = sorted(by_collection["a"], key=lambda p: p.low)
    assert len(a) == 3 and len(by_collection["b"]) == 1
    assert a[0].low == "due|" and a[-1].high.startswith("due|20300506T090100Z")
    assert all(left.high == right.low for left, right in zip(a, a[1:], strict=False))
    keys = sorted(due_key(e) for e in entries if e.collection == "a")
    counts = [sum(p.low <= k < p.high for k in keys) for p in a]
    assert counts == [100, 100, 50]


def test_a_slice_survives_its_message() -> None:
    part = DispatchSlice("sub|rg|c", "due|", "due|20300506T090100Z}", NINE + MINUTE)
    assert DispatchSlice.from_json(part.to_json()) == part
