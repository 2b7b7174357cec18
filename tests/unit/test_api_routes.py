"""The operations the API document lists: every collection, job and history operation on ARM's
paths and on the short ones (the routers are written once and mounted on both), with the
operation ids and path parameters it always had. No storage: the document is built, not served."""

from __future__ import annotations

from typing import Any

import pytest

from shared.api.app import create_api
from shared.runtime import Runtime

ARM = (
    "/api/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
    "/providers/Microsoft.Scheduler/jobCollections"
)
SHORT = "/api/jobCollections"
C = "/{jobCollectionName}"
J = "/{jobCollectionName}/jobs/{jobName}"

# (method, path below a prefix, ARM operation id, short operation id)
MOUNTED = [
    ("GET", "", "JobCollections_ListByResourceGroup", "JobCollections_ListDefault"),
    ("PUT", C, "JobCollections_CreateOrUpdate", "JobCollections_CreateOrUpdate_Short"),
    ("PATCH", C, "JobCollections_Patch", "JobCollections_Patch_Short"),
    ("GET", C, "JobCollections_Get", "JobCollections_Get_Short"),
    ("DELETE", C, "JobCollections_Delete", "JobCollections_Delete_Short"),
    ("POST", f"{C}/enable", "JobCollections_Enable", "JobCollections_Enable_Short"),
    ("POST", f"{C}/disable", "JobCollections_Disable", "JobCollections_Disable_Short"),
    ("GET", f"{C}/jobs", "Jobs_List", "Jobs_List_Short"),
    ("PUT", J, "Jobs_CreateOrUpdate", "Jobs_CreateOrUpdate_Short"),
    ("PATCH", J, "Jobs_Patch", "Jobs_Patch_Short"),
    ("GET", J, "Jobs_Get", "Jobs_Get_Short"),
    ("DELETE", J, "Jobs_Delete", "Jobs_Delete_Short"),
    ("POST", f"{J}/run", "Jobs_Run", "Jobs_Run_Short"),
    ("GET", f"{J}/history", "Jobs_ListJobHistory", "Jobs_ListJobHistory_Short"),
    (
        "GET",
        f"{J}/history/{{historyId}}/output",
        "Jobs_GetHistoryOutput",
        "Jobs_GetHistoryOutput_Short",
    ),
    ("GET", f"{J}/occurrences", "Jobs_ListOccurrences", "Jobs_ListOccurrences_Short"),
    ("GET", f"{J}/runs", "Jobs_ListRuns", "Jobs_ListRuns_Short"),
    ("GET", f"{J}/runs/{{runId}}", "Jobs_GetRun", "Jobs_GetRun_Short"),
]
BY_SUBSCRIPTION = "/api/subscriptions/{subscriptionId}/providers/Microsoft.Scheduler/jobCollections"


async def _no_runtime() -> Runtime:
    raise AssertionError("building the document needs no runtime")


@pytest.fixture(scope="module")
def operations() -> dict[tuple[str, str], dict[str, Any]]:
    document = create_api(_no_runtime).openapi()
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


