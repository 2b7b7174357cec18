"""The engine's records: what the store keeps about collections, jobs, runs (occurrences in
flight), their watches, tallies and history, as plain dataclasses. No I/O: shared/storage/ reads
and writes them; the API, the dispatcher and the executor work on them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from shared.model.collection import CollectionDefinition, CollectionState
from shared.model.job import (
    ActionName,
    JobHistoryProperties,
    JobProperties,
    JobState,
    JobStatus,
)
from shared.names import CollectionRef
from shared.timefmt import compact, epoch_ms

# History rows sort newest first: their key holds this minus the start time in ms.
HISTORY_KEY_INVERT_MS = 10**13


class RunStatus(StrEnum):
    SCHEDULED = "Scheduled"
    RUNNING = "Running"


@dataclass(frozen=True)
class Tally:
    """Counter increments: of one attempt, or the sum of a job's unfolded attempts."""

    executions: int = 0
    failures: int = 0
    faulted: int = 0
    last_execution_time: datetime | None = None

    def __add__(self, other: Tally) -> Tally:
        times = [t for t in (self.last_execution_time, other.last_execution_time) if t]
        return Tally(
            self.executions + other.executions,
            self.failures + other.failures,
            self.faulted + other.faulted,
            max(times) if times else None,
        )


@dataclass(frozen=True)
class TallyRow:
    """One attempt's tally as stored; `final_state` is the final state its job takes if this attempt
    ended the job's last scheduled occurrence (of generation `generation`)."""

    collection: str
    job: str
    key: str
    tally: Tally
    generation: int
    final_state: JobState | None = None


@dataclass(frozen=True)
class JobListing:
    """The few columns of a job row that a list of every job searches, filters and sorts on
    (the dashboard's): read without the rest of the row, its definition not validated."""

    collection: str
    name: str
    state: JobState
    kind: str  # the action's type as stored, e.g. "Http"
    next_fire: datetime | None
    last_execution_time: datetime | None


@dataclass
class StoredJob:
    """A job as stored: the user's definition plus what the scheduler keeps about it."""

    collection: str
    name: str
    properties: JobProperties
    state: JobState
    created_at: datetime
    generation: int = 1
    next_fire: datetime | None = None
    occurrences: int = 0
    execution_count: int = 0
    failure_count: int = 0
    faulted_count: int = 0
    missed_count: int = 0
    last_execution_time: datetime | None = None
    scheduled_from: datetime | None = None
    # The final state decided by the last scheduled occurrence (folded from its tally).
    final_state: JobState | None = None
    final_state_generation: int = 0
    etag: str | None = None
    # Read alongside the row for the API, never stored: unfolded tallies, and the earliest
    # occurrence already dispatched but not started.
    pending: Tally = field(default_factory=Tally)
    dispatched: datetime | None = None

    def schedules(self, run: Run) -> bool:
        """Whether `run` is an occurrence of this version's schedule (not an on-demand run,
        not a run of a version the job was replaced by)."""
        return not run.on_demand and run.generation == self.generation

    @property
    def counters(self) -> Tally:
        """The counters folded into the row (without pending tallies)."""
        return Tally(
            self.execution_count,
            self.failure_count,
            self.faulted_count,
            self.last_execution_time,
        )

    def folded(self, tallies: Iterable[TallyRow]) -> StoredJob:
        """The job with these tallies added to its row's counters (and their final state)."""
        total = self.counters
        final_state, final_state_generation = self.final_state, self.final_state_generation
        for row in tallies:
            total += row.tally
            if row.final_state is not None:
                final_state, final_state_generation = row.final_state, row.generation
        return replace(
            self,
            execution_count=total.executions,
            failure_count=total.failures,
            faulted_count=total.faulted,
            last_execution_time=total.last_execution_time,
            final_state=final_state,
            final_state_generation=final_state_generation,
            pending=Tally(),
        )

    @property
    def status(self) -> JobStatus:
        total = self.counters + self.pending
        upcoming = [t for t in (self.dispatched, self.next_fire) if t is not None]
        return JobStatus(
            execution_count=total.executions,
            failure_count=total.failures,
            faulted_count=total.faulted,
            missed_count=self.missed_count,
            last_execution_time=total.last_execution_time,
            next_execution_time=min(upcoming) if upcoming else None,
        )


