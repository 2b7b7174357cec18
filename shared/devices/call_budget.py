"""The process's budget of device calls in flight, shared by every broadcast chunk it runs.

Why one budget per process and not per chunk: the host runs up to 64 device-work messages at
once, so a per-chunk limit lets the calls in flight grow with the messages, past what the
process's HTTP pool serves (its bookkeeping grows with the requests waiting in it, and calls
then time out waiting for a connection, not for the device). With one budget the calls that
reach the pool never outnumber its connections (`DeviceCaller` sizes its pools to this).

Slots are granted in arrival order, at least `least` at a time, so a chunk claims its devices
in sub-chunks (one transaction each) as slots free up instead of one device at a time, and a
chunk that waits for a few slots is not starved by others taking them one by one. Why half the
budget: claims of 8 made a 2,000-device broadcast cost 0.38 transactions and 3.7 ms of this
process's CPU per device, claims of 16 0.23 and 2.8 ms (budgets of 48 and 64 cost more CPU).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

DEVICE_CALLS_PER_PROCESS = 32  # device calls one process runs at once, across all chunks
LEAST_SLOTS = 16  # a chunk waits for this many free slots (or what it has left) before claiming


@dataclass
class _Waiter:
    least: int
    most: int
    granted: asyncio.Future[int]


class CallBudget:
    """Up to `size` slots, granted first come, first served; one per event loop (a budget's
    futures belong to the loop that made them, as a test suite runs several)."""

    def __init__(self, size: int = DEVICE_CALLS_PER_PROCESS) -> None:
        if size < 1:
            raise ValueError("a call budget holds at least one slot")
        self.size = size
        self._free = size
        self._waiters: deque[_Waiter] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def free(self) -> int:
        return self._free

    async def take(self, most: int, least: int = LEAST_SLOTS) -> int:
        """Wait until at least min(least, most) slots are free (after those who waited
        before), then take as many as are free, up to `most`; returns how many."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop: nothing of the old one is in flight
            self._loop, self._free, self._waiters = loop, self.size, deque()
        most = max(1, min(most, self.size))
        least = max(1, min(least, most))
        if not self._waiters and self._free >= least:
            return self._grab(most)
        waiter = _Waiter(least, most, loop.create_future())
        self._waiters.append(waiter)
        try:
            return await waiter.granted
        except asyncio.CancelledError:
            if waiter.granted.done() and not waiter.granted.cancelled():
                self.give_back(waiter.granted.result())  # granted as it was cancelled
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
                self._grant()
            raise

    def give_back(self, count: int = 1) -> None:
        self._free = min(self.size, self._free + count)
        self._grant()

    def _grab(self, most: int) -> int:
        taken = min(most, self._free)
        self._free -= taken
        return taken

    def _grant(self) -> None:
        while self._waiters and self._free >= self._waiters[0].least:
            waiter = self._waiters.popleft()
            if not waiter.granted.done():
                waiter.granted.set_result(self._grab(waiter.most))


__all__ = ["DEVICE_CALLS_PER_PROCESS", "LEAST_SLOTS", "CallBudget"]
