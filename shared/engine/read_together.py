"""Point reads asked for at about the same moment, made together as one batched read.

A crowded second's attempts each read their run and their job when they surface (32 at a
time, as the host hands them over) and read their job again just before the second. As point
reads that is a request each: about a millisecond of our CPU and as much of storage's, a
thousand at once. Here a read waits `WINDOW_SECONDS` for others, and all that came in that
window are served by the store's batched read (14 rows of a partition per query). A lone read
pays the window once: it is taken a second or more before its attempt is due.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")

WINDOW_SECONDS = 0.002


class ReadTogether(Generic[Key, Value]):
    """`get(key)` answered by `read_many(keys)` for every key asked for within the window;
    a key the batched read does not return is None (no such row)."""

    def __init__(
        self,
        read_many: Callable[[Iterable[Key]], Awaitable[dict[Key, Value]]],
        window: float = WINDOW_SECONDS,
    ) -> None:
        self._read_many = read_many
        self._window = window
        self._waiting: dict[Key, list[asyncio.Future[Value | None]]] = {}
        self._reads: set[asyncio.Task[None]] = set()

    async def get(self, key: Key) -> Value | None:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Value | None] = loop.create_future()
        if not self._waiting:
            loop.call_later(self._window, self._start_read)
        self._waiting.setdefault(key, []).append(answer)
        return await answer

    def _start_read(self) -> None:
        waiting, self._waiting = self._waiting, {}
        read = asyncio.ensure_future(self._read(waiting))
        self._reads.add(read)  # a task nobody holds may be collected while it runs
        read.add_done_callback(self._reads.discard)

    async def _read(self, waiting: dict[Key, list[asyncio.Future[Value | None]]]) -> None:
        try:
            found = await self._read_many(list(waiting))
        except Exception as error:  # every reader gets the storage fault
            for answers in waiting.values():
                for answer in answers:
                    if not answer.done():
                        answer.set_exception(error)
            return
        except BaseException:  # cancelled (the app stopping): so are the readers
            for answers in waiting.values():
                for answer in answers:
                    answer.cancel()
            raise
        for key, answers in waiting.items():
            for answer in answers:
                if not answer.done():  # its reader was cancelled meanwhile
                    answer.set_result(found.get(key))


__all__ = ["WINDOW_SECONDS", "ReadTogether"]
