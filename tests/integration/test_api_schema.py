"""Schemathesis against the app's own `/api/openapi.json`, in-process, on the test Azurite.

How it is driven (the simplest shape that works with pytest-asyncio and the session Azurite):
the test is synchronous, and the app is reached through Schemathesis's own ASGI client. That
client runs every application of the process in one event-loop thread, so the runtime (whose
Azure SDK clients are bound to the loop that made them) is built by the app's lifespan startup
in that loop and closed by its shutdown; no pytest-asyncio loop is involved. The schema is loaded
with `schemathesis.openapi.from_asgi`, and each operation's Hypothesis strategy is run in turn
(`operation.as_strategy()` under `@given`), positive then negative, with a bounded number of
derandomized examples: a run is reproducible for a given commit (Hypothesis also draws on
constants it finds in the project's source, so a change elsewhere can change the cases).
Failures of every operation are collected and reported together.

Before fuzzing, a collection and two jobs are put through the API whose actions carry secrets (a
StorageQueue SAS token and a Basic password, in the action and in its errorAction); hand-picked
requests then take them through every operation (PATCH, run, enable/disable, ...). During
fuzzing, two of the three positive strategies of an operation with path parameters point at the
seeded collection and jobs, so the secret check sees real responses, not only 404s; PUT and
DELETE never get the seeded names. Checks on every response: no 5xx, the body matches the
declared schema, the status is declared, `x-ms-request-id` is there, an error is ARM's
`{"error": {"code", "message"}}` with a 4xx status this API uses, and no secret appears in it.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any, cast
from urllib.parse import unquote

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.python.asgi import ASGIClient, shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)
from starlette.types import Receive, Scope, Send

from shared.api.app import create_api
from shared.api.iothub import is_iot_path
from shared.api.schemas import COLLECTION_EXAMPLE, JOB_EXAMPLE
from shared.clock import FixedClock
from shared.devices.sas import build_token
from shared.kinds.code import CodeContext, register_handler
from shared.names import DEFAULT_RESOURCE_GROUP, DEFAULT_SUBSCRIPTION, CollectionRef
from shared.runtime import Runtime
from tests.support.engine import API_NOW, make_runtime, make_settings, work_queue
from tests.support.iot import OWNER

pytestmark = pytest.mark.integration

NOW = API_NOW
# Made at run time: Hypothesis mines string constants from source files, and a fuzzed case that
# named a job after a constant secret made a later listing "leak" that name.
SAS_TOKEN = f"SECRET-SAS-{uuid.uuid4().hex}"
PASSWORD = f"SECRET-PW-{uuid.uuid4().hex}"
SECRETS = (SAS_TOKEN, PASSWORD)
COLLECTION = "seeded"
QUEUE_JOB = "queuejob"
BASIC_JOB = "basicjob"
# Examples per operation and generation mode (positive: valid per the schema; negative: not).
POSITIVE_EXAMPLES = 20
NEGATIVE_EXAMPLES = 10
# Operations that would remove or replace the seeded resources never get their names (Schemathesis
# reuses names it has seen in responses, so generated names can hit them too).
DESTRUCTIVE = {"DELETE", "PUT"}


def queue_action() -> dict[str, Any]:
    return {
        "type": "StorageQueue",
        "queueMessage": {
            "storageAccount": "secretaccount",
            "queueName": "secret-queue",
            "sasToken": SAS_TOKEN,
            "message": "hello",
        },
    }


SEED_JOBS: dict[str, dict[str, Any]] = {
    QUEUE_JOB: {
        "properties": {
            "action": {**queue_action(), "errorAction": queue_action()},
            "recurrence": {"frequency": "Hour", "interval": 1},
        }
    },
    BASIC_JOB: {
        "properties": {
            "startTime": "2030-06-01T00:00:00Z",
            "action": {
                "type": "Http",
                "request": {
                    "uri": "https://example.com/hook",
                    "method": "POST",
                    "authentication": {"type": "Basic", "username": "u", "password": PASSWORD},
                },
                "errorAction": queue_action(),
            },
        }
    },
}


def signed(scope: Scope) -> Scope:
    """The request with a valid IoT Hub token when it is for an IoT Hub path, as the SDK would
    send it, so the fuzzing reaches the handlers (the signature itself is tested elsewhere)."""
    if scope["type"] != "http" or not is_iot_path(scope["path"]):
        return scope
    headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"authorization"]
    host = next((v.decode("latin-1") for k, v in headers if k.lower() == b"host"), "testserver")
    token = build_token(f"{host}/api", OWNER.name, OWNER.key, int(time.time()) + 3600)
    return {**scope, "headers": [*headers, (b"authorization", token.encode())]}


# A code job whose one attempt has output, for the output route (in a collection of its own:
# seed() creates COLLECTION).
OUTPUT_REF = CollectionRef.parse("printed")
OUTPUT_JOB = "printer"


def print_a_line(ctx: CodeContext) -> str:
    print("a line of output")
    return "printed"


async def seed_output(runtime: Runtime) -> None:
    """A Code job run once (in the serving loop, where the runtime lives), so the output route
    has an attempt whose output it can answer with."""
    register_handler("schema-print", print_a_line)
    await runtime.jobs.put_collection(OUTPUT_REF, {"properties": {}})
    action = {"type": "Code", "code": {"handler": "schema-print"}}
    await runtime.jobs.put_job(OUTPUT_REF, OUTPUT_JOB, {"properties": {"action": action}})

    async def recorded() -> bool:
        records, _ = await runtime.store.history(OUTPUT_REF.key, OUTPUT_JOB, top=1)
        return bool(records)

    await work_queue(runtime, recorded)


class AppWithRuntime:
    """The API, with a runtime that its lifespan builds and closes in the serving event loop."""

    def __init__(self, storage_connection: str, table_prefix: str) -> None:
        self.settings = make_settings(storage_connection, table_prefix)
        self.runtime: Runtime | None = None
        self.api = create_api(self._provide, iot_policies=[OWNER])

    async def _provide(self) -> Runtime:
        assert self.runtime is not None, "the lifespan has not started"
        return self.runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.api(signed(scope), receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.runtime = await make_runtime(self.settings, FixedClock(NOW))
                await seed_output(self.runtime)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.runtime is not None:
                    await self.runtime.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def no_secret_in_response(ctx: Any, response: Response, case: Case[Any]) -> bool | None:
    """No write-only value (SAS token, password) appears in the body or the headers.

    Hypothesis mines string constants from local source files (this one included), so a case may
    send a secret itself, e.g. as a collection name; an error that echoes the request's own input
    is not a leak, so a secret the request carried is not looked for.
    """
    request = response.request
    body = request.body if isinstance(request.body, bytes) else str(request.body or "").encode()
    sent = unquote(str(request.url)) + body.decode("utf-8", "replace")
    text = response.content.decode("utf-8", "replace") if response.content else ""
    headers = " ".join(f"{k}: {', '.join(v)}" for k, v in response.headers.items())
    for secret in SECRETS:
        if secret in sent:
            continue
        assert secret not in text, f"{secret} appears in the response body: {text[:500]}"
        assert secret not in headers, f"{secret} appears in the response headers"
    return None


def carries_request_id(ctx: Any, response: Response, case: Case[Any]) -> bool | None:
    assert response.headers.get("x-ms-request-id"), "the response has no x-ms-request-id"
    return None


ERROR_STATUSES = {400, 404, 405, 409, 413, 415}
# The device registry's routes answer as IoT Hub does (shared/api/iothub.py).
HUB_ERROR_STATUSES = ERROR_STATUSES | {412, 502, 504}


def errors_are_arm_shaped(ctx: Any, response: Response, case: Case[Any]) -> bool | None:
    if response.status_code < 400:
        return None
    body = response.json()
    if is_iot_path(case.path):
        assert response.status_code in HUB_ERROR_STATUSES, response.status_code
        assert response.headers.get("iothub-errorcode"), "no iothub-errorcode header"
        assert isinstance(body, dict) and str(body.get("Message", "")).startswith("ErrorCode:")
        return None
    assert response.status_code in ERROR_STATUSES, response.status_code
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    error = body["error"]
    assert isinstance(error.get("code"), str) and error["code"], body
    assert isinstance(error.get("message"), str) and error["message"], body
    return None


STATUSES: dict[str, Counter[int]] = defaultdict(Counter)


def record_status(ctx: Any, response: Response, case: Case[Any]) -> bool | None:
    STATUSES[case.operation.label][response.status_code] += 1
    return None


CHECKS = [
    record_status,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    no_secret_in_response,
    carries_request_id,
    errors_are_arm_shaped,
]


@pytest.fixture
def app(storage_connection: str, unique_name: str) -> Iterator[AppWithRuntime]:
    application = AppWithRuntime(storage_connection, unique_name)
    yield application
    shutdown_lifespans()  # closes the runtime in the loop it was built in


def seed(client: ASGIClient) -> None:
    response = client.put(f"/api/jobCollections/{COLLECTION}", json={"properties": {}})
    assert response.status_code == 201, response.text
    for name, body in SEED_JOBS.items():
        response = client.put(f"/api/jobCollections/{COLLECTION}/jobs/{name}", json=body)
        assert response.status_code == 201, response.text
        assert not any(secret in response.text for secret in SECRETS), response.text


# Hand-picked requests that must succeed, in order, in both path families (ARM and short): they
# make every operation answer 2xx at least once, and show the seeded jobs through PATCH, enable/
# disable and run, which random data seldom reaches. (operationId, path names, body, query,
# expected status)
EXPLICIT: list[tuple[str, dict[str, str], Any, dict[str, Any] | None, int]] = [
    ("JobCollections_ListBySubscription", {}, None, None, 200),
    ("JobCollections_ListByResourceGroup", {}, None, {"$top": 1}, 200),
    ("JobCollections_ListDefault", {}, None, {"$top": 1}, 200),
    ("JobCollections_CreateOrUpdate", {"c": "explicit"}, COLLECTION_EXAMPLE, None, 201),
    ("JobCollections_Patch", {"c": "explicit"}, {"tags": {"team": "ops"}}, None, 200),
    ("JobCollections_Get", {"c": "explicit"}, None, None, 200),
    ("JobCollections_Delete", {"c": "explicit"}, None, None, 200),
    ("Jobs_CreateOrUpdate", {"c": COLLECTION, "j": "example"}, JOB_EXAMPLE, None, 201),
    ("Jobs_CreateOrUpdate", {"c": COLLECTION, "j": "example"}, JOB_EXAMPLE, None, 200),
    ("Jobs_Delete", {"c": COLLECTION, "j": "example"}, None, None, 200),
    *[
        (operation, {"c": COLLECTION, "j": job}, body, query, 200)
        for job in SEED_JOBS
        for operation, body, query in [
            ("Jobs_Patch", {"properties": {"state": "Disabled"}}, None),
            ("Jobs_Patch", {"state": "Enabled"}, None),
            ("Jobs_Get", None, None),
            ("Jobs_Run", None, None),
            ("Jobs_ListJobHistory", None, {"$top": 5}),
            ("Jobs_ListOccurrences", None, {"count": 3}),
            ("Jobs_ListRuns", None, None),
        ]
    ],
    ("JobCollections_Disable", {"c": COLLECTION}, None, None, 200),
    ("JobCollections_Enable", {"c": COLLECTION}, None, None, 200),
    ("Jobs_List", {"c": COLLECTION}, None, {"$top": 1}, 200),
]


# The device registry's routes (no path families): a device is made, its twin changed and read,
# queried, deleted. A direct method needs a live device endpoint: tests/integration/
# test_devices_api.py covers it; here it only has to answer in IoT Hub's shape (404, no endpoint).
DEVICE = "explicit-device"
DEVICE_EXPLICIT: list[tuple[str, dict[str, str], Any, int]] = [
    ("Devices_CreateOrUpdateIdentity", {"deviceId": DEVICE}, {"deviceId": DEVICE}, 200),
    ("Devices_GetIdentity", {"deviceId": DEVICE}, None, 200),
    ("Devices_List", {}, None, 200),
    ("Devices_UpdateTwin", {"deviceId": DEVICE}, {"tags": {"site": "berlin"}}, 200),
    ("Devices_ReplaceTwin", {"deviceId": DEVICE}, {"tags": {"site": "paris"}}, 200),
    ("Devices_UpdateReported", {"deviceId": DEVICE}, {"fw": "1.0"}, 200),
    ("Devices_GetTwin", {"deviceId": DEVICE}, None, 200),
    ("Devices_Query", {}, {"query": "SELECT * FROM devices WHERE tags.site = 'paris'"}, 200),
    ("Devices_InvokeMethod", {"deviceId": DEVICE}, {"methodName": "reboot"}, 404),
    ("Devices_DeleteIdentity", {"deviceId": DEVICE}, None, 204),
    (
        "Jobs_CreateScheduledJob",
        {"jobId": "job1"},
        {
            "type": "scheduleUpdateTwin",
            "updateTwin": {"tags": {"a": 1}, "etag": "*"},
            "queryCondition": "*",
            "startTime": "2040-01-01T00:00:00Z",
        },
        200,
    ),
    ("Jobs_GetScheduledJob", {"jobId": "job1"}, None, 200),
    ("Jobs_CancelScheduledJob", {"jobId": "job1"}, None, 200),
]
NEEDS_A_DEVICE_ENDPOINT = {"POST /api/twins/{deviceId}/methods"}
# The app under test ships no WebJobs folder, so a named WebJob is always 404 here; their
# successes are tested against real folders in tests/integration/test_webjobs_api.py.
# Its `id` is a whole job resource id, which generated strings never hit; its 200 is tested in
# tests/integration/test_dashboard_api.py (here it is still checked for 5xx and schema).
NEEDS_A_JOB_RESOURCE_ID = {"GET /api/dashboard-data/job"}
# The same for a broadcast's id in a query parameter; their 200s are tested in
# tests/integration/test_dashboard_iot_api.py.
NEEDS_A_BROADCAST_ID = {
    "GET /api/dashboard-data/broadcast",
    "POST /api/dashboard-data/broadcast-cancel",
}
NEEDS_A_WEBJOBS_FOLDER = {
    "GET /api/triggeredwebjobs/{name}",
    "POST /api/triggeredwebjobs/{name}/run",
    "GET /api/triggeredwebjobs/{name}/history",
    "GET /api/triggeredwebjobs/{name}/history/{runId}",
    "GET /api/continuouswebjobs/{name}",
    "POST /api/continuouswebjobs/{name}/start",
    "POST /api/continuouswebjobs/{name}/stop",
}


def run_explicit_output(schema: Any, client: ASGIClient) -> list[str]:
    """The seeded code job's output, by the id its history row gives, and its (ended) run, by
    the occurrence in that id, in both path families."""
    failures = []
    history = client.get(f"/api/jobCollections/{OUTPUT_REF.name}/jobs/{OUTPUT_JOB}/history")
    [row] = history.json()["value"]
    history_id = row["id"].rsplit("/", 1)[-1]
    run_id = history_id.split("-", 1)[1].rsplit("-", 1)[0]
    for operation_id, expected in (
        ("Jobs_GetHistoryOutput", "a line of output"),
        ("Jobs_GetHistoryOutput_Short", "a line of output"),
        ("Jobs_GetRun", '"Ended"'),
        ("Jobs_GetRun_Short", '"Ended"'),
    ):
        operation = schema.find_operation_by_id(operation_id)
        path = {
            "subscriptionId": DEFAULT_SUBSCRIPTION,
            "resourceGroupName": DEFAULT_RESOURCE_GROUP,
            "jobCollectionName": OUTPUT_REF.name,
            "jobName": OUTPUT_JOB,
            "historyId": history_id,
            "runId": run_id,
        }
        declared = {p.name for p in operation.path_parameters}
        case = operation.Case(path_parameters={k: v for k, v in path.items() if k in declared})
        try:
            response = case.call_and_validate(session=client, checks=CHECKS)
            assert response.status_code == 200, response.text
            assert expected in response.text, response.text
        except (Exception, FailureGroup) as error:
            failures.append(f"{operation.label} (explicit): {error}")
    return failures


def run_explicit_devices(schema: Any, client: ASGIClient) -> list[str]:
    failures = []
    for operation_id, path, body, expected in DEVICE_EXPLICIT:
        operation = schema.find_operation_by_id(operation_id)
        case = operation.Case(
            path_parameters=path,
            **({} if body is None else {"body": body, "media_type": "application/json"}),
        )
        try:
            response = case.call_and_validate(session=client, checks=CHECKS)
            assert response.status_code == expected, response.text
        except (Exception, FailureGroup) as error:
            failures.append(f"{operation.label} (explicit): {error}")
    return failures


def run_explicit(schema: Any, client: ASGIClient) -> list[str]:
    failures = []
    for suffix in ("", "_Short"):
        for operation_id, names, body, query, expected in EXPLICIT:
            if suffix and operation_id.startswith("JobCollections_List"):
                continue  # the collection lists have one path each
            operation = schema.find_operation_by_id(operation_id + suffix)
            path = {
                "subscriptionId": DEFAULT_SUBSCRIPTION,
                "resourceGroupName": DEFAULT_RESOURCE_GROUP,
                "jobCollectionName": names.get("c"),
                "jobName": names.get("j"),
            }
            declared = {p.name for p in operation.path_parameters}
            case = operation.Case(
                path_parameters={k: v for k, v in path.items() if k in declared},
                query=query,
                **({} if body is None else {"body": body, "media_type": "application/json"}),
            )
            try:
                response = case.call_and_validate(session=client, checks=CHECKS)
                assert response.status_code == expected, response.text
            except (Exception, FailureGroup) as error:
                failures.append(f"{operation.label} (explicit, {names}): {error}")
    return failures


def seeded_path(operation: Any, job: str) -> dict[str, str] | None:
    """Path parameters that point at the seeded collection and job. A PUT or DELETE gets the
    seeded collection only (its job name is generated); on a collection, it gets none."""
    names = {p.name for p in operation.path_parameters}
    destructive = operation.method.upper() in DESTRUCTIVE
    if not names or (destructive and "jobName" not in names):
        return None
    values = {
        "subscriptionId": DEFAULT_SUBSCRIPTION,
        "resourceGroupName": DEFAULT_RESOURCE_GROUP,
        "jobCollectionName": COLLECTION,
    }
    if not destructive:
        values["jobName"] = job
    return {name: value for name, value in values.items() if name in names}


def targets_seed(case: Case[Any]) -> bool:
    """Whether the case's path names the seeded collection, or one of its seeded jobs."""
    path = case.path_parameters or {}
    if path.get("jobCollectionName") != COLLECTION:
        return False
    if path.get("subscriptionId", DEFAULT_SUBSCRIPTION) != DEFAULT_SUBSCRIPTION:
        return False
    if path.get("resourceGroupName", DEFAULT_RESOURCE_GROUP) != DEFAULT_RESOURCE_GROUP:
        return False
    return "jobName" not in path or path["jobName"] in SEED_JOBS


