"""App settings, parsed and checked once, at start-up (local.settings.json's Values, or the
Function App's application settings). Every name here is documented in README.md and
local.settings.example.json.

Azure restarts the app when its settings change, so start-up is the one time to read them: a bad
value stops the app there with a `ConfigError` naming the setting, instead of failing every
attempt of every job. Nothing else reads the environment, except `connectionSetting` names of
queue actions, which name other app settings and are resolved when the action runs.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from shared.devices.sas import AccessPolicy, parse_policies
from shared.errors import ConfigError
from shared.kinds.http.model import DEFAULT_LIMITS, RequestLimits
from shared.kinds.http.network_guard import SETTING as NETWORKS_SETTING
from shared.kinds.http.network_guard import NetworkPolicy
from shared.kinds.http.outbound_auth import (
    AUTHORITY_SETTING,
    DEFAULT_AUTHORITY,
    EXTRA_CA_SETTING,
    IDENTITY_ENDPOINT_SETTING,
    IDENTITY_HEADER_SETTING,
)
from shared.kinds.registry import known_kinds
from shared.outbound_policy import (
    DEFAULT_DEVICE_WORK_QUEUE,
    DEFAULT_DISPATCH_QUEUE,
    DEFAULT_EXECUTION_QUEUE,
    DEVICE_WORK_QUEUE_SETTING,
    DISPATCH_QUEUE_SETTING,
    EXECUTION_QUEUE_SETTING,
    QUEUE_CONNECTIONS_SETTING,
    OutboundPolicy,
)
from shared.storage.connections import is_connection_string

if TYPE_CHECKING:
    from shared.kinds.base import Kind

STORAGE_SETTING = "AzureWebJobsStorage"
OWN_STORAGE_SETTING = "SCHEDULER_STORAGE"
TABLE_PREFIX_SETTING = "SCHEDULER_TABLE_PREFIX"
IOT_POLICIES_SETTING = "SCHEDULER_IOT_POLICIES"
READ_ONLY_SETTING = "SCHEDULER_READ_ONLY"

_MAX_SECONDS = 365 * 24 * 3600  # beyond a year, a duration is a typo (and dates overflow)
_MAX_DAYS = 36_500
_MAX_COUNT = 2**31 - 1

# A collection's table is the prefix, "C" and 32 hex digits: at most 63 characters.
_TABLE_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9]{0,29}")
# Azure queue names: 3-63 lower-case letters, digits and single dashes, starting and ending with
# a letter or digit; 56 at most here, so that the host's "-poison" queue is a valid name too.
_QUEUE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,55}")
_WHOLE_NUMBER = re.compile(r"[0-9]+")
_T = TypeVar("_T")


@dataclass(frozen=True)
class ManagedIdentity:
    """The App Service managed identity endpoint, as the platform sets it."""

    endpoint: str
    header: str = field(repr=False)  # a secret: whoever holds it can ask for the app's tokens


@dataclass(frozen=True)
class Settings:
    storage_connection: str = field(repr=False)
    table_prefix: str = "Scheduler"
    execution_queue: str = DEFAULT_EXECUTION_QUEUE
    # Broadcast jobs' start, per-device and sweep messages (shared/storage/device_work.py).
    device_work_queue: str = DEFAULT_DEVICE_WORK_QUEUE
    # Slices of a big timer pass's due rows, dispatched by every instance (dispatch_queue.py).
    dispatch_queue: str = DEFAULT_DISPATCH_QUEUE
    lookahead: timedelta = timedelta(seconds=120)
    http_timeout: timedelta = timedelta(seconds=60)
    # A claimed attempt's lease outlives the action's timeout by this much (to record it).
    lease_margin: timedelta = timedelta(seconds=30)
    history_max_age: timedelta = timedelta(days=60)
    history_max_rows: int = 1000
    # Finished broadcasts and their device records are deleted this long after they ended.
    broadcast_retention: timedelta = timedelta(days=30)
    output_max_bytes: int = 1024 * 1024  # a code-job attempt's output; the rest is cut
    max_jobs_per_collection: int | None = None
    min_recurrence: timedelta = timedelta(minutes=1)
    max_job_size: int = 16 * 1024
    request_limits: RequestLimits = DEFAULT_LIMITS
    outbound: OutboundPolicy = OutboundPolicy()  # what jobs may use of the app's identity/storage
    networks: NetworkPolicy = NetworkPolicy()  # non-public addresses HTTP actions may call
    aad_authority: str = DEFAULT_AUTHORITY  # without a trailing slash
    extra_ca_certs: str | None = None  # a PEM bundle that loaded at start-up
    identity: ManagedIdentity | None = None
    # IoT Hub shared access policies guarding /api/devices, /api/twins, /api/jobs/v2 (keys are
    # secrets: AccessPolicy keeps them out of its repr). None configured: every call is refused.
    iot_policies: tuple[AccessPolicy, ...] = ()
    # SCHEDULER_READ_ONLY: the API refuses every change (403) and the dashboard shows no button
    # that changes anything; the timer and the executors keep running.
    read_only: bool = False
    # Each known kind's own settings as its `configure` parsed them, by kind name.
    kind_settings: Mapping[str, Any] = field(default_factory=dict)

    def for_kind(self, kind: Kind[Any]) -> Any:
        """What `kind.configure` made of the app settings at start-up; a kind these settings were
        not parsed for (settings built by hand, in tests) gets its defaults (no app settings)."""
        if kind.name in self.kind_settings:
            return self.kind_settings[kind.name]
        return kind.configure({})

    def with_kinds(self, kinds: Iterable[Kind[Any]], env: Mapping[str, str]) -> Settings:
        """These settings plus the own settings of those `kinds` not parsed yet (kinds registered
        after `from_env`, by `Runtime.create(kinds=...)`); `ConfigError` for a bad one."""
        values = _present(env)
        added = {
            kind.name: kind.configure(values)
            for kind in kinds
            if kind.name not in self.kind_settings
        }
        return replace(self, kind_settings={**self.kind_settings, **added}) if added else self

    @property
    def due_table(self) -> str:
        return f"{self.table_prefix}Due"

    @property
    def collections_table(self) -> str:
        return f"{self.table_prefix}Collections"

    @property
    def devices_table(self) -> str:
        return f"{self.table_prefix}Devices"

    @property
    def broadcasts_table(self) -> str:
        return f"{self.table_prefix}Broadcasts"

    @property
    def continuous_table(self) -> str:
        return f"{self.table_prefix}Continuous"

    @property
    def activity_table(self) -> str:
        return f"{self.table_prefix}Activity"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Every setting typed and checked; `ConfigError` naming the first bad one. An empty
        value is the same as an absent one (the example settings file lists them empty), except
        for the names of the tables and the queue, which are never guessed."""
        env = os.environ if env is None else env
        values = _present(env)
        prefix = env.get(TABLE_PREFIX_SETTING, "Scheduler").strip()
        if not _TABLE_PREFIX.fullmatch(prefix):
            raise ConfigError(
                TABLE_PREFIX_SETTING, "must be 1-30 letters and digits, starting with a letter"
            )
        queue = env.get(EXECUTION_QUEUE_SETTING, DEFAULT_EXECUTION_QUEUE).strip()
        if not _QUEUE_NAME.fullmatch(queue):
            raise ConfigError(
                EXECUTION_QUEUE_SETTING,
                f"{queue!r} is not a queue name: 3-56 lower-case letters, digits and single "
                "dashes, starting and ending with a letter or digit",
            )
        device_queue = env.get(DEVICE_WORK_QUEUE_SETTING, DEFAULT_DEVICE_WORK_QUEUE).strip()
        if not _QUEUE_NAME.fullmatch(device_queue) or device_queue == queue:
            raise ConfigError(
                DEVICE_WORK_QUEUE_SETTING,
                f"{device_queue!r} is not a queue name (3-56 lower-case letters, digits and "
                "single dashes) other than the execution queue's",
            )
        dispatch_queue = env.get(DISPATCH_QUEUE_SETTING, DEFAULT_DISPATCH_QUEUE).strip()
        if not _QUEUE_NAME.fullmatch(dispatch_queue) or dispatch_queue in (queue, device_queue):
            raise ConfigError(
                DISPATCH_QUEUE_SETTING,
                f"{dispatch_queue!r} is not a queue name (3-56 lower-case letters, digits and "
                "single dashes) other than the execution and device-work queues'",
            )
        seconds = _Reader(values, _MAX_SECONDS).number
        count = _Reader(values, _MAX_COUNT).number
        max_jobs = values.get("SCHEDULER_MAX_JOBS_PER_COLLECTION")
        return cls(
            storage_connection=_storage_connection(values),
            table_prefix=prefix,
            execution_queue=queue,
            device_work_queue=device_queue,
            dispatch_queue=dispatch_queue,
            lookahead=timedelta(seconds=seconds("SCHEDULER_LOOKAHEAD_SECONDS", 120)),
            http_timeout=timedelta(seconds=seconds("SCHEDULER_HTTP_TIMEOUT_SECONDS", 60)),
            lease_margin=timedelta(seconds=seconds("SCHEDULER_LEASE_MARGIN_SECONDS", 30)),
            history_max_age=timedelta(
                days=_Reader(values, _MAX_DAYS).number("SCHEDULER_HISTORY_MAX_DAYS", 60)
            ),
            history_max_rows=count("SCHEDULER_HISTORY_MAX_ROWS", 1000),
            broadcast_retention=timedelta(
                days=_Reader(values, _MAX_DAYS).number("SCHEDULER_BROADCAST_RETENTION_DAYS", 30)
            ),
            output_max_bytes=count("SCHEDULER_OUTPUT_MAX_BYTES", 1024 * 1024, minimum=1024),
            max_jobs_per_collection=(
                count("SCHEDULER_MAX_JOBS_PER_COLLECTION", 0) if max_jobs else None
            ),
            # 0: no shortest recurrence for collections without SKU or quota.
            min_recurrence=timedelta(
                seconds=seconds("SCHEDULER_MIN_RECURRENCE_SECONDS", 60, minimum=0)
            ),
            max_job_size=count("SCHEDULER_MAX_JOB_SIZE", 16 * 1024),
            request_limits=RequestLimits(
                uri_length=count("SCHEDULER_MAX_REQUEST_URI_LENGTH", 2048),
                header_count=count("SCHEDULER_MAX_REQUEST_HEADER_COUNT", 50, minimum=0),
                headers_length=count("SCHEDULER_MAX_REQUEST_HEADERS_LENGTH", 4096),
                body_length=count("SCHEDULER_MAX_REQUEST_BODY_LENGTH", 8192),
            ),
            outbound=_parsed(QUEUE_CONNECTIONS_SETTING, OutboundPolicy.from_settings, values),
            networks=_parsed(NETWORKS_SETTING, NetworkPolicy.from_settings, values),
            aad_authority=_authority(values.get(AUTHORITY_SETTING, DEFAULT_AUTHORITY)),
            extra_ca_certs=_ca_bundle(values.get(EXTRA_CA_SETTING)),
            identity=_identity(values),
            iot_policies=_iot_policies(values.get(IOT_POLICIES_SETTING, "")),
            read_only=_flag(values, READ_ONLY_SETTING),
            kind_settings={kind.name: kind.configure(values) for kind in known_kinds().kinds},
        )


