"""Held attempts' sends go first: other attempts' storage work waits while a send is due.

Attempts due at the same second wake together on the app's one event loop, beside the
previous second's recordings and the next second's claims. Each of those storage calls costs
a millisecond or more of CPU that the loop cannot spend on a send, so a recording that starts
just before a second delays that second's sends. Here a held attempt announces its send (on
the loop's monotonic clock) when it claims, and says when its request is out; storage work
that can wait (a claim, a re-read, a recording: all happen well before their own deadline)
first waits until the sends due within `window` of now are out. Only the sends already
announced at that moment are waited for, so a steady stream of new ones cannot starve it.

Every attempt says its send is out on any outcome (written, failed, cancelled, never sent),
but a send can take long to get out (a target whose connection hangs until the action's
timeout): so a wait is also bounded, `MAX_WAIT_PAST_DUE` after the latest send it waits for
was due. Past that the storage work goes ahead, since holding it back no longer helps that send.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import Callable

log = logging.getLogger(__name__)

WINDOW_SECONDS = 0.05  # sends due this soon (or overdue) go before storage work
MAX_WAIT_PAST_DUE = 2.0  # seconds a wait lasts past its latest send's due time, at most


class SendPriority:
    """The sends announced by held attempts of this process, and who waits for them."""

    def __init__(
        self, window: float = WINDOW_SECONDS, max_wait_past_due: float = MAX_WAIT_PAST_DUE
    ) -> None:
        self._window = window
        self._max_wait_past_due = max_wait_past_due
        self._due: dict[int, float] = {}  # announcement -> loop time of its send
        self._per_second: Counter[int] = Counter()  # sends not out yet, by round(loop time)
        self._numbers = itertools.count()
        self._waiters: dict[int, list[_Waiter]] = {}  # announcement -> who waits for it

    def announce(self, at: float) -> Callable[[], None]:
        """A send is due at loop time `at`; call the result once its request is out (or it
        will not be sent). Calling it again does nothing."""
        number = next(self._numbers)
        self._due[number] = at
        self._per_second[round(at)] += 1

        def out() -> None:
            if self._due.pop(number, None) is not None:
                second = round(at)
                self._per_second[second] -= 1
                if not self._per_second[second]:
                    del self._per_second[second]
                for waiter in self._waiters.pop(number, ()):
                    waiter.one_out()

        return out

    async def after_due_sends(self) -> None:
        """Return once every send due within the window (as announced now) is out, or at
        the latest `max_wait_past_due` after the last of them was due."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        horizon, given_up = now + self._window, now - self._max_wait_past_due
        # A send still not out that long past its due time holds no one any more.
        due = [number for number, at in self._due.items() if given_up < at <= horizon]
        if not due:
            return
        # Woken when the last of them is out, not looked at on every other one's: a second's
        # thousand sends and the recordings waiting for them would cost a million checks.
        woken = loop.create_future()
        waiter = _Waiter(len(due), woken)
        for number in due:
            self._waiters.setdefault(number, []).append(waiter)
        give_up = max(self._due[number] for number in due) + self._max_wait_past_due
        try:
            await asyncio.wait_for(asyncio.shield(woken), max(0.0, give_up - loop.time()))
        except TimeoutError:
            log.warning(
                "Storage work waited %.1f s for a send past its due time; going ahead",
                self._max_wait_past_due,
            )
        finally:
            woken.cancel()  # no-op once woken

    def announced_at(self, at: float) -> int:
        """Sends not out yet that are due at about loop time `at` (the same whole second of
        the loop's clock): how crowded that second is."""
        return self._per_second[round(at)]

    @property
    def pending(self) -> int:
        """Sends announced and not out yet (tests, probes)."""
        return len(self._due)


class _Waiter:
    """Storage work waiting for `remaining` sends to be out."""

    def __init__(self, remaining: int, woken: asyncio.Future[None]) -> None:
        self.remaining = remaining
        self.woken = woken

    def one_out(self) -> None:
        self.remaining -= 1
        if not self.remaining and not self.woken.done():
            self.woken.set_result(None)
