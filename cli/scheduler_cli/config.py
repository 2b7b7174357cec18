"""Where `sched` finds the app and its keys: flags, then environment variables, then a named
profile of the profile file, then the local host's default URL.

The variables are `SCHED_*`, not `SCHEDULER_*`: those are the app's own settings, and a shell
that runs both the app and the CLI must not mix them up."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scheduler_cli.errors import usage_error

DEFAULT_URL = "http://localhost:7071/api"
OUTPUT_FORMATS = ("table", "json", "yaml")
ENV_PREFIX = "SCHED_"
# The keys a profile may hold, each also a SCHED_<KEY> variable.
PROFILE_KEYS = ("url", "key", "iot_connection_string", "collection", "output")


@dataclass(frozen=True)
class IotPolicy:
    """A shared access policy of the IoT Hub paths (devices, twins, broadcasts)."""

    name: str
    key: str  # base64, as in the connection string


@dataclass(frozen=True)
class Config:
    url: str
    key: str | None
    iot: IotPolicy | None
    collection: str | None
    output: str


def config_path() -> Path:
    """`SCHED_CONFIG`, else `$XDG_CONFIG_HOME/sched/config.yaml` (~/.config/sched/config.yaml)."""
    explicit = os.environ.get("SCHED_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "sched" / "config.yaml"


def load_config(flags: dict[str, str | None], profile: str | None) -> Config:
    """Flags win over SCHED_* variables, which win over the profile."""
    values = _profile_values(profile or os.environ.get("SCHED_PROFILE"))
    for key in PROFILE_KEYS:
        env = os.environ.get(ENV_PREFIX + key.upper())
        if env:
            values[key] = env
        flag = flags.get(key)
        if flag:
            values[key] = flag
    output = values.get("output") or "table"
    if output not in OUTPUT_FORMATS:
        raise usage_error(f"output must be one of {', '.join(OUTPUT_FORMATS)}, not {output!r}")
    iot_text = values.get("iot_connection_string")
    return Config(
        url=(values.get("url") or DEFAULT_URL).rstrip("/"),
        key=values.get("key") or None,
        iot=parse_iot_connection_string(iot_text) if iot_text else None,
        collection=values.get("collection") or None,
        output=output,
    )


def _profile_values(name: str | None) -> dict[str, str]:
    """The named profile (or `default_profile`, or `default`); a named one must exist."""
    path = config_path()
    if not path.exists():
        if name:
            raise usage_error(f"profile {name!r}: the profile file {path} does not exist")
        return {}
    try:
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise usage_error(f"cannot read the profile file {path}: {error}") from None
    profiles = document.get("profiles") if isinstance(document, dict) else None
    if not isinstance(profiles, dict):
        raise usage_error(f"{path}: expected a mapping 'profiles: {{name: {{url: ...}}}}'")
    chosen = name or document.get("default_profile") or "default"
    profile = profiles.get(chosen)
    if profile is None:
        if name:
            known = ", ".join(sorted(str(p) for p in profiles)) or "none"
            raise usage_error(f"no profile {name!r} in {path} (profiles: {known})")
        return {}
    if not isinstance(profile, dict):
        raise usage_error(f"{path}: profile {chosen!r} must be a mapping")
    unknown = set(profile) - set(PROFILE_KEYS)
    if unknown:
        raise usage_error(
            f"{path}: profile {chosen!r} has unknown keys {sorted(unknown)}; "
            f"known: {', '.join(PROFILE_KEYS)}"
        )
    return {str(k): str(v) for k, v in profile.items() if v is not None}


def parse_iot_connection_string(text: str) -> IotPolicy:
    """`HostName=...;SharedAccessKeyName=...;SharedAccessKey=...` (HostName is not needed: the
    signature names the URL the CLI calls)."""
    parts: dict[str, str] = {}
    for item in text.split(";"):
        key, sep, value = item.partition("=")
        if sep:
            parts[key.strip()] = value.strip()
    policy_name, policy_key = parts.get("SharedAccessKeyName"), parts.get("SharedAccessKey")
    if not policy_name or not policy_key:
        raise usage_error(
            "the IoT connection string needs SharedAccessKeyName and SharedAccessKey "
            "(HostName=...;SharedAccessKeyName=...;SharedAccessKey=...)"
        )
    return IotPolicy(policy_name, policy_key)