def _present(env: Mapping[str, str]) -> dict[str, str]:
    """The settings with a value, stripped: an empty value is the same as an absent one."""
    return {name: value.strip() for name, value in env.items() if value.strip()}


@dataclass(frozen=True)
class _Reader:
    values: Mapping[str, str]
    maximum: int

    def number(self, name: str, default: int, *, minimum: int = 1) -> int:
        text = self.values.get(name)
        if text is None:
            return default
        if not _WHOLE_NUMBER.fullmatch(text):
            raise ConfigError(name, f"{text!r} is not a whole number")
        number = int(text)
        if number < minimum:
            raise ConfigError(name, f"must be at least {minimum} (is {number})")
        if number > self.maximum:
            raise ConfigError(name, f"must be at most {self.maximum} (is {number})")
        return number


def _flag(values: Mapping[str, str], name: str) -> bool:
    """`true` or `false` (any case); absent is false. Anything else is a typo that would
    silently leave the app writable, so it stops the start."""
    text = values.get(name, "false").lower()
    if text not in ("true", "false"):
        raise ConfigError(name, f"{values[name]!r} is not true or false")
    return text == "true"


def _storage_connection(values: Mapping[str, str]) -> str:
    """SCHEDULER_STORAGE, else AzureWebJobsStorage; the value is a secret and never quoted."""
    name = OWN_STORAGE_SETTING if OWN_STORAGE_SETTING in values else STORAGE_SETTING
    connection = values.get(name)
    if connection is None:
        raise ConfigError(
            STORAGE_SETTING,
            f"must be set (or {OWN_STORAGE_SETTING}): the storage of the job tables and queue",
        )
    if not is_connection_string(connection):
        raise ConfigError(name, "is not a storage connection string")
    return connection


