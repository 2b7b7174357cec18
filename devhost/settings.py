"""App settings: `local.settings.json` into `os.environ`, and `%NAME%` binding expressions.

Like Core Tools, the `Values` of local.settings.json become environment variables before the
app is imported, but a variable already set in the environment wins.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

logger = logging.getLogger(__name__)

LOCAL_SETTINGS = "local.settings.json"
EXAMPLE_SETTINGS = "local.settings.example.json"
_EXPRESSION = re.compile(r"%([^%]+)%")


def load_local_settings(project_dir: Path) -> dict[str, str]:
    """The `Values` of local.settings.json, created from the committed example when missing."""
    path = project_dir / LOCAL_SETTINGS
    example = project_dir / EXAMPLE_SETTINGS
    if not path.exists():
        if not example.exists():
            logger.info("No %s or %s: using the environment only", LOCAL_SETTINGS, EXAMPLE_SETTINGS)
            return {}
        shutil.copyfile(example, path)
        logger.info("Created %s from %s", path, EXAMPLE_SETTINGS)
    values = json.loads(path.read_text(encoding="utf-8")).get("Values") or {}
    return {str(name): _as_text(value) for name, value in values.items()}


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class EnvironmentPatch:
    """Sets variables in `os.environ` and can put the old values back (tests run many hosts)."""

    def __init__(self) -> None:
        self._previous: dict[str, str | None] = {}

    def apply(self, defaults: Mapping[str, str], overrides: Mapping[str, str]) -> None:
        """`defaults` only fill gaps in the environment; `overrides` always win."""
        for name, value in defaults.items():
            if name not in os.environ:
                self._set(name, value)
        for name, value in overrides.items():
            self._set(name, value)

    def _set(self, name: str, value: str) -> None:
        self._previous.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def restore(self) -> None:
        for name, value in self._previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._previous.clear()


def resolve(text: str, settings: Mapping[str, str]) -> str:
    """Replace every `%NAME%` with the app setting NAME, as the host does in binding properties."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in settings:
            raise LookupError(f"app setting {name!r} (used as %{name}%) is not defined")
        return settings[name]

    return _EXPRESSION.sub(lookup, text)


def connection_string(connection: str | None, settings: Mapping[str, str]) -> str:
    """The storage connection string a binding's `connection` names (default AzureWebJobsStorage).

    The host also accepts the name with an `AzureWebJobs` prefix, so both are looked up.
    """
    name = connection or "AzureWebJobsStorage"
    for candidate in (name, f"AzureWebJobs{name}"):
        if settings.get(candidate):
            return settings[candidate]
    raise LookupError(f"app setting {name!r} (a storage connection string) is not defined")


def is_disabled(function_name: str, settings: Mapping[str, str]) -> bool:
    """The host's switch to turn one function off: `AzureWebJobs.<name>.Disabled` = true/1."""
    value = settings.get(f"AzureWebJobs.{function_name}.Disabled", "")
    return value.strip().lower() in ("true", "1")


REQUEST_BODY_LIMIT_SETTING = "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"
DEFAULT_REQUEST_BODY_LIMIT = 104_857_600  # 100 MB, the Functions host's documented default


def request_body_limit(settings: Mapping[str, str]) -> int:
    """The largest request body in bytes, from the host's own setting (empty: the default).

    A value that is not a positive whole number stops the start-up: a typo must not turn the
    limit off or make every upload fail.
    """
    text = settings.get(REQUEST_BODY_LIMIT_SETTING, "").strip()
    if not text:
        return DEFAULT_REQUEST_BODY_LIMIT
    if not (text.isascii() and text.isdigit()) or int(text) == 0:
        raise ValueError(
            f"app setting {REQUEST_BODY_LIMIT_SETTING} must be a positive number of bytes, "
            f"not {text[:40]!r}"
        )
    return int(text)
