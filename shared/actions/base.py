"""The contract between the executor and the action kinds: context in, outcome out, no raising."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from shared.model.actions import JobErrorAction

if TYPE_CHECKING:
    from shared.config import Settings


@dataclass(frozen=True)
class ActionContext:
    """Who runs and why (identifies the occurrence to the target), and the app's settings as
    parsed at start-up: an action never reads the environment itself."""

    collection: str
    job: str
    expected_time: datetime  # the occurrence's nominal time, aware
    execution_tag: str
    request_id: str
    idempotency_key: str  # the same for every attempt of one occurrence
    retry_count: int
    repeat_count: int
    default_timeout: timedelta
    settings: Settings
    # The raw app settings, only to resolve the `connectionSetting` names of queue actions.
    app_settings: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.expected_time.tzinfo is None:
            raise ValueError("expected_time must be timezone-aware")


@dataclass(frozen=True)
class ActionOutcome:
    """The result of one attempt; `message` is what the job history shows."""

    succeeded: bool
    message: str
    status_code: int | None = None


class ActionRunner(Protocol):
    """Carries out one action kind.

    `run` reports every target failure (refused connection, timeout, non-2xx, missing queue) as
    `ActionOutcome(succeeded=False)`; only programming errors raise.
    """

    async def run(self, action: JobErrorAction, context: ActionContext) -> ActionOutcome: ...

    async def aclose(self) -> None: ...
