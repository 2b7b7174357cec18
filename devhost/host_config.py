"""host.json: the HTTP route prefix and the queue trigger settings (`extensions.queues`).

Defaults and limits follow the Functions host (storage extension 5.x) on a one-vCPU instance,
so a missing key behaves the same locally as in Azure.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# .NET TimeSpan text as host.json uses it: [d.]hh:mm[:ss[.fffffff]]
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,7}))?)?$")


def parse_timespan(text: str) -> timedelta:
    """Parse "00:00:01" / "00:00:00.500" / "1.02:00:00" (days.hours:minutes:seconds)."""
    match = _TIMESPAN.match(text.strip())
    if match is None:
        raise ValueError(f"not a TimeSpan (expected [d.]hh:mm:ss[.fff]): {text!r}")
    days, hours, minutes, seconds, fraction = match.groups()
    return timedelta(
        days=int(days or 0),
        hours=int(hours),
        minutes=int(minutes),
        seconds=int(seconds or 0),
        microseconds=round(float(f"0.{fraction}") * 1_000_000) if fraction else 0,
    )


@dataclass(frozen=True)
class QueueOptions:
    """`extensions.queues`; `new_batch_threshold` None means batch_size // 2 (host default)."""

    batch_size: int = 16
    new_batch_threshold: int | None = None
    max_polling_interval: timedelta = timedelta(minutes=1)
    visibility_timeout: timedelta = timedelta(0)
    max_dequeue_count: int = 5
    message_encoding: str = "base64"

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 32:
            raise ValueError(f"queues.batchSize must be between 1 and 32, not {self.batch_size}")
        if self.new_batch_threshold is not None and self.new_batch_threshold < 0:
            raise ValueError("queues.newBatchThreshold must not be negative")
        if self.max_polling_interval < timedelta(milliseconds=100):
            raise ValueError("queues.maxPollingInterval must be at least 00:00:00.100")
        if self.visibility_timeout < timedelta(0):
            raise ValueError("queues.visibilityTimeout must not be negative")
        if self.max_dequeue_count < 1:
            raise ValueError("queues.maxDequeueCount must be at least 1")
        if self.message_encoding not in ("base64", "none"):
            raise ValueError("queues.messageEncoding must be 'base64' or 'none'")

    @property
    def threshold(self) -> int:
        """Fetch a new batch once this few messages (or fewer) are still running."""
        if self.new_batch_threshold is None:
            return self.batch_size // 2
        return self.new_batch_threshold


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    queues: QueueOptions = field(default_factory=QueueOptions)


def load_host_config(project_dir: Path) -> HostConfig:
    """Read `<project_dir>/host.json`; a missing file gives the host's defaults."""
    path = project_dir / "host.json"
    if not path.exists():
        logger.warning("%s not found: using the host's defaults", path)
        return HostConfig()
    return parse_host_config(json.loads(path.read_text(encoding="utf-8")))


def parse_host_config(document: dict[str, Any]) -> HostConfig:
    extensions = document.get("extensions") or {}
    http = extensions.get("http") or {}
    queues = extensions.get("queues") or {}
    defaults = QueueOptions()

    def span(key: str, default: timedelta) -> timedelta:
        return parse_timespan(queues[key]) if key in queues else default

    threshold = queues.get("newBatchThreshold")
    return HostConfig(
        route_prefix=str(http.get("routePrefix", "api")).strip("/"),
        queues=QueueOptions(
            batch_size=int(queues.get("batchSize", defaults.batch_size)),
            new_batch_threshold=None if threshold is None else int(threshold),
            max_polling_interval=span("maxPollingInterval", defaults.max_polling_interval),
            visibility_timeout=span("visibilityTimeout", defaults.visibility_timeout),
            max_dequeue_count=int(queues.get("maxDequeueCount", defaults.max_dequeue_count)),
            message_encoding=str(queues.get("messageEncoding", "base64")).lower(),
        ),
    )