def run_operation(
    operation: Any, client: ASGIClient, mode: GenerationMode, examples: int
) -> BaseException | None:
    strategies = [operation.as_strategy(generation_mode=mode)]
    if mode is GenerationMode.POSITIVE:
        for job in (QUEUE_JOB, BASIC_JOB):
            fixed = seeded_path(operation, job)
            if fixed is not None:
                strategies.append(
                    operation.as_strategy(generation_mode=mode, path_parameters=fixed)
                )

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=st.one_of(strategies))
    def fuzz(case: Case[Any]) -> None:
        assume(not (case.method.upper() in DESTRUCTIVE and targets_seed(case)))
        case.call_and_validate(session=client, checks=CHECKS)

    try:
        fuzz()
    except Unsatisfiable:
        # An operation with no parameter and no body (GET /api/webjobs) has no invalid request.
        if mode is GenerationMode.NEGATIVE and not operation.path_parameters:
            return None
        raise
    except (Exception, FailureGroup) as error:
        return error
    return None


def test_schemathesis_finds_no_5xx_schema_violation_or_secret(app: AppWithRuntime) -> None:
    started = time.monotonic()
    STATUSES.clear()
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app)
    labels: list[str] = []
    # ASGIClient types the ASGI callables with dict where Starlette says MutableMapping.
    with ASGIClient(cast(Any, app)) as client:
        seed(client)
        failures = (
            run_explicit(schema, client)
            + run_explicit_devices(schema, client)
            + run_explicit_output(schema, client)
        )
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result
            operation = result.ok()
            labels.append(operation.label)
            for mode, examples in (
                (GenerationMode.POSITIVE, POSITIVE_EXAMPLES),
                (GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES),
            ):
                error = run_operation(operation, client, mode, examples)
                if error is not None:
                    failures.append(f"{operation.label} [{mode.value}]: {error}")
        # The seeded secrets are still stored (the storage account, the Basic username: each
        # needs its secret), so the checks were not vacuous, and are still hidden.
        actions = {}
        for name in SEED_JOBS:
            response = client.get(f"/api/jobCollections/{COLLECTION}/jobs/{name}")
            assert response.status_code == 200, response.text
            assert not any(secret in response.text for secret in SECRETS), response.text
            actions[name] = response.json()["properties"]["action"]
    assert not failures, "\n\n".join(failures)
    for action in (actions[QUEUE_JOB], actions[QUEUE_JOB]["errorAction"]):
        assert action["queueMessage"]["storageAccount"] == "secretaccount", action
    assert actions[BASIC_JOB]["request"]["authentication"] == {"type": "Basic", "username": "u"}
    assert len(labels) >= 31, labels
    never_succeeded = [
        label
        for label in labels
        if not any(200 <= code < 300 for code in STATUSES[label])
        and label
        not in NEEDS_A_DEVICE_ENDPOINT
        | NEEDS_A_WEBJOBS_FOLDER
        | NEEDS_A_JOB_RESOURCE_ID
        | NEEDS_A_BROADCAST_ID
    ]
    assert not never_succeeded, never_succeeded
    elapsed = time.monotonic() - started
    assert elapsed < 90, f"the schema run took {elapsed:.0f} s"
