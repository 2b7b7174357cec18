"""What an action kind is: one object that declares everything the app needs to know about it.

The rest of the app (the action model, the executor, the outbound policy, the responses) asks the
kind, never a hard-coded list: a new kind is its own module plus one line in
`shared/kinds/registry.py` (or `shared.runtime.register_kind` from an app).
The contract between the executor and a kind's runner is here too: context in, outcome out, no
raising; and, for runners that can, a `prepare` step that does before an attempt's second all
the work that need not happen at it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from shared.model.common import ApiModel

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.model.actions import JobErrorAction
    from shared.outbound_policy import OutboundPolicy


@dataclass(frozen=True)
class ActionContext:
    """Who runs and why (identifies the occurrence to the target), and the app's settings as
    parsed at start-up: an action never reads the environment itself."""

    collection: str
    job: str
    nominal: datetime  # the occurrence's nominal time, aware
    attempt_tag: str
    request_id: str
    idempotency_key: str  # the same for every attempt of one occurrence
    retry_count: int
    repeat_count: int
    default_timeout: timedelta
    settings: Settings
    # The raw app settings, only to resolve connection setting names (queue actions).
    app_settings: Mapping[str, str] = field(default_factory=dict, repr=False)
    # Where this attempt's output goes (kinds that keep output: shared/storage/output.py).
    output_name: str = ""
    # An on-demand run's own arguments (a WebJob's command line); empty otherwise.
    arguments: str = ""

    def __post_init__(self) -> None:
        if self.nominal.tzinfo is None:
            raise ValueError("nominal must be timezone-aware")


@dataclass(frozen=True)
class ActionOutcome:
    """The result of one attempt; `message` is what the job history shows."""

    succeeded: bool
    message: str
    status_code: int | None = None
    output: bool = False  # the attempt kept output (its history row links to it)


class ActionRunner(Protocol):
    """Carries out the actions of one kind; `action.payload` is the kind's payload model.

    `run` reports every target failure (refused connection, timeout, non-2xx, missing queue) as
    `ActionOutcome(succeeded=False)`; only programming errors raise. It must end within the
    kind's `timeout`: the lease of the attempt is that timeout plus a margin.
    """

    async def run(self, action: JobErrorAction, context: ActionContext) -> ActionOutcome: ...

    async def aclose(self) -> None: ...


# Called (at most once matters) when the request is out: the target can see it from then on.
SentSignal = Callable[[], None]


class Send(Protocol):
    """A prepared attempt: only the send is left. Tells `sent` once its request is out (or it
    knows it will send nothing), then returns the outcome, within what is left of the kind's
    timeout; reports failures as an `ActionOutcome`, as `run` does."""

    def __call__(self, sent: SentSignal) -> Awaitable[ActionOutcome]: ...


@runtime_checkable
class PreparingRunner(Protocol):
    """A runner that can do an attempt's groundwork before its second (resolve and vet the
    target, fetch a token, build the request), so that at the second only the send is left.
    Preparing must have no effect on the target; a prepared send may be dropped unsent."""

    async def prepare(self, action: JobErrorAction, context: ActionContext) -> Send: ...


async def prepare(runner: ActionRunner, action: JobErrorAction, context: ActionContext) -> Send:
    """The runner's own `prepare` if it has one; otherwise nothing is done ahead and the send
    is the whole `run` (signalled as sent when it starts)."""
    if isinstance(runner, PreparingRunner):
        return await runner.prepare(action, context)

    async def send(sent: SentSignal) -> ActionOutcome:
        sent()
        return await runner.run(action, context)

    return send


Payload = TypeVar("Payload", bound=ApiModel)


class Kind(ABC, Generic[Payload]):
    """One action kind. Subclass it, set the four attributes, implement `runner` and `timeout`;
    override the rest where the kind has secrets, reach or authentication.

    In the Azure JSON an action is `{"type": <one of type_names>, <payload_field>: {...}}`.
    """

    type_names: tuple[str, ...]  # as answered; matched case-insensitively on input
    payload_field: str  # the action's JSON field holding the payload (`request`)
    payload_model: type[Payload]  # validates the payload; its errors name its fields
    settings: tuple[str, ...] = ()  # the app settings it reads (for the docs and the operator)

    @property
    def name(self) -> str:
        """The kind's first type name: how logs and errors refer to it."""
        return self.type_names[0]

    @abstractmethod
    def runner(self, settings: Settings) -> ActionRunner:
        """A runner for this process; the runtime builds one per kind and closes it at the end."""

    @abstractmethod
    def timeout(self, payload: Payload, settings: Settings) -> timedelta:
        """How long one attempt may take: the lease of an attempt is this plus a margin, so a
        runner that outlives it is taken over and its action made twice."""

    def check(self, type_name: str, payload: Payload) -> None:
        """Rules between the type and the payload (Https wants an https:// uri): ValueError."""

    def secrets(self, payload: Payload, app_settings: Mapping[str, str]) -> list[str]:
        """Secret values an outcome message could echo: scrubbed from it (every form)."""
        return []

    def public_json(self, payload: Payload) -> dict[str, Any]:
        """The payload as responses show it: write-only secrets left out."""
        return payload.to_json_dict()

    def refusals(self, payload: Payload, policy: OutboundPolicy) -> Iterator[tuple[str, str]]:
        """(field within the payload, reason) for each place this payload may not reach under
        the app's outbound policy; checked at PUT/PATCH and again by the runner."""
        return iter(())

    def authenticates(self, payload: Payload) -> bool:
        """Whether the payload uses outbound authentication (some SKUs do not allow it)."""
        return False

    def configure(self, app_settings: Mapping[str, str]) -> Any:
        """The kind's own app settings, parsed and checked once at start-up (`Settings.from_env`
        calls it for every known kind). Raise `ConfigError` naming the setting for a bad value:
        it stops the app. The result is `settings.for_kind(kind)` for the runner (through
        `context.settings`) and for payload validators (validation context `settings`)."""
        return None

    def carry_secrets(
        self, payload_json: dict[str, Any], stored: Payload, path: str
    ) -> dict[str, Any]:
        """`payload_json` (the payload of a PUT or merged PATCH, raw JSON, possibly snake_case)
        with the write-only secrets of the `stored` payload it may keep filled in: a client that
        writes back what GET showed cannot send them. Keep a secret only while it would reach the
        same place; raise `InvalidRequest` at `{path}.<field>` when it must be given again. The
        input is not changed. By default nothing is carried."""
        return payload_json

    def check_retarget(self, patch_json: dict[str, Any], stored: Payload, path: str) -> None:
        """Refuse (`InvalidRequest` at `{path}.<field>`) a PATCH of this payload that moves it
        to another target while a credential it holds without a secret (the app's identity)
        would silently follow."""
