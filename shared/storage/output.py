"""Code-job output: one append blob per attempt in the container `{prefix}-output`.

Why an append blob: lines are appended while the attempt runs, so the output can be read (and
followed) before it ends. A writer buffers lines and flushes at most every `FLUSH_SECONDS` or
every `FLUSH_LINES` lines; writing never blocks or fails the handler (a storage fault drops the
chunk and is logged). Past the cap, one marker line is written and the rest dropped. The blob's
metadata `ended` says whether the attempt is over (the follow route's answer).

Names: `{collection digest}/{job}/{occurrence}/{phase}{attempt:03d}.log`, the parts of a history
row's key except its start time, so a history row (and its public id) finds its output, and the
output of a running attempt can be named before its history row exists.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
FLUSH_LINES = 200
_APPEND_BLOCK = 4 * 1024 * 1024  # the largest block one append may carry
_ENDED = "ended"


def output_container(table_prefix: str) -> str:
    """`{prefix}-output`, lower-case (container names are 3-63 lower-case letters, digits, '-')."""
    return f"{table_prefix.lower()}-output"


def output_name(collection: str, job: str, occurrence: str, attempt: str) -> str:
    """The blob of one attempt: `occurrence` is the nominal time (compact) and the run's token,
    `attempt` the phase letter and attempt number (`m000`), as in the history row's key."""
    digest = hashlib.sha256(collection.encode("utf-8")).hexdigest()[:32]
    return f"{digest}/{job}/{occurrence}/{attempt}.log"


def job_output_prefix(collection: str, job: str) -> str:
    return output_name(collection, job, "", "").rsplit("/", 2)[0] + "/"


def output_name_of_key(collection: str, row_key: str) -> str:
    """The output blob of an attempt's history row key (`hist|<job>|<inverted start>|
    <occurrence>|<m000>`) or tally row key (`tally|<job>|<occurrence>|<m000>`)."""
    parts = row_key.split("|")
    return output_name(collection, parts[1], parts[-2], parts[-1])


@dataclass(frozen=True)
class OutputSlice:
    """Bytes of an output and what is known of the whole at the time of reading."""

    data: bytes
    size: int  # the blob's size when read
    ended: bool


class OutputStore:
    """The output container: writers for attempts, reads, deletes."""

    def __init__(self, service: BlobServiceClient, container: str) -> None:
        self._service = service
        self._container: ContainerClient = service.get_container_client(container)
        self._ensured = False

    @classmethod
    def from_connection_string(cls, connection: str, table_prefix: str) -> OutputStore:
        return cls(
            BlobServiceClient.from_connection_string(connection), output_container(table_prefix)
        )

    async def ensure(self) -> None:
        if self._ensured:
            return
        try:
            await self._container.create_container()
        except ResourceExistsError:
            pass
        self._ensured = True

    async def close(self) -> None:
        await self._service.close()

    async def open_writer(self, name: str, max_bytes: int) -> OutputWriter:
        """A new (empty) output for an attempt; a repeated attempt starts it again."""
        await self.ensure()
        blob = self._container.get_blob_client(name)
        await blob.create_append_blob(metadata={_ENDED: "false"})
        writer = OutputWriter(self, name, max_bytes)
        writer.start()
        return writer

    async def append(self, name: str, data: bytes) -> None:
        blob = self._container.get_blob_client(name)
        for start in range(0, len(data), _APPEND_BLOCK):
            await blob.append_block(data[start : start + _APPEND_BLOCK])

    async def mark_ended(self, name: str) -> None:
        await self._container.get_blob_client(name).set_blob_metadata({_ENDED: "true"})

    async def read(self, name: str, start: int = 0, end: int | None = None) -> OutputSlice | None:
        """Bytes `start`..`end` inclusive (to the end if None, clipped to the size); None when
        there is no such output."""
        blob = self._container.get_blob_client(name)
        try:
            props = await blob.get_blob_properties()
        except ResourceNotFoundError:
            return None
        size = int(props.size)
        ended = (props.metadata or {}).get(_ENDED) == "true"
        last = size - 1 if end is None else min(end, size - 1)
        if start >= size or last < start:
            return OutputSlice(b"", size, ended)
        stream = await blob.download_blob(offset=start, length=last - start + 1)
        return OutputSlice(await stream.readall(), size, ended)

    async def job_outputs(self, collection: str, job: str) -> list[str]:
        """The names of the job's outputs, in name order (occurrence, then attempt)."""
        try:
            return [
                blob.name
                async for blob in self._container.list_blobs(
                    name_starts_with=job_output_prefix(collection, job)
                )
            ]
        except ResourceNotFoundError:  # no container yet: nothing was ever written
            return []

    async def delete_job_outputs(
        self, collection: str, job: str, only: Iterable[str] | None = None
    ) -> int:
        """Delete the job's outputs (those named in `only`, if given); missing ones are fine."""
        wanted = set(only) if only is not None else None
        deleted = 0
        for name in await self.job_outputs(collection, job):
            if wanted is not None and name not in wanted:
                continue
            try:
                await self._container.delete_blob(name)
                deleted += 1
            except ResourceNotFoundError:
                pass
        return deleted


