"""A gate a handler in another process waits at: it connects over TCP and reads one line; the
test sees that it arrived (the attempt is under way) and answers when it chooses. An event the
test controls across the process boundary, with no sleeps."""

from __future__ import annotations

import queue
import socket
import threading
from types import TracebackType


class Visitor:
    """One waiting connection: answer it once."""

    def __init__(self, connection: socket.socket) -> None:
        self._connection = connection

    def answer(self, text: str) -> None:
        with self._connection:
            self._connection.sendall(text.encode() + b"\n")


class Gate:
    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._arrivals: queue.Queue[Visitor] = queue.Queue()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.getsockname()[:2]
        return f"{host}:{port}"

    def __enter__(self) -> Gate:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (Linux)
        except OSError:
            pass
        self._server.close()
        self._thread.join(5)

    def next_visitor(self, timeout: float = 30) -> Visitor:
        """Waits until a handler has arrived (raises queue.Empty after `timeout`)."""
        return self._arrivals.get(timeout=timeout)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:  # closed
                return
            self._arrivals.put(Visitor(connection))
