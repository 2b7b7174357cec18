"""The row-key scheme of the scheduler's tables: what each row is called and how ranges are read.

``{prefix}C<digest of the collection key>``  one table per collection, PartitionKey = its key
    ``job|<job>``                           the job: definition, state, counters, next occurrence
    ``run|<job>|<generation>|<nominal>``    an occurrence in flight (deleted when it ends)
    ``watch|<deadline>|<run key>``          when the timer must look at a run again, if it has
                                            not moved on by then (its holder may have died)
    ``watch|<deadline>|final|<job>``        when the timer must check that a job whose schedule
                                            ended has been given its final state
    ``tally|<job>|<occurrence>|<phase><attempt>``  one attempt's counter increments, until they
                                            are folded into the job row
    ``hist|<job>|<inverted start ms>|<phase><attempt>``   one history row per attempt, newest first
    ``due|<due>|<job>``                     the job's next occurrence, for the timer
    ``meta|jobs``                           the job count row: how many jobs the collection holds

``{prefix}Due``   PartitionKey = a minute (``yyyymmddHHMM``), RowKey = collection key
``{prefix}Collections``  PartitionKey = ``<subscription>|<resourceGroup>``, RowKey = name

The keys of runs, watches, tallies and history rows are part of those records' identity (an
attempt's retry finds its own history row by it), so the records build them
(`Run.row_key`, `Watch.row_key`, `Run.tally_key`, `HistoryRecord.row_key` in
shared/engine/records.py); this module names the others and the ranges every reader uses.
The `|` separator sorts before `}`, so ``<prefix>`` up to ``<prefix without its |>}`` is
exactly the rows under a prefix.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from shared.engine.records import HISTORY_KEY_INVERT_MS, DueEntry
from shared.timefmt import compact, epoch_ms

JOB_PREFIX = "job|"
DUE_PREFIX = "due|"
WATCH_PREFIX = "watch|"
JOB_COUNT_KEY = "meta|jobs"


def collection_table(table_prefix: str, collection: str) -> str:
    """The name of a collection's table: a digest, since a collection key may hold characters
    a table name may not, and a table per collection keeps collections independent."""
    digest = hashlib.sha256(collection.encode("utf-8")).hexdigest()[:32]
    return f"{table_prefix}C{digest}"


def job_key(name: str) -> str:
    return f"{JOB_PREFIX}{name}"


def job_name(row_key: str) -> str:
    """The job's name from its row key (`job|<name>`)."""
    return row_key.split("|", 1)[1]


def due_key(entry: DueEntry) -> str:
    return f"{DUE_PREFIX}{compact(entry.due)}|{entry.job}"


def due_job(row_key: str) -> str:
    """The job a due row (`due|<due>|<job>`) is for."""
    return row_key.rsplit("|", 1)[1]


def due_minute(row_key: str) -> datetime:
    """The start of the minute a due row (`due|<due>|<job>`) is due in, from its key alone."""
    stamp = row_key.split("|", 2)[1]
    return datetime.strptime(stamp[:13], "%Y%m%dT%H%M").replace(tzinfo=UTC)


def minute(instant: datetime) -> str:
    """The due index's partition for an instant: its minute, `yyyymmddHHMM`."""
    return instant.strftime("%Y%m%d%H%M")


def filed(at: datetime, now: datetime) -> str:
    """The minute a due or watch row is filed in: its own, or the current one if later (so a
    writer never files into a minute the timer may already have settled)."""
    return minute(max(at, now))


def prefix_filter(prefix: str) -> str:
    """An OData filter for RowKeys starting with `prefix` (which ends in '|'; '}' follows it)."""
    return f"RowKey ge '{prefix}' and RowKey lt '{prefix[:-1]}}}'"


def jobs_between(kind: str, first: str, last: str) -> tuple[str, str]:
    """(low, high) RowKey bounds of the `kind` rows (`run`, `tally`) of the jobs named `first`
    to `last` in key order: one range read covers a page of jobs."""
    return f"{kind}|{first}|", f"{kind}|{last}}}"


def up_to(prefix: str, instant: datetime) -> tuple[str, str]:
    """(low, high) RowKey bounds of the due or watch rows (`prefix`) filed up to `instant`'s
    second; the caller still compares each row's own time, which carries its fraction."""
    return prefix, f"{prefix}{compact(instant)}}}"


def history_prefix(job: str) -> str:
    return f"hist|{job}|"


def tally_prefix(job: str) -> str:
    return f"tally|{job}|"


def history_older_than(row_key: str, instant: datetime) -> bool:
    """Whether a history row (`hist|<job>|<inverted start ms>|...`) started before `instant`."""
    return int(row_key.split("|")[2]) > HISTORY_KEY_INVERT_MS - epoch_ms(instant)


__all__ = [
    "JOB_COUNT_KEY",
    "DUE_PREFIX",
    "JOB_PREFIX",
    "WATCH_PREFIX",
    "collection_table",
    "due_job",
    "due_key",
    "due_minute",
    "filed",
    "history_older_than",
    "history_prefix",
    "jobs_between",
    "job_key",
    "job_name",
    "minute",
    "prefix_filter",
    "tally_prefix",
    "up_to",
]
