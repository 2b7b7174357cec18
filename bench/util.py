"""Small helpers shared by the benchmarks: names, statistics, CPU accounting, request counting."""

from __future__ import annotations

import asyncio
import inspect
import os
import resource
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from azure.core.pipeline.transport import AioHttpTransport

T = TypeVar("T")


def unique_name(kind: str) -> str:
    """Lowercase alphanumeric: valid as a table prefix and, with "-exec", as a queue name."""
    return f"b{kind}{uuid.uuid4().hex[:10]}"


async def bounded(limit: int, awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """Await all with at most `limit` in flight (as the dispatcher does with its semaphore)."""
    semaphore = asyncio.Semaphore(limit)

    async def one(awaitable: Awaitable[T]) -> T:
        try:
            async with semaphore:
                return await awaitable
        except asyncio.CancelledError:
            if inspect.iscoroutine(awaitable):
                awaitable.close()  # never started: no "was never awaited" warning
            raise

    return await asyncio.gather(*(one(a) for a in awaitables))


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 1,000 values is the 990th)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def median(values: list[float]) -> float:
    return statistics.median(values)


@dataclass
class CpuSample:
    wall: float
    python_cpu: float
    azurite_cpu: float
    other_cpu: float = 0.0  # every other process on the machine (other people's tests...)
    stolen_cpu: float = 0.0  # core time the hypervisor gave to other machines (steal)


class CpuMeter:
    """Wall time beside the CPU seconds of this process, of Azurite and of everything else
    (from /proc): on two cores this tells whether a phase waits on the emulator or on our own
    Python, and whether someone else's work was competing for the cores meanwhile."""

    def __init__(self, azurite_pid: int) -> None:
        self._stat = f"/proc/{azurite_pid}/stat"
        self._tick = os.sysconf("SC_CLK_TCK")

    def _azurite_cpu(self) -> float:
        try:
            with open(self._stat) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / self._tick  # utime + stime

    def _machine_cpu(self) -> tuple[float, float]:
        """CPU seconds of all cores: busy on this machine (user, nice, system, irq, softirq),
        and stolen by the hypervisor for other machines (steal)."""
        try:
            with open("/proc/stat") as handle:
                fields = handle.readline().split()[1:]
        except OSError:
            return 0.0, 0.0
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
        return (user + nice + system + irq + softirq) / self._tick, steal / self._tick

    @staticmethod
    def _python_cpu() -> float:
        """This process and its finished children (the seeding workers; Azurite is still
        running, so not counted here)."""
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    @contextmanager
    def measure(self) -> Iterator[CpuSample]:
        """Yields a sample that is filled in when the block ends."""
        sample = CpuSample(0.0, 0.0, 0.0)
        wall, cpu = time.perf_counter(), self._python_cpu()
        azurite, (machine, stolen) = self._azurite_cpu(), self._machine_cpu()
        try:
            yield sample
        finally:
            sample.wall = time.perf_counter() - wall
            sample.python_cpu = self._python_cpu() - cpu
            sample.azurite_cpu = self._azurite_cpu() - azurite
            busy, steal = self._machine_cpu()
            sample.other_cpu = max(0.0, busy - machine - sample.python_cpu - sample.azurite_cpu)
            sample.stolen_cpu = steal - stolen


def request_kind(method: str, url: str, table_prefix: str) -> str:
    """Name a storage request by what it touches, e.g. "POST $batch" or "DELETE Due(entity)"."""
    path = unquote(urlsplit(url).path)
    last = path.rstrip("/").rsplit("/", 1)[-1]
    if "/messages" in path:
        return f"{method} queue message"
    if last == "$batch":
        return f"{method} $batch (entity-group transaction)"
    table, _, keys = last.partition("(")
    table = table.removeprefix(table_prefix)
    shape = "entity" if "PartitionKey=" in keys else "query"
    return f"{method} {table}({shape})"


@contextmanager
def count_requests(table_prefix: str) -> Iterator[Counter[str]]:
    """Count every storage HTTP request made in this process while the block runs, by kind,
    by patching the azure-core aiohttp transport (the one the table and queue aio clients use).
    """
    counts: Counter[str] = Counter()
    original = AioHttpTransport.send

    async def send(self: AioHttpTransport, request: Any, **kwargs: Any) -> Any:
        counts[request_kind(request.method, request.url, table_prefix)] += 1
        return await original(self, request, **kwargs)

    AioHttpTransport.send = send
    try:
        yield counts
    finally:
        AioHttpTransport.send = original


@dataclass
class LoadSample:
    at: float  # epoch seconds at the end of the interval
    loop_lag_ms: float  # how late this event loop woke up from a sleep of INTERVAL
    python_cpu: float  # fractions of one core over the interval
    azurite_cpu: float
    other_cpu: float


class LoadSampler:
    """Samples every half second, in the background, how busy this event loop and the cores
    were: to tell a stall of the app from a stall of Azurite or someone else's load."""

    INTERVAL = 0.5

    def __init__(self, meter: CpuMeter) -> None:
        self._meter = meter
        self.samples: list[LoadSample] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            with self._meter.measure() as cpu:
                asked = loop.time()
                await asyncio.sleep(self.INTERVAL)
                lag = loop.time() - asked - self.INTERVAL
            self.samples.append(
                LoadSample(
                    time.time(),
                    1000 * lag,
                    cpu.python_cpu / cpu.wall,
                    cpu.azurite_cpu / cpu.wall,
                    cpu.other_cpu / cpu.wall,
                )
            )

    def around(self, start: float, end: float) -> dict[str, float]:
        """The worst of each figure over the samples that overlap [start, end]."""
        chosen = [s for s in self.samples if start <= s.at <= end + self.INTERVAL]
        if not chosen:
            return {}
        return {
            "loop_lag_ms": max(s.loop_lag_ms for s in chosen),
            "python_cpu": max(s.python_cpu for s in chosen),
            "azurite_cpu": max(s.azurite_cpu for s in chosen),
            "other_cpu": max(s.other_cpu for s in chosen),
        }
