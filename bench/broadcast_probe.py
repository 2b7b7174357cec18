"""A probe of (d): where a broadcast's time and storage requests go, per device.

`python -m bench.broadcast_probe --devices 2000 [--cprofile]` starts a private Azurite, registers
the devices as (d) does, measures the plain queue send floor, then runs one unpaced method
broadcast exactly as (d) does (bench/broadcast.py's `run_broadcast`), counting every storage
request by kind while it runs. It prints devices/s, the floor and their ratio, the CPU of this
process, of Azurite and of everything else, the storage requests per device by kind and, with
`--cprofile`, the functions that took the most of this process's CPU. Not part of `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench import queue_rate
from bench.broadcast import (
    DeviceSimulator,
    _settings,
    device_ids,
    register_devices,
    run_broadcast,
)
from bench.util import CpuMeter, count_requests, median, unique_name
from devhost.azurite import PROJECT_ROOT, start_azurite
from devhost.host_config import load_host_config
from shared.runtime import Runtime
from shared.storage.broadcasts import BroadcastRows, ChunkChange, ChunkState
from shared.storage.device_work import DeviceWorkQueue


async def probe(connection: str, meter: CpuMeter, devices: int, profile: bool) -> None:
    options = load_host_config(PROJECT_ROOT).queues
    in_flight = options.batch_size + options.threshold
    settings = _settings(connection, unique_name("probe"))
    simulator = await DeviceSimulator().start()
    runtime = await Runtime.create(settings, app_settings={})
    queue = DeviceWorkQueue.from_connection_string(connection, settings.device_work_queue)
    try:
        await register_devices(runtime, device_ids("main", devices), "main", simulator.base_url())
        floor = [await queue_rate.plain_sends(connection, in_flight, meter) for _ in range(3)]
        plain_rate = queue_rate.MESSAGES / median([s.wall for s in floor])
        profiler = cProfile.Profile() if profile else None
        counting = count_requests(settings.table_prefix)
        with count_changes() as changes, counting as counts, meter.measure() as cpu:
            if profiler is not None:
                profiler.enable()
            _, run = await run_broadcast(runtime, queue, options, simulator, "main", devices)
            if profiler is not None:
                profiler.disable()
    finally:
        await queue.close()
        await runtime.close()
        await simulator.stop()
    rate = run.devices / run.completed_s
    print(
        f"{run.devices} devices, {run.calls} calls, status {run.status}, "
        f"statistics {run.statistics}, handler failures {run.handler_failures} {run.errors}"
    )
    print(
        f"{rate:.0f} devices/s vs {plain_rate:.0f} plain sends/s: ratio {rate / plain_rate:.3f}; "
        f"first call {run.first_call_s:.2f} s, last {run.last_call_s:.2f} s, "
        f"completed {run.completed_s:.2f} s"
    )
    print(
        f"CPU over {cpu.wall:.1f} s: this process {cpu.python_cpu:.1f} s "
        f"({1000 * cpu.python_cpu / max(1, run.devices):.2f} ms/device), "
        f"Azurite {cpu.azurite_cpu:.1f} s, others {cpu.other_cpu:.1f} s"
    )
    print(
        f"chunk changes: {changes['writes']} writes moving {changes['moved']} records "
        f"({changes['moved'] / max(1, changes['writes']):.1f} each), "
        f"{changes['reads']} chunk reads"
    )
    total = sum(counts.values())
    print(f"storage requests: {total} ({total / max(1, run.devices):.2f} per device)")
    for kind, count in counts.most_common():
        print(f"  {count / max(1, run.devices):6.3f}/device  {count:7d}  {kind}")
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        print("own CPU by package (cProfile tottime):", file=out)
        for package, seconds in _by_package(stats)[:12]:
            print(f"  {seconds:7.2f} s  {package}", file=out)
        stats.sort_stats("tottime").print_stats(35)
        stats.sort_stats("cumulative").print_stats(60)
        print(out.getvalue())


def _by_package(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Own time summed by the package (or standard library module) a function lives in."""
    totals: dict[str, float] = {}
    for (filename, _, name), row in stats.stats.items():  # type: ignore[attr-defined]
        if "site-packages/" in filename:
            package = filename.split("site-packages/", 1)[1].split("/", 1)[0]
        elif "/shared/" in filename or "/bench/" in filename:
            package = filename.rsplit("/", 2)[-2] + "/" + filename.rsplit("/", 1)[-1]
        elif filename.startswith("~") or filename.startswith("<"):
            package = name if name.startswith("<") else "builtins"
        else:
            package = "stdlib " + filename.rsplit("/", 1)[-1]
        totals[package] = totals.get(package, 0.0) + row[2]
    return sorted(totals.items(), key=lambda item: -item[1])


@contextmanager
def count_changes() -> Iterator[Counter[str]]:
    """Count the chunk writes (transactions that moved records) and the records they moved,
    and the chunk reads (one per chunk, plus one per lost race)."""
    counts: Counter[str] = Counter()
    change_chunk, read_chunk = BroadcastRows.change_chunk, BroadcastRows.read_chunk

    async def counted_change(self: BroadcastRows, *args: Any, **kwargs: Any) -> ChunkChange:
        change = await change_chunk(self, *args, **kwargs)
        if change.changed:
            counts["writes"] += 1
            counts["moved"] += len(change.changed)
        return change

    async def counted_read(self: BroadcastRows, *args: Any, **kwargs: Any) -> ChunkState:
        counts["reads"] += 1
        return await read_chunk(self, *args, **kwargs)

    BroadcastRows.change_chunk = counted_change  # type: ignore[method-assign]
    BroadcastRows.read_chunk = counted_read  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        BroadcastRows.change_chunk = change_chunk  # type: ignore[method-assign]
        BroadcastRows.read_chunk = read_chunk  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.broadcast_probe", description=__doc__)
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--cprofile", action="store_true", help="profile this process's CPU")
    args = parser.parse_args()
    azurite = start_azurite()
    try:
        meter = CpuMeter(azurite.process.pid)
        asyncio.run(probe(azurite.connection_string, meter, args.devices, args.cprofile))
    finally:
        azurite.stop()


if __name__ == "__main__":
    main()