@dataclass
class Run:
    """One occurrence in flight: which action and attempt is next, and who holds it."""

    collection: str
    job: str
    generation: int
    nominal: datetime
    repeat_count: int
    due: datetime
    on_demand: bool = False
    last: bool = False
    phase: ActionName = ActionName.MAIN_ACTION
    attempt: int = 0
    status: RunStatus = RunStatus.SCHEDULED
    faulted: bool = False
    late_seconds: float = 0.0
    missed: int = 0
    claimed_until: datetime | None = None
    started_at: datetime | None = None
    token: str = ""
    # An on-demand run's own arguments for its action (a WebJob's command-line arguments) and
    # who asked for it ("External - <user agent>"); empty for scheduled runs.
    arguments: str = ""
    trigger: str = ""
    # When the timer looks at the run again if it has not moved on (its watch row's time).
    watch_at: datetime | None = None
    created: datetime | None = None
    # A request to stop, written by the run that replaces this one (overlap policy Replace):
    # what replaced it, as its history row will say. Empty: nobody asked.
    replaced_by: str = ""
    etag: str | None = None
    # When storage last wrote the row (its server timestamp; read, never written): orders the
    # claims of first attempts that start together (shared/engine/planning.py, overlap).
    written_at: datetime | None = None

    @property
    def row_key(self) -> str:
        return run_row_key(self.job, self.generation, self.nominal, self.token)

    @property
    def log_name(self) -> str:
        """How every log line names a run, so one grep follows it from dispatch to its end."""
        return f"collection={self.collection} job={self.job} nominal={self.nominal.isoformat()}"

    @property
    def step(self) -> tuple[int, int]:
        """Orders the attempts of an occurrence: main action first, then the error action."""
        return (0 if self.phase is ActionName.MAIN_ACTION else 1, self.attempt)

    @property
    def tally_key(self) -> str:
        """Unique per attempt of an occurrence: the tally and history rows of one attempt."""
        phase = "m" if self.phase is ActionName.MAIN_ACTION else "e"
        return f"tally|{self.job}|{compact(self.nominal)}{self.token}|{phase}{self.attempt:03d}"


@dataclass(frozen=True)
class Watch:
    """A time at which the timer looks at a run (or a job's final state) again."""

    collection: str
    deadline: datetime
    subject: str  # a run's row key, or "final|<job>"

    @property
    def row_key(self) -> str:
        return f"watch|{compact(self.deadline)}|{self.subject}"

    @classmethod
    def final_state_of(cls, collection: str, job: str, deadline: datetime) -> Watch:
        """The reminder to check, at `deadline`, that a job whose schedule ended got its
        final state."""
        return cls(collection, deadline, f"final|{job}")

    @property
    def run_key(self) -> str | None:
        return self.subject if self.subject.startswith("run|") else None

    @property
    def job(self) -> str:
        return self.subject.split("|")[1]


@dataclass
class HistoryRecord:
    collection: str
    job: str
    properties: JobHistoryProperties
    late_seconds: float = 0.0
    on_demand: bool = False
    run_token: str = ""
    output: bool = False  # the attempt kept output (shared/storage/output.py)
    trigger: str = ""  # the run's `trigger` (on-demand runs that named one)

    @property
    def row_key(self) -> str:
        """Newest first; unique per attempt even when two attempts start in the same ms."""
        return f"hist|{self.job}|" + "|".join(self._attempt_parts())

    @property
    def public_id(self) -> str:
        """The last segment of the record's resource id in the API: the same parts as the row
        key, joined by '-' (so the ids sort as the rows do)."""
        return "-".join(self._attempt_parts())

    def _attempt_parts(self) -> tuple[str, str, str]:
        """Start (inverted, so newest first), occurrence, and phase with attempt number."""
        props = self.properties
        inverted = HISTORY_KEY_INVERT_MS - epoch_ms(props.start_time)
        phase = "m" if props.action_name is ActionName.MAIN_ACTION else "e"
        occurrence = compact(props.expected_execution_time) + self.run_token
        return f"{inverted:013d}", occurrence, f"{phase}{props.retry_count:03d}"


@dataclass
class Collection:
    ref: CollectionRef
    definition: CollectionDefinition
    created_at: datetime

    @property
    def state(self) -> CollectionState:
        return self.definition.properties.state


@dataclass(frozen=True)
class DueEntry:
    due: datetime
    collection: str
    job: str


@dataclass
class DueScan:
    """What a timer pass finds: due rows up to its horizon, watches up to now."""

    entries: list[DueEntry] = field(default_factory=list)
    watches: list[Watch] = field(default_factory=list)


def run_row_key(job: str, generation: int, nominal: datetime, token: str = "") -> str:
    """Runs are keyed by job, job version and nominal time: one run per scheduled occurrence."""
    suffix = f"|{token}" if token else ""
    return f"run|{job}|{generation}|{compact(nominal)}{suffix}"


__all__ = [
    "HISTORY_KEY_INVERT_MS",
    "Collection",
    "DueEntry",
    "DueScan",
    "HistoryRecord",
    "Run",
    "RunStatus",
    "StoredJob",
    "Tally",
    "TallyRow",
    "Watch",
    "run_row_key",
]
