"""The dispatch queue (`SCHEDULER_DISPATCH_QUEUE`): slices of a big timer pass's due rows, so that
every instance dispatches them, not only the one the timer runs on.

A slice is a key range of one collection's due rows (`low` <= RowKey < `high`) and the pass's
horizon, not the rows themselves: whoever takes the message reads the range again and
dispatches what is still there, with the dispatcher's ETag-checked steps. So a message
delivered twice, or a slice whose rows another dispatcher took meanwhile, dispatches nothing
twice; and a lost message loses nothing, since its rows stay in the index until dispatched and
the next timer pass finds them. The slices of one pass cover the collection's key space from
`due|` to the horizon without a gap, so a row written between the scan and the slice's read is
dispatched too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from azure.storage.queue.aio import QueueClient

from shared.engine.records import DueEntry
from shared.storage.keys import DUE_PREFIX, due_key, up_to
from shared.storage.queue import create_if_missing, host_queue_client
from shared.timefmt import from_iso, to_iso

# Rows per slice: one dispatcher slice (shared/engine/dispatcher.py), a few transactions.
SLICE_ROWS = 100


@dataclass(frozen=True)
class DispatchSlice:
    collection: str
    low: str  # first RowKey of the range
    high: str  # RowKey the range stops before
    horizon: datetime
    backlog: int = 0  # occurrences in the whole pass: how long its runs may wait (pickup_grace)
    crowd: int = 0  # occurrences of the pass's busiest second: how early they surface

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": 1,
                "collection": self.collection,
                "low": self.low,
                "high": self.high,
                "horizon": to_iso(self.horizon),
                "backlog": self.backlog,
                "crowd": self.crowd,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> DispatchSlice:
        data = json.loads(text)
        return cls(
            str(data["collection"]),
            str(data["low"]),
            str(data["high"]),
            from_iso(str(data["horizon"])),
            int(data.get("backlog", 0)),
            int(data.get("crowd", 0)),
        )


def slices_of(
    entries: Iterable[DueEntry],
    horizon: datetime,
    size: int = SLICE_ROWS,
    backlog: int = 0,
    crowd: int = 0,
) -> list[DispatchSlice]:
    """Each collection's due rows up to `horizon`, cut into key ranges of `size` rows that
    together cover `due|` up to the horizon's second; the earliest rows' slices first, so the
    consumers take the most urgent ones first."""
    keys: dict[str, list[str]] = {}
    for entry in entries:
        keys.setdefault(entry.collection, []).append(due_key(entry))
    _, end = up_to(DUE_PREFIX, horizon)
    found: list[DispatchSlice] = []
    for collection, rows in keys.items():
        rows.sort()
        bounds = [DUE_PREFIX, *(rows[start] for start in range(size, len(rows), size)), end]
        found += [
            DispatchSlice(collection, low, high, horizon, backlog, crowd)
            for low, high in zip(bounds, bounds[1:], strict=False)
        ]
    return sorted(found, key=lambda s: (s.low, s.collection))


class DispatchQueue:
    def __init__(self, client: QueueClient) -> None:
        self.client = client
        self._ready = False

    @classmethod
    def from_connection_string(cls, connection: str, queue_name: str) -> DispatchQueue:
        return cls(host_queue_client(connection, queue_name))

    async def ensure(self) -> DispatchQueue:
        if not self._ready:
            await create_if_missing(self.client)
            self._ready = True
        return self

    async def send(self, part: DispatchSlice) -> None:
        """Visible at once: its rows are due soon, and every instance should start on them."""
        await self.client.send_message(part.to_json(), time_to_live=-1)

    async def close(self) -> None:
        await self.client.close()


__all__ = ["SLICE_ROWS", "DispatchQueue", "DispatchSlice", "slices_of"]
