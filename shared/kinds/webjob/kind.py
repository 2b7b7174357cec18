"""The WebJob kind: `{"type": "WebJob", "webJob": {"name", "jobType"}}` runs the script of a
WebJobs folder shipped with the app (shared/kinds/webjob/folders.py) as a child process.

Its settings: `SCHEDULER_WEBJOBS_ROOT` (the folder holding `triggered/` and `continuous/`;
default `webjobs/` beside function_app.py) and `SCHEDULER_WEBJOBS_TIMEOUT_SECONDS` (how long one
triggered run may take before it is stopped; keep it under the host's functionTimeout).
Continuous WebJobs (shared/kinds/webjob/continuous.py): `SCHEDULER_CONTINUOUS_SLICE_SECONDS`
(how long one invocation holds the process before handing over) and
`SCHEDULER_CONTINUOUS_RESTART_DELAY_SECONDS` (the wait before a process that ended is restarted)
and `SCHEDULER_CONTINUOUS_LEASE_SECONDS` (how long a holder that stopped renewing is still taken
for alive: the longest a dead holder's job stays down, plus the restart delay).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from shared.errors import ConfigError
from shared.kinds.base import ActionRunner, Kind
from shared.kinds.webjob.folders import MAX_STOPPING_WAIT_SECONDS
from shared.kinds.webjob.model import WebJobAction

if TYPE_CHECKING:
    from shared.config import Settings

ROOT_SETTING = "SCHEDULER_WEBJOBS_ROOT"
TIMEOUT_SETTING = "SCHEDULER_WEBJOBS_TIMEOUT_SECONDS"
DEFAULT_TIMEOUT_SECONDS = 270  # under the Consumption plan's default functionTimeout (5 min)
MAX_TIMEOUT_SECONDS = 3600
SLICE_SETTING = "SCHEDULER_CONTINUOUS_SLICE_SECONDS"
RESTART_DELAY_SETTING = "SCHEDULER_CONTINUOUS_RESTART_DELAY_SECONDS"
LEASE_SETTING = "SCHEDULER_CONTINUOUS_LEASE_SECONDS"
DEFAULT_SLICE_SECONDS = 240  # under the Consumption plan's default functionTimeout (5 min)
DEFAULT_RESTART_DELAY_SECONDS = 60  # WebJobs' WEBJOBS_RESTART_TIME default
DEFAULT_LEASE_SECONDS = 30  # renewed every second: a holder silent this long is taken for dead
LEAST_LEASE_SECONDS = 5  # several renewals (one a second) may fail before the lease is lost
APP_ROOT = Path(__file__).resolve().parents[3]  # the folder of function_app.py


@dataclass(frozen=True)
class WebJobSettings:
    root: Path = APP_ROOT / "webjobs"
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    continuous_slice_seconds: float = DEFAULT_SLICE_SECONDS
    continuous_restart_delay_seconds: float = DEFAULT_RESTART_DELAY_SECONDS
    continuous_lease_seconds: float = DEFAULT_LEASE_SECONDS


class WebJobKind(Kind[WebJobAction]):
    type_names = ("WebJob",)
    payload_field = "webJob"
    payload_model = WebJobAction
    settings = (
        ROOT_SETTING,
        TIMEOUT_SETTING,
        SLICE_SETTING,
        RESTART_DELAY_SETTING,
        LEASE_SETTING,
        "SCHEDULER_OUTPUT_MAX_BYTES",
    )

    def runner(self, settings: Settings) -> ActionRunner:
        from shared.kinds.webjob.runner import WebJobRunner

        return WebJobRunner(settings, self.options(settings))

    def options(self, settings: Settings) -> WebJobSettings:
        options = settings.for_kind(self)
        return options if isinstance(options, WebJobSettings) else WebJobSettings()

    def timeout(self, payload: WebJobAction, settings: Settings) -> timedelta:
        # The run, the stop (up to the largest stopping_wait_time) and the output's last flush.
        seconds = self.options(settings).timeout_seconds + MAX_STOPPING_WAIT_SECONDS + 5
        return timedelta(seconds=seconds)

    def configure(self, app_settings: Mapping[str, str]) -> WebJobSettings:
        root_text = app_settings.get(ROOT_SETTING)
        root = Path(root_text) if root_text else WebJobSettings.root
        if not root.is_absolute():
            root = APP_ROOT / root
        return WebJobSettings(
            root=root,
            timeout_seconds=_seconds(app_settings, TIMEOUT_SETTING, DEFAULT_TIMEOUT_SECONDS, 1),
            continuous_slice_seconds=_seconds(
                app_settings, SLICE_SETTING, DEFAULT_SLICE_SECONDS, 10
            ),
            continuous_restart_delay_seconds=_seconds(
                app_settings, RESTART_DELAY_SETTING, DEFAULT_RESTART_DELAY_SECONDS, 0
            ),
            continuous_lease_seconds=_seconds(
                app_settings, LEASE_SETTING, DEFAULT_LEASE_SECONDS, LEAST_LEASE_SECONDS
            ),
        )


def _seconds(app_settings: Mapping[str, str], name: str, default: int, least: int) -> int:
    text = app_settings.get(name)
    if text is None:
        return default
    if not text.isdigit() or not least <= int(text) <= MAX_TIMEOUT_SECONDS:
        raise ConfigError(name, f"must be whole seconds, {least}..{MAX_TIMEOUT_SECONDS}")
    return int(text)


WEBJOB = WebJobKind()
