"""Reading a code-job attempt's output for the API: by its history id, a byte range of it, or
what comes after an offset, waiting a while for more (long polling) until the attempt ends."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from shared.errors import InvalidRequest, NotFound
from shared.names import CollectionRef
from shared.storage.output import OutputSlice, OutputStore, output_name

# `{start}-{occurrence}-{phase}{attempt}` as a history record's public id; the start part is not
# needed to find the output, so a running attempt (no history row yet) can be named `current-…`.
_HISTORY_ID = re.compile(r"(?:\d{13}|current)-(\d{8}T\d{6}Z[A-Za-z0-9-]*)-([me]\d{3})")
FOLLOW_WAIT_SECONDS = 25.0
_FOLLOW_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class OutputReader:
    outputs: OutputStore

    def name_of(self, ref: CollectionRef, job: str, history_id: str) -> str:
        match = _HISTORY_ID.fullmatch(history_id)
        if match is None:
            raise InvalidRequest(
                "historyId",
                "must be a history record id ({start}-{occurrence}-{phase}{attempt}, "
                "e.g. 8100000000000-20300506T080000Z-m000; 'current' may stand for the start)",
            )
        return output_name(ref.key, job, match.group(1), match.group(2))

    async def read(self, name: str, start: int = 0, end: int | None = None) -> OutputSlice:
        found = await self.outputs.read(name, start, end)
        if found is None:
            raise NotFound("this history record has no output (not a code job, or pruned)")
        return found

    async def follow(
        self, name: str, offset: int, wait: float = FOLLOW_WAIT_SECONDS
    ) -> OutputSlice:
        """The bytes after `offset`, as soon as there are some or the attempt has ended, or
        nothing after `wait` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            found = await self.read(name, offset)
            if found.data or found.ended or loop.time() >= deadline:
                return found
            await asyncio.sleep(_FOLLOW_POLL_SECONDS)