def _parsed(name: str, parse: Callable[[Mapping[str, str]], _T], env: Mapping[str, str]) -> _T:
    """A policy parser's ValueError ("NAME: reason") as a ConfigError."""
    try:
        return parse(env)
    except ValueError as error:
        raise ConfigError(name, str(error).removeprefix(f"{name}: ")) from None


def _authority(text: str) -> str:
    """An absolute https URL (http only on a loopback host, for local stand-ins): a client
    secret is sent there."""
    parts = urlsplit(text)
    host = parts.hostname or ""
    secure = parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host))
    if not secure or not host:
        raise ConfigError(
            AUTHORITY_SETTING,
            f"{text!r} is not an absolute https URL (http only for a loopback host)",
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigError(AUTHORITY_SETTING, "may not carry a user name or password")
    if parts.query or parts.fragment:
        raise ConfigError(AUTHORITY_SETTING, "may not have a query or a fragment")
    try:
        parts.port  # noqa: B018 (parsing it refuses a port outside 0-65535)
    except ValueError:
        raise ConfigError(AUTHORITY_SETTING, f"{text!r} has a port outside 0-65535") from None
    return text.rstrip("/")


def _iot_policies(text: str) -> tuple[AccessPolicy, ...]:
    try:
        return parse_policies(text)
    except ValueError as error:
        raise ConfigError(IOT_POLICIES_SETTING, str(error)) from None


def _identity(values: Mapping[str, str]) -> ManagedIdentity | None:
    endpoint = values.get(IDENTITY_ENDPOINT_SETTING)
    header = values.get(IDENTITY_HEADER_SETTING)
    if endpoint is None and header is None:
        return None
    if endpoint is None:
        raise ConfigError(
            IDENTITY_ENDPOINT_SETTING, f"must be set when {IDENTITY_HEADER_SETTING} is"
        )
    if header is None:
        raise ConfigError(
            IDENTITY_HEADER_SETTING, f"must be set when {IDENTITY_ENDPOINT_SETTING} is"
        )
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(IDENTITY_ENDPOINT_SETTING, f"{endpoint!r} is not an absolute http(s) URL")
    return ManagedIdentity(endpoint, header)


def _ca_bundle(path: str | None) -> str | None:
    """A readable PEM file of certificates, loaded once here to prove it."""
    if path is None:
        return None
    if not os.path.isfile(path):
        raise ConfigError(EXTRA_CA_SETTING, f"'{path}' is not a file")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except ssl.SSLError as error:
        reason = error.reason or "not PEM"
        raise ConfigError(
            EXTRA_CA_SETTING, f"'{path}' holds no PEM certificate ({reason})"
        ) from None
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(EXTRA_CA_SETTING, f"'{path}' cannot be read ({reason})") from None
    return path


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
