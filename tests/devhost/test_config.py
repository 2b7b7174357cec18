"""Settings and host.json: precedence, `%NAME%` expressions, TimeSpans and queue defaults."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest

from devhost.host_config import HostConfig, QueueOptions, parse_host_config, parse_timespan
from devhost.queues import Backoff, decode_body
from devhost.settings import (
    EnvironmentPatch,
    connection_string,
    is_disabled,
    load_local_settings,
    resolve,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00:00:01", timedelta(seconds=1)),
        ("00:00:00.500", timedelta(milliseconds=500)),
        ("00:00:00.1", timedelta(milliseconds=100)),
        ("00:10:00", timedelta(minutes=10)),
        ("1.02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("01:30", timedelta(hours=1, minutes=30)),
    ],
)
def test_parse_timespan(text, expected):
    assert parse_timespan(text) == expected


@pytest.mark.parametrize("text", ["1s", "", "00:00:01:00", "abc"])
def test_parse_timespan_rejects_other_text(text):
    with pytest.raises(ValueError, match="TimeSpan"):
        parse_timespan(text)


def test_an_empty_host_json_gives_the_host_defaults():
    config = parse_host_config({"version": "2.0"})

    assert config == HostConfig()
    assert config.route_prefix == "api"
    assert config.queues.batch_size == 16
    assert config.queues.threshold == 8
    assert config.queues.max_polling_interval == timedelta(minutes=1)
    assert config.queues.visibility_timeout == timedelta(0)
    assert config.queues.max_dequeue_count == 5
    assert config.queues.message_encoding == "base64"


def test_host_json_values_are_read():
    config = parse_host_config(
        {
            "extensions": {
                "http": {"routePrefix": "/v1/"},
                "queues": {
                    "batchSize": 4,
                    "newBatchThreshold": 0,
                    "maxPollingInterval": "00:00:00.500",
                    "visibilityTimeout": "00:00:05",
                    "maxDequeueCount": 2,
                    "messageEncoding": "None",
                },
            }
        }
    )

    assert config.route_prefix == "v1"
    assert config.queues == QueueOptions(
        batch_size=4,
        new_batch_threshold=0,
        max_polling_interval=timedelta(milliseconds=500),
        visibility_timeout=timedelta(seconds=5),
        max_dequeue_count=2,
        message_encoding="none",
    )
    assert config.queues.threshold == 0


@pytest.mark.parametrize(
    "queues",
    [
        {"batchSize": 33},
        {"batchSize": 0},
        {"maxPollingInterval": "00:00:00.050"},
        {"maxDequeueCount": 0},
    ],
)
def test_out_of_range_queue_settings_are_rejected(queues):
    with pytest.raises(ValueError, match="queues"):
        parse_host_config({"extensions": {"queues": queues}})


def test_local_settings_are_created_from_the_example(tmp_path):
    example = {"IsEncrypted": False, "Values": {"A": "1", "FLAG": True}}
    (tmp_path / "local.settings.example.json").write_text(json.dumps(example))

    values = load_local_settings(tmp_path)

    assert values == {"A": "1", "FLAG": "true"}
    assert json.loads((tmp_path / "local.settings.json").read_text()) == example


def test_without_any_settings_file_only_the_environment_is_used(tmp_path):
    assert load_local_settings(tmp_path) == {}
    assert not (tmp_path / "local.settings.json").exists()


def test_environment_wins_over_local_settings_and_overrides_win_over_both(monkeypatch):
    monkeypatch.setenv("DEVHOST_T_ENV", "from-env")
    monkeypatch.delenv("DEVHOST_T_FILE", raising=False)
    patch = EnvironmentPatch()

    patch.apply(
        {"DEVHOST_T_ENV": "from-file", "DEVHOST_T_FILE": "from-file"},
        {"DEVHOST_T_OVERRIDE": "forced"},
    )
    assert os.environ["DEVHOST_T_ENV"] == "from-env"
    assert os.environ["DEVHOST_T_FILE"] == "from-file"
    assert os.environ["DEVHOST_T_OVERRIDE"] == "forced"

    patch.restore()
    assert os.environ["DEVHOST_T_ENV"] == "from-env"
    assert "DEVHOST_T_FILE" not in os.environ
    assert "DEVHOST_T_OVERRIDE" not in os.environ


def test_binding_expressions_are_resolved_from_settings():
    settings = {"QUEUE": "runs", "ENV": "dev"}

    assert resolve("%QUEUE%", settings) == "runs"
    assert resolve("%QUEUE%-%ENV%", settings) == "runs-dev"
    assert resolve("literal", settings) == "literal"
    with pytest.raises(LookupError, match="MISSING"):
        resolve("%MISSING%", settings)


def test_connection_names_a_setting_with_or_without_the_azurewebjobs_prefix():
    settings = {"AzureWebJobsStorage": "default", "AzureWebJobsOther": "other", "Mine": "mine"}

    assert connection_string(None, settings) == "default"
    assert connection_string("Mine", settings) == "mine"
    assert connection_string("Other", settings) == "other"
    with pytest.raises(LookupError, match="Nope"):
        connection_string("Nope", settings)


def test_a_function_is_disabled_by_its_azurewebjobs_setting():
    assert is_disabled("tick", {"AzureWebJobs.tick.Disabled": "True"})
    assert is_disabled("tick", {"AzureWebJobs.tick.Disabled": "1"})
    assert not is_disabled("tick", {"AzureWebJobs.tick.Disabled": "false"})
    assert not is_disabled("tick", {})


def test_queue_bodies_are_base64_unless_encoding_is_none():
    assert decode_body("aMOpbGxv", "base64") == "héllo".encode()
    assert decode_body("plain", "none") == b"plain"
    with pytest.raises(ValueError, match="TextBase64EncodePolicy"):
        decode_body("not base64!", "base64")


def test_polling_backs_off_exponentially_up_to_the_maximum_and_resets():
    backoff = Backoff(0.1, 1.0)

    delays = [backoff.next_delay() for _ in range(8)]

    assert 0.1 < delays[0] < 0.25
    assert all(later >= earlier for earlier, later in zip(delays, delays[1:], strict=False))
    assert delays[-1] == 1.0
    backoff.reset()
    assert backoff.next_delay() < 0.25
