"""Start and stop a private Azurite (from node_modules) for tests, benchmarks and `make run`."""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SERVICES = ("blob", "queue", "table")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = PROJECT_ROOT / "node_modules" / ".bin" / "azurite"

# The well-known development account of the storage emulator (public, not a secret).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

# Azurite closes a connection idle for 5 s; Azure Storage keeps one open for minutes. A client
# whose event loop is busy (a burst) only notices such a close when it next sends on the
# connection, and gets "Connection reset by peer", again on each retry that picks another one.
# Azure's clients (aiohttp: 15 s) close idle connections first when the server waits longer.
IDLE_CONNECTION_SECONDS = 120

_LISTENING = re.compile(
    r"Azurite (Blob|Queue|Table) service is successfully listening at \S+:(\d+)"
)


def connection_string(blob_port: int, queue_port: int, table_port: int) -> str:
    """The explicit devstoreaccount1 connection string (storage-queue rejects the shortcut)."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{blob_port}/{DEV_ACCOUNT};"
        f"QueueEndpoint=http://127.0.0.1:{queue_port}/{DEV_ACCOUNT};"
        f"TableEndpoint=http://127.0.0.1:{table_port}/{DEV_ACCOUNT};"
    )


@dataclass
class Azurite:
    """A running Azurite process; `stop()` ends it by its own pid."""

    process: subprocess.Popen[str]
    ports: dict[str, int]

    @property
    def connection_string(self) -> str:
        return connection_string(self.ports["Blob"], self.ports["Queue"], self.ports["Table"])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_azurite(
    *, location: Path | None = None, ports: tuple[int, int, int] = (0, 0, 0), timeout: float = 30
) -> Azurite:
    """Start Azurite in memory (or persisted under `location`) and wait until it listens.

    Port 0 lets Azurite pick free ports; the real ones are read from its start-up lines.
    """
    if not AZURITE_BIN.exists():
        raise RuntimeError(f"{AZURITE_BIN} is missing: run `npm ci` (the Makefile does)")
    args = [
        str(AZURITE_BIN),
        "--disableTelemetry",
        "--silent",
        "--skipApiVersionCheck",
        "--blobPort",
        str(ports[0]),
        "--queuePort",
        str(ports[1]),
        "--tablePort",
        str(ports[2]),
        *(f"--{service}KeepAliveTimeout={IDLE_CONNECTION_SECONDS}" for service in SERVICES),
    ]
    if location is None:
        args.append("--inMemoryPersistence")
    else:
        location.mkdir(parents=True, exist_ok=True)
        args += ["--location", str(location)]
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    found: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while len(found) < 3:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"Azurite exited early (code {process.wait()})")
        match = _LISTENING.search(line)
        if match:
            found[match.group(1)] = int(match.group(2))
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("Azurite did not start in time")
    # Keep draining its output so a full pipe never blocks it.
    _drain_in_background(process)
    return Azurite(process=process, ports=found)


def _drain_in_background(process: subprocess.Popen[str]) -> None:
    import threading

    def drain() -> None:
        assert process.stdout is not None
        for _ in process.stdout:
            pass

    threading.Thread(target=drain, daemon=True).start()
