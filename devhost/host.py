"""DevHost: load settings, import the app, then serve its HTTP, timer and queue functions.

The order is the host's: local.settings.json into the environment, host.json, import
`function_app`, index `app.get_functions()`, start the listeners. Used by `python -m devhost`,
the end-to-end tests and the benchmarks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from devhost.functions import (
    HTTP_TRIGGER,
    QUEUE_TRIGGER,
    TIMER_TRIGGER,
    FunctionSpec,
    discover,
    load_app,
)
from devhost.host_config import HostConfig, load_host_config
from devhost.http_server import HttpFrontend, HttpServer
from devhost.invoker import Outcome
from devhost.queues import QueueListener, invoke_with_input
from devhost.settings import (
    EnvironmentPatch,
    connection_string,
    load_local_settings,
    request_body_limit,
)
from devhost.timers import TimerRunner
from devhost.tls import (
    CERT_SETTING,
    KEY_SETTING,
    PASSWORD_SETTING,
    HttpsCertificate,
    PemFiles,
    prepare,
)

logger = logging.getLogger(__name__)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "0.0.0.0", "::", "::1", "")


FUNCTION_KEY_SETTING = "DEVHOST_FUNCTION_KEY"


def check_function_key(key: str, source: str) -> str:
    """The key, or ValueError when it is blank: a blank key would say the API is protected
    while any request without a key (or with `?code=`) passes."""
    if not key.strip():
        raise ValueError(
            f"{source} is blank: give the key clients must send, or leave it unset to run the "
            "API open"
        )
    return key


class DevHost:
    """A local Functions host for one app; `await start()`, then `await stop()` (or `async with`).

    `settings_overrides` win over the environment and local.settings.json (tests use them for
    per-test queue names). With `key` set, non-anonymous HTTP functions require that key;
    without it, the app setting DEVHOST_FUNCTION_KEY decides (empty or unset: the API is open).
    With `https` (or the DEVHOST_HTTPS_CERT setting) the HTTP functions are served over HTTPS.
    """

    def __init__(
        self,
        app_path: str = "function_app:app",
        *,
        project_dir: Path | None = None,
        settings_overrides: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 7071,
        key: str | None = None,
        https: HttpsCertificate | None = None,
        stop_timeout: float = 30.0,
    ) -> None:
        self.app_path = app_path
        self.project_dir = (project_dir or Path.cwd()).resolve()
        self.settings_overrides = dict(settings_overrides or {})
        self.host = host
        self.port = port
        self.key = None if key is None else check_function_key(key, "the function key")
        self.https = https
        self.stop_timeout = stop_timeout
        self._tls: PemFiles | None = None
        self.config = HostConfig()
        self.specs: list[FunctionSpec] = []
        self._environment = EnvironmentPatch()
        self._added_to_path = False
        self._http: HttpServer | None = None
        self._http_port: int | None = None
        self._timers: dict[str, TimerRunner] = {}
        self._queues: list[QueueListener] = []
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def functions(self) -> dict[str, str]:
        """Function name -> trigger type, for every function this host runs."""
        return {spec.name: spec.trigger_type for spec in self.specs}

    @property
    def http_port(self) -> int:
        if self._http_port is None:
            raise RuntimeError("the host is not started")
        return self._http_port

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in LOOPBACK_NAMES else self.host
        scheme = "https" if self.https else "http"
        return f"{scheme}://{host}:{self.http_port}"

    @property
    def api_url(self) -> str:
        """The base URL of the HTTP functions, e.g. http://127.0.0.1:7071/api."""
        prefix = self.config.route_prefix
        return f"{self.base_url}/{prefix}" if prefix else self.base_url

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        self._environment.apply(load_local_settings(self.project_dir), self.settings_overrides)
        self.config = load_host_config(self.project_dir)
        if str(self.project_dir) not in sys.path:
            sys.path.insert(0, str(self.project_dir))
            self._added_to_path = True
        app = load_app(self.app_path)
        settings = dict(os.environ)
        # Settings that can be wrong are checked before anything is created.
        max_body = request_body_limit(settings)
        if self.key is None and settings.get(FUNCTION_KEY_SETTING):
            # Like a function key in Azure. Empty counts as unset (the example settings file
            # ships it empty): the API is open, and the start-up log says so.
            self.key = check_function_key(settings[FUNCTION_KEY_SETTING], FUNCTION_KEY_SETTING)
        if self.https is None and settings.get(CERT_SETTING, "").strip():
            self.https = HttpsCertificate(
                Path(settings[CERT_SETTING].strip()),
                Path(settings[KEY_SETTING].strip())
                if settings.get(KEY_SETTING, "").strip()
                else None,
                settings.get(PASSWORD_SETTING) or None,
            )
        self._tls = prepare(self.https) if self.https else None
        self.specs = discover(app, settings, self.project_dir)
        by_type = {
            t: [s for s in self.specs if s.trigger_type == t]
            for t in (HTTP_TRIGGER, TIMER_TRIGGER, QUEUE_TRIGGER)
        }

        for spec in by_type[QUEUE_TRIGGER]:
            try:
                connection = connection_string(spec.trigger.get("connection"), settings)
            except LookupError as error:
                raise LookupError(f"function {spec.name}: {error}") from None
            listener = QueueListener(spec, connection, self.config.queues)
            self._queues.append(listener)
            await listener.create_queue()
        self._timers = {spec.name: TimerRunner(spec) for spec in by_type[TIMER_TRIGGER]}

        frontend = HttpFrontend(
            by_type[HTTP_TRIGGER],
            route_prefix=self.config.route_prefix,
            key=self.key,
            manual_invoke=self.invoke,
            manual_names={s.name for s in self.specs if s.trigger_type != HTTP_TRIGGER},
            max_body=max_body,
        )
        self._http = HttpServer(frontend, host=self.host, port=self.port, tls=self._tls)
        self._http_port = await self._http.start()

        runners: list[TimerRunner | QueueListener] = [*self._timers.values(), *self._queues]
        self._tasks = [asyncio.create_task(r.run(self._stopping)) for r in runners]
        self._log_functions()

    async def invoke(self, name: str, input_text: str = "") -> Outcome:
        """Run a timer or queue function now, as the admin API does (timers stay singletons)."""
        if name in self._timers:
            return await self._timers[name].fire(reason="Manual")
        spec = next(
            (s for s in self.specs if s.name == name and s.trigger_type == QUEUE_TRIGGER), None
        )
        if spec is None:
            raise KeyError(f"no timer or queue function named {name!r}")
        return await invoke_with_input(spec, input_text)

    async def stop(self) -> None:
        """Stop polling and firing, let running invocations finish (up to stop_timeout)."""
        self._stopping.set()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=self.stop_timeout)
            for task in late:
                logger.warning("Cancelling %s: still running after %ss", task, self.stop_timeout)
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for listener in self._queues:
            await listener.close()
        if self._http is not None:
            await self._http.stop()
        if self._tls is not None:
            self._tls.close()
            self._tls = None
        self._environment.restore()
        if self._added_to_path:
            sys.path.remove(str(self.project_dir))
            self._added_to_path = False

    async def __aenter__(self) -> DevHost:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def _log_functions(self) -> None:
        lines = []
        for spec in self.specs:
            trigger = spec.trigger
            if spec.trigger_type == HTTP_TRIGGER:
                methods = ",".join(trigger.get("methods") or ["ALL"])
                route = str(trigger.get("route") or spec.name).lstrip("/")
                lines.append(f"  {spec.name}: [{methods}] {self.api_url}/{route}")
            elif spec.trigger_type == TIMER_TRIGGER:
                lines.append(f"  {spec.name}: timerTrigger ({trigger['schedule']})")
            else:
                lines.append(f"  {spec.name}: queueTrigger ({trigger['queueName']})")
        if lines:
            logger.info("Functions:\n%s", "\n".join(lines))
        else:
            logger.warning("No functions found in %s", self.app_path)
        if self.key is None:
            logger.info("HTTP API %s is open: function keys are not enforced", self.api_url)
        else:
            logger.info(
                "HTTP API %s requires a function key (x-functions-key or ?code=)", self.api_url
            )
