"""`python -m bench` (`make bench`): start a private in-memory Azurite, run (a) to (f),
print the report and write it to bench/results/latest.json. Azurite is stopped by its pid at
the end, on error and on SIGTERM/Ctrl-C alike.

`--parts ab` runs a subset; `--cprofile` adds a cProfile of one dispatch pass to the report;
`--devices 500 --paced-devices 100` runs (d) at a small size (defaults: 10,000 and 300);
`--burst-sizes 200,500` runs (e) small (default 1000,5000,10000); `--dashboard-jobs 1000` runs
(f) small (default 10,000).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import broadcast, burst, dashboard_list, lateness, queue_rate, timer_pass
from bench.report import render
from bench.util import CpuMeter, median
from devhost.azurite import PROJECT_ROOT, Azurite, start_azurite
from shared.engine.dispatcher import _CONCURRENCY

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
# What the parts measured so far, written after each one: a run stopped midway keeps its figures.
PARTIAL = RESULTS.with_name("partial.json")


@dataclass(frozen=True)
class Sizes:
    """(d)'s sizes: devices in the unpaced broadcast, and in the paced one."""

    devices: int = broadcast.DEVICES
    paced_devices: int = broadcast.ROLLOUT_DEVICES
    bursts: tuple[int, ...] = burst.SIZES  # (e)'s bursts
    dashboard_jobs: int = dashboard_list.JOBS  # (f)'s jobs


async def run(
    azurite: Azurite, parts: str, cprofile: bool, sizes: Sizes = Sizes()
) -> dict[str, Any]:
    """(c) runs first, on a fresh Azurite: once queue messages are deleted (the executor deletes
    each one it runs), Azurite's queue GC removes their extents one by one a minute later,
    re-sorting an index of ALL extents each time; with the ~13,000 messages (a) and (b) leave
    behind, that stalls Azurite for seconds and would show up as lateness. (e) and (d) each start
    an Azurite of their own (`_fresh_azurite`)."""
    connection = azurite.connection_string
    meter = CpuMeter(azurite.process.pid)
    results: dict[str, Any] = {"order": []}
    with meter.measure() as whole:
        await _run_parts(connection, meter, parts, cprofile, results)
        if "f" in parts:  # in tables of its own; before (e) and (d) fill Azurite further
            print(
                f"(f)     dashboard job list over {sizes.dashboard_jobs:,} jobs in "
                f"{dashboard_list.COLLECTIONS} collections ...",
                flush=True,
            )
            results["order"].append("f")
            results["dashboard"] = await dashboard_list.measure_dashboard_list(
                connection, sizes.dashboard_jobs
            )
            _checkpoint(results)
        if "e" in parts:
            results["order"].append("e")
            with _fresh_azurite() as (fresh, fresh_meter):
                results["bursts"] = await burst.measure_bursts(
                    fresh,
                    fresh_meter,
                    sizes.bursts,
                    lambda e: _checkpoint({**results, "bursts": e}),
                )
            _checkpoint(results)
        if "d" in parts:
            print(
                f"(d)     broadcast to {sizes.devices:,} simulated devices, statistics beside "
                f"{sizes.devices * broadcast.STORED_FACTOR:,} records, a paced run of "
                f"{sizes.paced_devices:,} ...",
                flush=True,
            )
            results["order"].append("d")
            with _fresh_azurite() as (fresh, fresh_meter):
                results["broadcast"] = await broadcast.measure_broadcasts(
                    fresh, fresh_meter, sizes.devices, sizes.paced_devices
                )
            _checkpoint(results)
    results["run_cpu"] = vars(whole)
    return results


async def _run_parts(
    connection: str, meter: CpuMeter, parts: str, cprofile: bool, results: dict[str, Any]
) -> None:
    if "c" in parts:
        print(
            f"(c)     1,000 jobs through the app in devhost (about {lateness.LEAD_SECONDS + 70} s)"
            " ...",
            flush=True,
        )
        results["order"].append("c")
        results["lateness"] = await lateness.measure_lateness(connection, meter)
        _checkpoint(results)
    if "a" in parts or "b" in parts:
        print("(a)(i)  timing passes over 1,000 due jobs in empty tables ...", flush=True)
        results["order"].append("a(i)")
        alone = await timer_pass.passes_alone(connection, meter)
        results["pass_alone"] = [_sample(s) for s in alone]
        results["pass_alone_median_s"] = median([s.cpu.wall for s in alone])
        _checkpoint(results)
    if "b" in parts:
        print("(b)     plain queue sends ...", flush=True)
        results["order"].append("b")
        many = [await queue_rate.plain_sends(connection, _CONCURRENCY, meter) for _ in range(3)]
        one = [await queue_rate.plain_sends(connection, 1, meter) for _ in range(3)]
        results["plain_sends"] = {"in_flight_32": many, "in_flight_1": one}
        results["dispatch_rate"] = timer_pass.DUE_JOBS / results["pass_alone_median_s"]
        results["plain_rate"] = queue_rate.MESSAGES / median([s.wall for s in many])
        results["plain_rate_1"] = queue_rate.MESSAGES / median([s.wall for s in one])
        results["plain_python_cpu_ms"] = (
            1000 * median([s.python_cpu for s in many]) / queue_rate.MESSAGES
        )
        results["plain_python_cpu_ms_1"] = (
            1000 * median([s.python_cpu for s in one]) / queue_rate.MESSAGES
        )
        results["dispatch_plain_ratio"] = results["dispatch_rate"] / results["plain_rate"]
        print("(b)     one extra pass at concurrency 1, to see where it goes ...", flush=True)
        results["pass_profile"] = await timer_pass.profile_alone(connection, meter, cprofile)
        _checkpoint(results)
    if "a" in parts:
        print("(a)(ii) seeding 100,000 jobs, then timing passes beside them ...", flush=True)
        results["order"].append("a(ii)")
        crowded, seed, profile = await timer_pass.passes_beside_others(connection, meter)
        results["pass_profile_crowded"] = profile
        results["seed"] = vars(seed)
        results["pass_crowded"] = [_sample(s) for s in crowded]
        results["pass_crowded_median_s"] = median([s.cpu.wall for s in crowded])
        results["crowded_ratio"] = results["pass_crowded_median_s"] / results["pass_alone_median_s"]


