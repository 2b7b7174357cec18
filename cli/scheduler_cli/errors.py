"""The exit codes scripts can rely on, and the one error type that carries them.

Click itself exits with 2 on a bad flag or argument; every other failure is a `CliError`
whose code says what kind of failure it was (README "Command line")."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the operation ended in failure (a broadcast failed or was cancelled, a run failed)
    USAGE = 2  # a bad flag, argument, file or configuration (Click's own code for bad usage)
    NOT_FOUND = 3  # HTTP 404
    REFUSED = 4  # any other 4xx: the API refused the request (400 names the field)
    UNAUTHORIZED = 5  # HTTP 401/403: a missing or wrong key or signature
    UNREACHABLE = 6  # no answer: connection refused, DNS, timeout, TLS
    SERVER = 7  # HTTP 5xx


class CliError(Exception):
    """Printed as `Error: <message>` on stderr by the root group; the process exits with
    `code`."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def usage_error(message: str) -> CliError:
    return CliError(message, ExitCode.USAGE)
