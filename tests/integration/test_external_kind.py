"""An action kind registered from outside the app's code works end to end: the API validates and
shows its actions, the OpenAPI document lists its payload, and the executor runs it with its own
timeout and scrubs its secrets from history, against the test Azurite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from shared.config import Settings
from shared.errors import ConfigError, InvalidRequest
from shared.kinds.base import ActionContext, ActionOutcome, ActionRunner, Kind
from shared.kinds.registry import known_kinds, register_kinds, unregister_kind
from shared.model.actions import JobErrorAction
from shared.model.common import ApiModel, Integer
from shared.model.job import HistoryStatus, JobState
from shared.names import CollectionRef
from shared.runtime import Runtime
from tests.support.engine import api_client, make_settings, work_queue

pytestmark = pytest.mark.integration

REF = CollectionRef.parse("notes")
JOB = "/api/jobCollections/notes/jobs/jot"


class NoteLine(ApiModel):
    """The test kind's payload: a line to append to a local file, with a write-only token."""

    path: str
    line: str
    token: str
    timeout_seconds: Integer = Field(default=5, ge=1, le=60)


class NoteRunner:
    """A real local side effect: appends the line (after the kind's own setting `NOTE_PREFIX`);
    its message echoes the token (to scrub)."""

    def __init__(self, kind: NoteKind) -> None:
        self.closed = False
        self.kind = kind

    async def run(self, action: JobErrorAction, context: ActionContext) -> ActionOutcome:
        note = action.payload_as(NoteLine)
        assert note is not None
        prefix = context.settings.for_kind(self.kind)
        with Path(note.path).open("a", encoding="utf-8") as file:
            file.write(prefix + note.line + "\n")
        return ActionOutcome(True, f"Note Action - wrote for {context.job} with {note.token}")

    async def aclose(self) -> None:
        self.closed = True


class NoteKind(Kind[NoteLine]):
    type_names = ("Note",)
    payload_field = "note"
    payload_model = NoteLine

    def __init__(self) -> None:
        self.runners: list[NoteRunner] = []

    def runner(self, settings: Settings) -> ActionRunner:
        self.runners.append(NoteRunner(self))
        return self.runners[-1]

    def timeout(self, payload: NoteLine, settings: Settings) -> timedelta:
        return timedelta(seconds=payload.timeout_seconds)

    def secrets(self, payload: NoteLine, app_settings: Mapping[str, str]) -> list[str]:
        return [payload.token]

    def public_json(self, payload: NoteLine) -> dict[str, Any]:
        return payload.model_dump(mode="json", by_alias=True, exclude={"token"})

    def configure(self, app_settings: Mapping[str, str]) -> str:
        prefix = app_settings.get("NOTE_PREFIX", "")
        if not prefix.isalnum() and prefix:
            raise ConfigError("NOTE_PREFIX", "must be letters and digits")
        return f"{prefix}: " if prefix else ""

    def carry_secrets(self, payload_json: dict[str, Any], stored: NoteLine, path: str) -> Any:
        if "token" in payload_json:
            return payload_json
        if payload_json.get("path") != stored.path:
            raise InvalidRequest(f"{path}.token", "must be given again for another path")
        return {**payload_json, "token": stored.token}


@pytest.fixture
async def note_runtime(storage_connection: str, unique_name: str) -> AsyncIterator[Runtime]:
    kind = NoteKind()
    runtime = await Runtime.create(
        make_settings(storage_connection, unique_name),
        app_settings={"NOTE_PREFIX": "pre"},
        kinds=[kind],
    )
    try:
        yield runtime
    finally:
        await runtime.close()
        unregister_kind(kind)
    assert kind.runners and kind.runners[0].closed, "the runtime closes the kind's runner"


def note_job(path: Path, **note: Any) -> dict[str, Any]:
    payload = {"path": str(path), "line": "hello", "token": "tok-s3cr3t-42", **note}
    return {"properties": {"action": {"type": "note", "note": payload}}}


async def test_a_registered_kind_is_validated_shown_and_run(
    note_runtime: Runtime, tmp_path: Path
) -> None:
    runtime = note_runtime
    notes = tmp_path / "notes.txt"
    await runtime.jobs.put_collection(REF, {"properties": {"state": "Enabled"}})
    async with api_client(runtime) as api:
        schema = (await api.get("/api/openapi.json")).json()
        put = schema["paths"]["/api/jobCollections/{jobCollectionName}/jobs/{jobName}"]["put"]
        body = put["requestBody"]["content"]["application/json"]["schema"]
        action = body["properties"]["properties"]["properties"]["action"]["properties"]
        assert "Note" in action["type"]["enum"] and "Http" in action["type"]["enum"]
        assert {"note", "request", "queueMessage"} <= action.keys()

        missing = await api.put(JOB, json={"properties": {"action": {"type": "Note"}}})
        assert missing.status_code == 400
        assert missing.json()["error"]["message"].endswith("note is required when type is Note")
        other = note_job(notes)
        other["properties"]["action"]["request"] = {"uri": "https://example.com/"}
        refused = await api.put(JOB, json=other)
        assert refused.status_code == 400
        assert refused.json()["error"]["target"] == "properties.action.request"
        bad = await api.put(JOB, json=note_job(notes, timeoutSeconds=0))
        assert bad.status_code == 400
        assert bad.json()["error"]["target"] == "properties.action.note.timeoutSeconds"

        created = await api.put(JOB, json=note_job(notes, timeoutSeconds=7))
        assert created.status_code == 201, created.text
        shown = created.json()["properties"]["action"]
        assert shown["type"] == "Note"
        assert shown["note"] == {"path": str(notes), "line": "hello", "timeoutSeconds": 7}

    stored = await runtime.store.get_job(REF.key, "jot")
    assert stored is not None
    assert runtime.runners.timeout_of(stored.properties.action) == timedelta(seconds=7)

    async def completed() -> bool:
        job = await runtime.store.get_job(REF.key, "jot")
        return job is not None and job.state is JobState.COMPLETED

    await work_queue(runtime, completed)
    assert notes.read_text() == "pre: hello\n"
    records, _ = await runtime.store.history(REF.key, "jot", top=10)
    [row] = [record.properties for record in records]
    assert row.status is HistoryStatus.COMPLETED
    assert row.message == "Note Action - wrote for jot with ***"


