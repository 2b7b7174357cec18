"""Which runner carries out which action type. A new action kind = a module + one entry here."""

from __future__ import annotations

from shared.actions.base import ActionRunner
from shared.actions.http import HttpActionRunner
from shared.actions.storage_queue import StorageQueueActionRunner
from shared.model.actions import ActionType


class Runners:
    """One runner instance per action kind, closed together."""

    def __init__(self) -> None:
        http = HttpActionRunner()
        self._by_type: dict[ActionType, ActionRunner] = {
            ActionType.HTTP: http,
            ActionType.HTTPS: http,
            ActionType.STORAGE_QUEUE: StorageQueueActionRunner(),
        }

    def runner_for(self, action_type: ActionType) -> ActionRunner:
        return self._by_type[action_type]

    async def aclose(self) -> None:
        for runner in set(self._by_type.values()):
            await runner.aclose()
