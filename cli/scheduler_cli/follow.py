"""Following output as it is written: one attempt's (long polling its output URL), and one run
of a job (the URL `job run` gets back) to its end — the output of each of its attempts in order,
the one under way followed, the ended ones whole — then the run's status, which decides the
exit code."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import click

from scheduler_cli.client import FOLLOW_TIMEOUT_SECONDS, Api, ApiError

# Between reads of a run waiting for its next attempt (queued, or a retry's interval).
POLL_SECONDS = 0.5


def attempt_key(output_url: str) -> str:
    """`m000`/`e001`: the phase and number ending an attempt's id, the same in the running
    attempt's `current-...` link and in its history row's."""
    return output_url.rstrip("/").rsplit("/", 2)[-2].rsplit("-", 1)[-1]


def follow_run(api: Api, location: str, interval: float = POLL_SECONDS) -> str:
    """Prints the run's attempts' output until it ends; returns its status (`Completed`, ...)."""
    printed: set[str] = set()
    while True:
        run: dict[str, Any] = api.get(location)["properties"]
        for attempt in run.get("attempts") or []:
            output = attempt.get("output")
            if output and attempt_key(output) not in printed:
                printed.add(attempt_key(output))
                _announce(attempt.get("actionName"), attempt.get("retryCount"))
                _print_ended(api, output)
        if run.get("state") == "Ended":
            return str(run.get("status"))
        current = run.get("output")
        if run.get("state") == "Running" and current and attempt_key(current) not in printed:
            printed.add(attempt_key(current))
            _announce(run.get("actionName"), run.get("retryCount"))
            follow_attempt(api, location, current)
            continue
        time.sleep(interval)


def follow_attempt(api: Api, location: str, output: str) -> None:
    """The output of the attempt under way of the run at `location`, until it ends."""

    def still_running() -> bool:
        now = api.get(location)["properties"]
        return bool(now.get("state") == "Running" and now.get("output") == output)

    try:
        print_output(api, output, follow=True, starting=still_running)
    except ApiError as error:
        if error.status != 404:  # an attempt that ended before writing a line has no output
            raise


def _print_ended(api: Api, output: str) -> None:
    try:
        print_output(api, output, follow=False)
    except ApiError as error:
        if error.status != 404:  # pruned since the run was read
            raise


def _announce(action: Any, attempt: Any) -> None:
    click.echo(f"-- {action} attempt {attempt} --", err=True)


def print_output(
    api: Api, url: str, follow: bool, starting: Callable[[], bool] | None = None
) -> None:
    """The whole output, then (when following and not ended) what the long poll brings.

    An attempt's output exists from its first line on: while `starting()` says the run has not
    ended, a 404 means "nothing written yet", and is asked again."""
    offset = 0
    stdout = sys.stdout.buffer
    while True:
        if offset == 0 and not follow:
            response = api.send("GET", url)
        else:
            response = api.send(
                "GET",
                url,
                params={"follow": "true", "offset": offset},
                timeout=FOLLOW_TIMEOUT_SECONDS,
                ok=(404,) if starting is not None and offset == 0 else (),
            )
            if response.status_code == 404:
                if starting is not None and starting():
                    time.sleep(0.3)
                    continue
                raise ApiError(response)
        stdout.write(response.content)
        stdout.flush()
        offset += len(response.content)
        if not follow:
            return
        ended = response.headers.get("X-Output-Ended") == "true"
        if ended and int(response.headers.get("X-Output-Size", offset)) <= offset:
            return