def test_an_unregistered_kind_is_refused_naming_type(note_runtime: Runtime) -> None:
    """Without the registration the same action is a type no kind claims."""
    [note] = [kind for kind in known_kinds().kinds if kind.name == "Note"]
    unregister_kind(note)
    with pytest.raises(ValueError, match=r"type must be one of Http, Https, StorageQueue"):
        JobErrorAction.model_validate({"type": "Note", "note": {}})


async def test_a_registered_kind_keeps_its_write_only_secret_across_a_patch(
    note_runtime: Runtime, tmp_path: Path
) -> None:
    """The kind's `carry_secrets` hook: what GET showed, written back, keeps the token; moved
    elsewhere, the token must be given again."""
    runtime = note_runtime
    notes = tmp_path / "notes.txt"
    await runtime.jobs.put_collection(REF, {"properties": {"state": "Enabled"}})
    async with api_client(runtime) as api:
        assert (await api.put(JOB, json=note_job(notes))).status_code == 201
        patched = await api.patch(
            JOB, json={"properties": {"action": {"note": {"line": "changed"}}}}
        )
        assert patched.status_code == 200, patched.text
        moved = await api.patch(
            JOB, json={"properties": {"action": {"note": {"path": str(tmp_path / "other")}}}}
        )
        assert moved.status_code == 400
        assert moved.json()["error"]["target"] == "properties.action.note.token"
    stored = await runtime.store.get_job(REF.key, "jot")
    assert stored is not None
    note = stored.properties.action.payload_as(NoteLine)
    assert note is not None and (note.line, note.token) == ("changed", "tok-s3cr3t-42")


async def test_a_bad_setting_of_a_registered_kind_stops_the_start(
    storage_connection: str, unique_name: str
) -> None:
    kind = NoteKind()
    try:
        with pytest.raises(ConfigError, match="^NOTE_PREFIX: must be letters and digits"):
            await Runtime.create(
                make_settings(storage_connection, unique_name),
                app_settings={"NOTE_PREFIX": "a b"},
                kinds=[kind],
            )
        with pytest.raises(ConfigError, match="^NOTE_PREFIX: must be letters and digits"):
            Settings.from_env({"AzureWebJobsStorage": storage_connection, "NOTE_PREFIX": "a-b"})
        configured = Settings.from_env(
            {"AzureWebJobsStorage": storage_connection, "NOTE_PREFIX": "ok"}
        )
        assert configured.for_kind(kind) == "ok: "
    finally:
        unregister_kind(kind)


async def test_a_stored_action_of_an_unregistered_kind_stays_readable_and_fails_clearly(
    note_runtime: Runtime, tmp_path: Path
) -> None:
    """An app that drops a kind it had added: its jobs still list and show (their payload
    hidden, its secrets being unknown), each attempt fails saying what is missing, and
    registering the kind again brings the stored action back unchanged."""
    runtime = note_runtime
    notes = tmp_path / "notes.txt"
    await runtime.jobs.put_collection(REF, {"properties": {"state": "Enabled"}})
    job = note_job(notes, timeoutSeconds=7)
    job["properties"]["action"]["retryPolicy"] = {"retryType": "None"}
    await runtime.jobs.put_job(REF, "jot", job)
    [note] = [kind for kind in known_kinds().kinds if kind.name == "Note"]
    unregister_kind(note)
    try:
        async with api_client(runtime) as api:
            listed = await api.get("/api/jobCollections/notes/jobs")
            shown = await api.get(JOB)
        assert listed.status_code == 200, listed.text
        assert shown.status_code == 200, shown.text
        assert shown.json()["properties"]["action"] == {
            "type": "Note",
            "note": {},
            "retryPolicy": {"retryType": "None"},
        }
        assert "tok-s3cr3t-42" not in listed.text + shown.text

        async def completed() -> bool:
            job = await runtime.store.get_job(REF.key, "jot")
            return job is not None and job.state.is_final

        await work_queue(runtime, completed)
        records, _ = await runtime.store.history(REF.key, "jot", top=10)
        [row] = [record.properties for record in records]
        assert row.status is HistoryStatus.FAILED
        assert row.message.startswith("No action kind 'Note' is registered in this app")
        assert not notes.exists()
    finally:
        register_kinds([note])
    stored = await runtime.store.get_job(REF.key, "jot")
    assert stored is not None
    assert stored.properties.action.public_json()["note"] == {
        "path": str(notes),
        "line": "hello",
        "timeoutSeconds": 7,
    }
