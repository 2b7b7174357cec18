"""The WebJob kind: WebJobs folders (Kudu's layout) run as child processes."""

from __future__ import annotations

from shared.kinds.webjob.kind import WEBJOB, WebJobKind, WebJobSettings

__all__ = ["WEBJOB", "WebJobKind", "WebJobSettings"]