@contextmanager
def _fresh_azurite() -> Iterator[tuple[str, CpuMeter]]:
    """(e) and (d) each get an Azurite of their own, their floor measured on it: after (a)'s
    100,000 jobs and the messages (a) to (c) leave and delete, the shared one served queue
    operations 20 times slower (a burst of 1,000's floor: 38-66 s instead of 1.7 s)."""
    azurite = start_azurite()
    try:
        yield azurite.connection_string, CpuMeter(azurite.process.pid)
    finally:
        azurite.stop()


def _checkpoint(results: dict[str, Any]) -> None:
    PARTIAL.parent.mkdir(parents=True, exist_ok=True)
    PARTIAL.write_text(json.dumps(results, indent=2, default=_plain) + "\n", encoding="utf-8")


def _sample(sample: timer_pass.PassSample) -> dict[str, Any]:
    return {
        "wall_s": sample.cpu.wall,
        "python_cpu_s": sample.cpu.python_cpu,
        "azurite_cpu_s": sample.cpu.azurite_cpu,
        "other_cpu_s": sample.cpu.other_cpu,
        "stolen_cpu_s": sample.cpu.stolen_cpu,
        "report": vars(sample.report),
    }


async def _cancel_on_sigterm(work: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """SIGTERM cancels the run like Ctrl-C does (asyncio.run's own SIGINT handling), so every
    finally runs: devhost and the sink stop, runtimes close, then Azurite is stopped."""
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    return await work


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--parts", default="abcdef", help="which of a to f to run (default abcdef)")
    parser.add_argument("--devices", type=int, default=broadcast.DEVICES, help="(d)'s devices")
    parser.add_argument(
        "--paced-devices", type=int, default=broadcast.ROLLOUT_DEVICES, help="(d)'s paced run"
    )
    parser.add_argument(
        "--burst-sizes",
        default=",".join(str(n) for n in burst.SIZES),
        help="(e)'s bursts, comma-separated (default 1000,5000,10000)",
    )
    parser.add_argument(
        "--dashboard-jobs", type=int, default=dashboard_list.JOBS, help="(f)'s jobs"
    )
    parser.add_argument("--cprofile", action="store_true", help="cProfile one dispatch pass")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.root.handlers:
        handler.setLevel(logging.WARNING)  # (c) raises two app loggers to INFO for its own use
    started = time.perf_counter()
    azurite = start_azurite()
    print(f"Azurite (in memory) pid {azurite.process.pid}, ports {azurite.ports}", flush=True)
    try:
        results = asyncio.run(
            _cancel_on_sigterm(run(azurite, args.parts, args.cprofile, _sizes(args)))
        )
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("Interrupted: Azurite stopped, no report written.", file=sys.stderr)
        return 130
    finally:
        azurite.stop()
    results["total_s"] = time.perf_counter() - started
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["cores"] = os.cpu_count()
    results["azurite_version"] = _azurite_version()
    report = render(results)
    print(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=_plain) + "\n", encoding="utf-8")
    PARTIAL.unlink(missing_ok=True)
    print(f"Written to {RESULTS.relative_to(PROJECT_ROOT)}")
    return 0


def _sizes(args: argparse.Namespace) -> Sizes:
    bursts = tuple(int(n) for n in str(args.burst_sizes).split(",") if n.strip())
    return Sizes(args.devices, args.paced_devices, bursts, args.dashboard_jobs)


def _plain(value: object) -> object:
    """JSON for the dataclasses in the results (CPU samples)."""
    return vars(value) if hasattr(value, "__dict__") else str(value)


def _azurite_version() -> str:
    package = PROJECT_ROOT / "node_modules" / "azurite" / "package.json"
    try:
        return str(json.loads(package.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError):
        return "?"


if __name__ == "__main__":
    raise SystemExit(main())
