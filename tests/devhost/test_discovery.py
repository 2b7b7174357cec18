"""Functions come from `app.get_functions()` only: names, triggers, settings, disabled ones."""

from __future__ import annotations

import json

import azure.functions as func
import pytest

from devhost.functions import discover, load_app
from devhost.host import DevHost

SETTINGS = {"SAMPLE_SCHEDULE": "*/5 * * * * *", "SAMPLE_QUEUE": "sample-work"}


def test_discovery_lists_exactly_the_sample_apps_functions(tmp_path):
    specs = discover(load_app("tests.devhost.sample_app:app"), SETTINGS, tmp_path)

    assert {s.name: s.trigger_type for s in specs} == {
        "echo_item": "httpTrigger",
        "hello": "httpTrigger",
        "broken": "httpTrigger",
        "tick": "timerTrigger",
        "work": "queueTrigger",
    }
    by_name = {s.name: s for s in specs}
    assert by_name["tick"].trigger["schedule"] == "*/5 * * * * *"
    assert by_name["work"].trigger["queueName"] == "sample-work"
    assert by_name["work"].trigger["connection"] == "SampleStorage"
    assert by_name["hello"].wants_context
    assert not by_name["echo_item"].wants_context


def test_the_asgi_app_has_one_catch_all_http_function(tmp_path):
    [spec] = discover(load_app("tests.devhost.sample_app:asgi_app"), {}, tmp_path)

    assert spec.name == "http_app_func"
    assert spec.trigger["route"] == "/{*route}"
    assert spec.wants_context


def test_disabled_functions_are_left_out(tmp_path):
    settings = {"AzureWebJobs.tick.Disabled": "true", "AzureWebJobs.work.Disabled": "true"}

    specs = discover(load_app("tests.devhost.sample_app:app"), settings, tmp_path)

    assert {s.name for s in specs} == {"echo_item", "hello", "broken"}


def test_a_missing_setting_names_the_function_and_the_setting(tmp_path):
    with pytest.raises(LookupError, match=r"function tick: .*SAMPLE_SCHEDULE"):
        discover(load_app("tests.devhost.sample_app:app"), {}, tmp_path)


@pytest.mark.integration
async def test_a_started_host_reports_its_functions(tmp_path, storage_connection, unique_name):
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0"}))
    settings = {
        "SAMPLE_SCHEDULE": "0 0 0 1 1 *",
        "SAMPLE_QUEUE": unique_name,
        "SampleStorage": storage_connection,
    }
    async with DevHost(
        "tests.devhost.sample_app:app", project_dir=tmp_path, settings_overrides=settings, port=0
    ) as host:
        assert host.functions == {
            "echo_item": "httpTrigger",
            "hello": "httpTrigger",
            "broken": "httpTrigger",
            "tick": "timerTrigger",
            "work": "queueTrigger",
        }
        assert host.api_url == f"http://127.0.0.1:{host.http_port}/api"


def test_functions_devhost_cannot_run_are_skipped_with_a_warning(tmp_path, caplog):
    other = func.FunctionApp()

    @other.blob_trigger(arg_name="blob", path="in/{name}", connection="AzureWebJobsStorage")
    def on_blob(blob: func.InputStream) -> None: ...

    @other.route(route="out")
    @other.queue_output(arg_name="out", queue_name="q", connection="AzureWebJobsStorage")
    def with_output(req: func.HttpRequest, out: func.Out[str]) -> str:
        return ""

    @other.route(route="plain")
    def plain(req: func.HttpRequest) -> str:
        return ""

    specs = discover(other, {}, tmp_path)

    assert [s.name for s in specs] == ["plain"]
    assert "on_blob is NOT run by devhost" in caplog.text
    assert "with_output is NOT run by devhost" in caplog.text
