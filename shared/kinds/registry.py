"""Which kinds this process knows, and the runners of one runtime.

`BUILTIN_KINDS` is the list a new built-in kind joins (one line). An app adds its own with
`shared.runtime.register_kind`, or a test passes them to `Runtime.create(kinds=...)`.

The set of known kinds is the process's, not one runtime's: stored definitions are parsed
wherever they are read (the store, the API, the OpenAPI document), and a stored action must
mean the same everywhere. It is built on first use, never at import. The runners are a
runtime's (`KindRunners`): built from the settings, closed with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic.alias_generators import to_snake

from shared.concurrency import QUEUE_WORK_AT_ONCE
from shared.kinds.base import (
    ActionContext,
    ActionOutcome,
    ActionRunner,
    Kind,
    PreparingRunner,
    Send,
    SentSignal,
    prepare,
)
from shared.kinds.broadcast import BROADCAST
from shared.kinds.code.kind import CODE
from shared.kinds.common.scrub import scrub
from shared.kinds.http.kind import HTTP
from shared.kinds.service_bus.kind import SERVICE_BUS_KINDS
from shared.kinds.storage_queue import STORAGE_QUEUE
from shared.kinds.webjob.kind import WEBJOB

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.model.actions import JobErrorAction

BUILTIN_KINDS: tuple[Kind[Any], ...] = (
    HTTP,
    STORAGE_QUEUE,
    *SERVICE_BUS_KINDS,
    CODE,
    WEBJOB,
    BROADCAST,
)


class KindRegistry:
    """Kinds by type name (case-insensitive) and by payload field; no two may share either."""

    def __init__(self, kinds: Iterable[Kind[Any]]) -> None:
        self.kinds: tuple[Kind[Any], ...] = tuple(kinds)
        self._by_type: dict[str, Kind[Any]] = {}
        self._by_field: dict[str, Kind[Any]] = {}
        for kind in self.kinds:
            for name in kind.type_names:
                if name.casefold() in self._by_type:
                    raise ValueError(f"action type {name!r} is claimed by two kinds")
                self._by_type[name.casefold()] = kind
            if kind.payload_field in self._by_field:
                raise ValueError(f"payload field {kind.payload_field!r} is used by two kinds")
            self._by_field[kind.payload_field] = kind
            self._by_field[to_snake(kind.payload_field)] = kind

    def with_kinds(self, kinds: Iterable[Kind[Any]]) -> KindRegistry:
        """This registry plus `kinds` (a kind already in it is not added twice)."""
        return KindRegistry([*self.kinds, *(k for k in kinds if k not in self.kinds)])

    def without(self, kind: Kind[Any]) -> KindRegistry:
        return KindRegistry(k for k in self.kinds if k is not kind)

    def kind_of(self, type_name: str) -> Kind[Any] | None:
        """The kind that claims `type_name` (any letter case), or None."""
        return self._by_type.get(type_name.casefold())

    def canonical(self, type_name: str) -> str:
        """`https` -> `Https`: the spelling responses use."""
        kind = self._by_type[type_name.casefold()]
        return next(name for name in kind.type_names if name.casefold() == type_name.casefold())

    @property
    def type_names(self) -> list[str]:
        return [name for kind in self.kinds for name in kind.type_names]

    @property
    def payload_fields(self) -> dict[str, Kind[Any]]:
        """Every key an action may hold a payload under (camelCase and snake_case)."""
        return dict(self._by_field)


_known: KindRegistry | None = None


def known_kinds() -> KindRegistry:
    """The kinds this process knows: the built-in ones and those registered since."""
    global _known
    if _known is None:
        _known = KindRegistry(BUILTIN_KINDS)
    return _known


def register_kinds(kinds: Iterable[Kind[Any]]) -> KindRegistry:
    """Make `kinds` known to the process (validation, OpenAPI, runtimes built from now on)."""
    global _known
    _known = known_kinds().with_kinds(kinds)
    return _known


def unregister_kind(kind: Kind[Any]) -> None:
    """Forget a registered kind (tests that register one clean up with it)."""
    global _known
    _known = known_kinds().without(kind)


class KindRunners:
    """One runner per kind of a registry, built from the settings, closed together."""

    def __init__(
        self,
        registry: KindRegistry,
        settings: Settings,
        provided: Mapping[Kind[Any], ActionRunner] | None = None,
    ) -> None:
        """`provided`: runners the composition root builds because they need its services (the
        Broadcast kind's needs the broadcast service); the other kinds make their own."""
        self.registry = registry
        self._settings = settings
        self._runs_at_once = asyncio.Semaphore(QUEUE_WORK_AT_ONCE)
        given = {id(kind): runner for kind, runner in (provided or {}).items()}
        self._runners: dict[int, ActionRunner] = {
            id(kind): given.get(id(kind)) or kind.runner(settings) for kind in registry.kinds
        }

    def runner_for(self, action: JobErrorAction) -> ActionRunner:
        kind = self._kind(action)
        return self._runners.get(id(kind)) or kind.runner(self._settings)

    def timeout_of(self, action: JobErrorAction) -> timedelta:
        """How long the action may take: its kind decides (the lease is this plus a margin)."""
        return self._kind(action).timeout(action.payload, self._settings)

    async def run(self, action: JobErrorAction, context: ActionContext) -> ActionOutcome:
        """Run the action with its kind's runner; its secrets are scrubbed from the outcome."""
        send = await self.prepare(action, context)
        return await send(_ignore)

    async def prepare(self, action: JobErrorAction, context: ActionContext) -> Send:
        """Do the action's groundwork now (its kind's runner decides what, if anything); the
        send left over scrubs the kind's secrets from its outcome."""
        kind = self._kind(action)
        runner = self.runner_for(action)
        send = await prepare(runner, action, context)
        if not isinstance(runner, PreparingRunner):
            send = self._in_turn(send)
        secrets = kind.secrets(action.payload, context.app_settings)
        if not secrets:
            return send

        async def scrubbed(sent: SentSignal) -> ActionOutcome:
            outcome = await send(sent)
            return replace(outcome, message=scrub(outcome.message, secrets))

        return scrubbed

    def _in_turn(self, send: Send) -> Send:
        """A kind that cannot prepare does all its work when sent (a code job, a WebJob's
        process): at most QUEUE_WORK_AT_ONCE of those at once, however many attempts the host
        lets an instance hold. Its send counts as out at once: storage work does not wait for
        one that waits its turn."""

        async def in_turn(sent: SentSignal) -> ActionOutcome:
            sent()
            async with self._runs_at_once:
                return await send(_ignore)

        return in_turn

    async def aclose(self) -> None:
        for runner in self._runners.values():
            await runner.aclose()

    def _kind(self, action: JobErrorAction) -> Kind[Any]:
        """The action's kind (the one that validated it); a stored action of an unregistered
        kind gets the stand-in that fails its attempts clearly (shared/kinds/unavailable.py)."""
        return action.kind


def _ignore() -> None:
    """No one waits for the send when the action is simply run."""
