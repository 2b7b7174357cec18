"""How far ahead a timer pass dispatches: the lookahead, stretched for heavy minutes.

A pass dispatches its rows in due order, at some rate. A minute with 10,000 due rows takes
that many rows' worth of time, so a pass that starts it `lookahead` before its first second
would still be sending its last messages after that second. Each minute therefore needs a
*lead*: the time to dispatch every row due from now to the end of that minute (they all go
before its last row), plus a margin. A minute is dispatched in this pass when the pass that
would otherwise take it, `lookahead` before its start, would be later than its start minus its
lead: `start - lead <= now + lookahead`. With no rows that is today's rule (`start <= now +
lookahead`). The horizon never goes beyond `MAX_LEAD` (messages can be hidden for 7 days, but
reading further ahead every pass costs, and no burst should need a quarter of an hour).

The rate is a conservative constant, not measured: a pass that dispatches through the dispatch
queue runs on every instance at once, and one slow pass must not shrink the lead of the next.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from shared.storage.queue import EARLY_ARRIVAL_SECONDS, MAX_EARLY_SECONDS

MINUTE = timedelta(minutes=1)
# Rows one pass dispatches per second, at worst: one pass in the app on a busy 2-core machine
# dispatched about 160 per second (issue 12); bench (b) measures about 600 in-process.
DISPATCH_RATE = 100.0
# Added to every lead: the pass's own start-up and the messages' rounding to whole seconds.
LEAD_MARGIN = timedelta(seconds=10)
MAX_LEAD = timedelta(minutes=15)
# Attempts one instance's executors receive, read and claim per second, at worst (about 3 ms
# of CPU each on an idle core, more beside a busy storage emulator).
CLAIM_RATE = 100.0


def lead_for(rows: int, rate: float = DISPATCH_RATE, margin: timedelta = LEAD_MARGIN) -> timedelta:
    """The time it takes to dispatch `rows` rows, plus the margin."""
    return timedelta(seconds=rows / rate) + margin


def dispatch_horizon(
    now: datetime,
    lookahead: timedelta,
    due_per_minute: Mapping[datetime, int],
    *,
    rate: float = DISPATCH_RATE,
    margin: timedelta = LEAD_MARGIN,
    max_lead: timedelta = MAX_LEAD,
) -> datetime:
    """The instant up to which this pass dispatches: `now + lookahead`, or the end of the
    latest minute whose lead reaches into this pass (at most `now + max_lead`).

    `due_per_minute` counts the rows not yet dispatched by the start of the minute they are due
    in (rows already past due count in any minute at or before now)."""
    base = now + lookahead
    limit = now + max(max_lead, lookahead)
    horizon = base
    rows = 0
    for start in sorted(due_per_minute):
        if start >= limit:
            break
        rows += due_per_minute[start]
        end = start + MINUTE
        if end > horizon and start - lead_for(rows, rate, margin) <= base:
            horizon = min(end, limit)
    return horizon


def busiest_second(due_times: Iterable[datetime]) -> int:
    """How many of these occurrences share the most crowded second."""
    counts = Counter(due_times)
    return max(counts.values(), default=0)


def early_arrival(crowd: int, rate: float = CLAIM_RATE) -> int:
    """How many seconds before its second a message surfaces when `crowd` occurrences share
    that second: long enough for the executors to claim them all and hold them, so that at
    the second only the sends are left (a lone occurrence: EARLY_ARRIVAL_SECONDS)."""
    return min(MAX_EARLY_SECONDS, EARLY_ARRIVAL_SECONDS + int(crowd / rate))


__all__ = [
    "CLAIM_RATE",
    "DISPATCH_RATE",
    "LEAD_MARGIN",
    "MAX_LEAD",
    "busiest_second",
    "dispatch_horizon",
    "early_arrival",
    "lead_for",
]
