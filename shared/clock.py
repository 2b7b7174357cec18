"""Time as a dependency: domain code asks a Clock, so tests can control "now"."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to (tests)."""

    def __init__(self, at: datetime) -> None:
        self._at = at

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at

    def advance(self, delta: timedelta) -> None:
        self._at += delta


async def sleep_until(deadline: float) -> None:
    """Wait until the running loop's monotonic clock reads `deadline` (at once if it has).

    A timer at a fixed instant, not a delay: work done since the deadline was computed does
    not push the wake-up later, and nothing spins while waiting."""
    loop = asyncio.get_running_loop()
    if deadline <= loop.time():
        return
    woken = loop.create_future()
    timer = loop.call_at(deadline, _wake, woken)
    try:
        await woken
    finally:
        timer.cancel()


def _wake(woken: asyncio.Future[None]) -> None:
    if not woken.done():
        woken.set_result(None)
