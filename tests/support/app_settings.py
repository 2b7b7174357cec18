"""The app settings every test that starts the app needs: its own storage names, so tests share
one Azurite without meeting, and loopback targets allowed (every test server is on 127.0.0.1).

One place, so a setting the app comes to require (a queue a new trigger binds to) is added once."""

from __future__ import annotations


def app_settings(connection: str, prefix: str, **extra: str) -> dict[str, str]:
    """Settings for an app with tables `{prefix}...` and queues `{prefix}-...`; `extra` wins."""
    queue = prefix.lower()
    return {
        "AzureWebJobsStorage": connection,
        "SCHEDULER_TABLE_PREFIX": prefix,
        "SCHEDULER_EXECUTION_QUEUE": f"{queue}-exec",
        "SCHEDULER_DEVICE_WORK_QUEUE": f"{queue}-dw",
        "SCHEDULER_DISPATCH_QUEUE": f"{queue}-disp",
        "SCHEDULER_ALLOWED_NETWORKS": "loopback",
        **extra,
    }
