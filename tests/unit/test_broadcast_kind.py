"""The Broadcast kind's names and setting: a broadcast's start job name, an occurrence's
broadcast id, and `SCHEDULER_BROADCAST_WAIT_SECONDS`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.broadcasts.model import check_job_id
from shared.broadcasts.starts import start_job_name, start_second
from shared.config import Settings
from shared.errors import ConfigError
from shared.kinds.base import ActionContext
from shared.kinds.broadcast import BROADCAST, occurrence_broadcast_id
from shared.names import check_name

NIGHT = datetime(2030, 5, 6, 2, 0, 0, tzinfo=UTC)


def context(job: str, nominal: datetime, collection: str = "c") -> ActionContext:
    return ActionContext(
        collection=collection,
        job=job,
        nominal=nominal,
        attempt_tag="t",
        request_id="r",
        idempotency_key=f"s|g|{collection}/{job}/{nominal.isoformat()}",
        retry_count=0,
        repeat_count=0,
        default_timeout=timedelta(seconds=30),
        settings=Settings(storage_connection="x"),
    )


def test_a_start_job_is_named_after_its_broadcast_and_every_broadcast_id_gets_its_own():
    assert start_job_name("plain_id-1") == "plain_id-1"
    dotted = start_job_name("fw.2:site@berlin")
    assert check_name("jobName", dotted) == dotted
    assert dotted.startswith("fw-2-site-berlin--")
    assert start_job_name("fw-2-site-berlin") != dotted
    assert start_job_name("a.b") != start_job_name("a:b")
    assert check_name("jobName", start_job_name(":" * 64))


def test_a_start_job_fires_at_the_second_of_the_start_or_after_it():
    assert start_second(NIGHT) == NIGHT
    assert start_second(NIGHT + timedelta(milliseconds=300)) == NIGHT + timedelta(seconds=1)


def test_an_occurrence_has_one_broadcast_id_a_valid_one_of_64_characters_at_most():
    long_name = "n" * 100
    first = occurrence_broadcast_id(context(long_name, NIGHT))
    assert len(first) <= 64 and check_job_id(first) == first
    assert first.startswith("n" * 32 + "@20300506T020000Z.")
    assert occurrence_broadcast_id(context(long_name, NIGHT)) == first  # every attempt
    assert occurrence_broadcast_id(context(long_name, NIGHT + timedelta(days=1))) != first
    assert occurrence_broadcast_id(context(long_name, NIGHT, collection="d")) != first


def test_the_wait_setting_is_checked_at_start_up():
    assert BROADCAST.configure({}).wait == timedelta(seconds=300)
    assert BROADCAST.configure({"SCHEDULER_BROADCAST_WAIT_SECONDS": "45"}).wait == timedelta(
        seconds=45
    )
    for bad in ("0", "481", "ten", "-5"):
        with pytest.raises(ConfigError, match="SCHEDULER_BROADCAST_WAIT_SECONDS"):
            BROADCAST.configure({"SCHEDULER_BROADCAST_WAIT_SECONDS": bad})