def test_every_operation_is_on_both_path_families_and_nothing_else(operations) -> None:
    expected = {("GET", BY_SUBSCRIPTION): "JobCollections_ListBySubscription"}
    for method, below, arm_id, short_id in MOUNTED:
        expected[(method, ARM + below)] = arm_id
        expected[(method, SHORT + below)] = short_id

    # The device registry is at IoT Hub's paths, once (shared/api/devices.py).
    expected |= {
        ("POST", "/api/devices/query"): "Devices_Query",
        ("GET", "/api/devices"): "Devices_List",
        ("PUT", "/api/devices/{deviceId}"): "Devices_CreateOrUpdateIdentity",
        ("GET", "/api/devices/{deviceId}"): "Devices_GetIdentity",
        ("DELETE", "/api/devices/{deviceId}"): "Devices_DeleteIdentity",
        ("GET", "/api/twins/{deviceId}"): "Devices_GetTwin",
        ("PATCH", "/api/twins/{deviceId}"): "Devices_UpdateTwin",
        ("PUT", "/api/twins/{deviceId}"): "Devices_ReplaceTwin",
        ("PATCH", "/api/twins/{deviceId}/reported"): "Devices_UpdateReported",
        ("POST", "/api/twins/{deviceId}/methods"): "Devices_InvokeMethod",
        ("GET", "/api/jobs/v2/query"): "Jobs_QueryJobs",
        ("PUT", "/api/jobs/v2/{jobId}"): "Jobs_CreateScheduledJob",
        ("GET", "/api/jobs/v2/{jobId}"): "Jobs_GetScheduledJob",
        ("POST", "/api/jobs/v2/{jobId}/cancel"): "Jobs_CancelScheduledJob",
    }
    # Kudu's WebJobs routes are at Kudu's paths, once (shared/api/webjobs.py).
    expected |= {
        ("GET", "/api/webjobs"): "WebJobs_List",
        ("GET", "/api/triggeredwebjobs"): "TriggeredWebJobs_List",
        ("GET", "/api/triggeredwebjobs/{name}"): "TriggeredWebJobs_Get",
        ("POST", "/api/triggeredwebjobs/{name}/run"): "TriggeredWebJobs_Run",
        ("GET", "/api/triggeredwebjobs/{name}/history"): "TriggeredWebJobs_History",
        ("GET", "/api/triggeredwebjobs/{name}/history/{runId}"): "TriggeredWebJobs_GetRun",
        ("GET", "/api/continuouswebjobs"): "ContinuousWebJobs_List",
        ("GET", "/api/continuouswebjobs/{name}"): "ContinuousWebJobs_Get",
        ("POST", "/api/continuouswebjobs/{name}/start"): "ContinuousWebJobs_Start",
        ("POST", "/api/continuouswebjobs/{name}/stop"): "ContinuousWebJobs_Stop",
    }
    # The dashboard's own reads, once, with the function key (shared/api/dashboard.py); its
    # page and assets are served too but left out of the document.
    expected |= {
        ("GET", "/api/dashboard-data/settings"): "Dashboard_Settings",
        ("GET", "/api/dashboard-data/jobs"): "Dashboard_ListJobs",
        ("GET", "/api/dashboard-data/overview"): "Dashboard_Overview",
        ("GET", "/api/dashboard-data/job"): "Dashboard_Job",
        # Broadcasts and devices with the key (shared/api/dashboard_iot.py).
        ("GET", "/api/dashboard-data/broadcasts"): "Dashboard_Broadcasts",
        ("GET", "/api/dashboard-data/broadcast"): "Dashboard_Broadcast",
        ("GET", "/api/dashboard-data/broadcast-devices"): "Dashboard_BroadcastDevices",
        ("POST", "/api/dashboard-data/broadcast-cancel"): "Dashboard_CancelBroadcast",
        ("GET", "/api/dashboard-data/devices"): "Dashboard_Devices",
    }
    found = {key: operation["operationId"] for key, operation in operations.items()}

    assert found == expected


def path_parameters(operation: dict[str, Any]) -> set[str]:
    return {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}


@pytest.mark.parametrize(("method", "below"), [(m, b) for m, b, _, _ in MOUNTED])
def test_each_mount_documents_exactly_its_path_parameters(operations, method, below) -> None:
    own = {"jobCollectionName"} if C in below else set()
    own |= {"jobName"} if J in below else set()
    own |= {"historyId"} if "{historyId}" in below else set()
    own |= {"runId"} if "{runId}" in below else set()

    assert path_parameters(operations[(method, ARM + below)]) == own | {
        "subscriptionId",
        "resourceGroupName",
    }
    assert path_parameters(operations[(method, SHORT + below)]) == own
    assert operations[(method, ARM + below)]["tags"] == ["jobCollections"]
    assert operations[(method, SHORT + below)]["tags"] == ["jobCollections (short paths)"]


def test_every_operation_declares_the_arm_error_responses(operations) -> None:
    for operation in operations.values():
        assert {"400", "404"} <= set(operation["responses"]), operation["operationId"]
