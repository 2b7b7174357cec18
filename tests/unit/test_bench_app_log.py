"""The bench reads the executor's "Attempt:" line to report when attempts began: it must keep
reading it as the line's format changes (it once broke when runs got one name in every line)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from bench.lateness import AppLog
from shared.engine.executor import ATTEMPT_LOG
from shared.engine.records import Run, RunStatus

NOMINAL = datetime(2030, 5, 6, 8, 0, 0, tzinfo=UTC)


def test_the_bench_reads_the_executors_attempt_line() -> None:
    run = Run(
        collection="c",
        job="nightly",
        generation=1,
        nominal=NOMINAL,
        repeat_count=1,
        due=NOMINAL,
        status=RunStatus.RUNNING,
    )
    record = logging.LogRecord(
        "shared.engine.executor",
        logging.INFO,
        __file__,
        1,
        ATTEMPT_LOG,
        (run.log_name, "MainAction", 0, "Succeeded", 0.012),
        None,
    )
    app_log = AppLog()
    app_log.emit(record)
    assert app_log.started_late_ms == {("nightly", "2030-05-06T08:00:00Z"): 12.0}