class AttemptOutputs:
    """The output writers of one runner's attempts. The blob client is made on first use, so a
    runner whose kind never runs opens no connection."""

    def __init__(self, connection: str, table_prefix: str, max_bytes: int) -> None:
        self._connection = connection
        self._table_prefix = table_prefix
        self._max_bytes = max_bytes
        self._store: OutputStore | None = None

    async def writer(self, name: str) -> OutputWriter:
        if self._store is None:
            self._store = OutputStore.from_connection_string(self._connection, self._table_prefix)
        return await self._store.open_writer(name, self._max_bytes)

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()
            self._store = None


class OutputWriter:
    """Time-stamped lines for one attempt, buffered and appended in the background.

    `line` may be called from any thread (a sync handler runs in its own); it never blocks on
    storage. After `close`, lines are dropped (an abandoned handler thread writes into nothing).
    """

    def __init__(self, store: OutputStore, name: str, max_bytes: int) -> None:
        self.name = name
        self._store = store
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._buffer: list[bytes] = []
        self._accepted = 0
        self._truncated = False
        self._closed = False
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = self._loop.create_task(self._flush_loop())

    def line(self, level: str, text: str) -> None:
        """Append `text` (each of its lines stamped with the time and `level`)."""
        stamp = _stamp(datetime.now(UTC))
        lines = text.splitlines() or [""]
        encoded = [f"{stamp} {level} {part}\n".encode() for part in lines]
        with self._lock:
            if self._closed or self._truncated:
                return
            for data in encoded:
                if self._accepted + len(data) > self._max_bytes:
                    self._truncated = True
                    marker = f"{stamp} WARN [output truncated at {self._max_bytes} bytes]\n"
                    self._buffer.append(marker.encode())
                    break
                self._accepted += len(data)
                self._buffer.append(data)
            full = len(self._buffer) >= FLUSH_LINES or self._truncated
        if full:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def close(self) -> None:
        """Flush what is left and mark the output ended."""
        with self._lock:
            self._closed = True
        self._wake.set()
        if self._task is not None:
            await self._task  # not cancelled: an append in flight would lose its chunk
        await self._flush()
        try:
            await self._store.mark_ended(self.name)
        except AzureError as error:
            log.warning("Could not mark output %s ended: %s", self.name, type(error).__name__)

    async def _flush_loop(self) -> None:
        while not self._closed:
            try:
                await asyncio.wait_for(self._wake.wait(), FLUSH_SECONDS)
            except TimeoutError:
                pass
            self._wake.clear()
            await self._flush()

    async def _flush(self) -> None:
        with self._lock:
            chunk, self._buffer = b"".join(self._buffer), []
        if not chunk:
            return
        try:
            await self._store.append(self.name, chunk)
        except AzureError as error:
            log.warning("Dropped %d bytes of output %s: %s", len(chunk), self.name, error)


def _stamp(instant: datetime) -> str:
    return f"{instant:%Y-%m-%dT%H:%M:%S}.{instant.microsecond // 1000:03d}Z"


__all__ = [
    "OutputSlice",
    "OutputStore",
    "OutputWriter",
    "output_container",
    "output_name",
    "output_name_of_key",
]
