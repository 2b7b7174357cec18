"""What jobs may use of the app's identity and storage: the allow-lists and the app's own queues."""

from __future__ import annotations

import pytest

from shared.config import Settings
from shared.errors import ConfigError
from shared.kinds.storage_queue import StorageQueueMessage
from shared.model.auth import ManagedServiceIdentityAuthentication
from shared.outbound_policy import OutboundPolicy


def connection(account: str) -> str:
    return (
        f"DefaultEndpointsProtocol=https;AccountName={account};AccountKey=a2V5;"
        "EndpointSuffix=core.windows.net"
    )


APP = connection("appacct")
OTHER = connection("jobacct")
SETTINGS = {
    "AzureWebJobsStorage": APP,
    "SCHEDULER_EXECUTION_QUEUE": "runs",
    "SCHEDULER_DEVICE_WORK_QUEUE": "devices",
    "SCHEDULER_QUEUE_CONNECTIONS": "AzureWebJobsStorage, JobQueues",
    "JobQueues": OTHER,
    "SCHEDULER_IDENTITY_AUDIENCES": "https://vault.azure.net,api://orders",
    "SCHEDULER_IDENTITY_CLIENT_IDS": "user-1",
}


def msi(audience: str, client_id: str | None = None) -> ManagedServiceIdentityAuthentication:
    return ManagedServiceIdentityAuthentication(audience=audience, client_id=client_id)


def queue(name: str, **target: str) -> StorageQueueMessage:
    return StorageQueueMessage.model_validate({"queueName": name, "message": "m", **target})


def test_managed_identity_is_off_by_default() -> None:
    refusal = OutboundPolicy.from_settings({}).identity_refusal(msi("https://vault.azure.net"))
    assert refusal is not None and refusal[0] == "audience"
    assert "SCHEDULER_IDENTITY_AUDIENCES" in refusal[1]


def test_listed_audiences_and_client_ids_only() -> None:
    policy = OutboundPolicy.from_settings(SETTINGS)
    assert policy.identity_refusal(msi("https://vault.azure.net")) is None
    assert policy.identity_refusal(msi("api://orders", "user-1")) is None
    assert policy.identity_refusal(msi("https://management.azure.com"))[0] == "audience"  # type: ignore[index]
    assert policy.identity_refusal(msi("api://orders", "user-2"))[0] == "clientId"  # type: ignore[index]


def test_connection_settings_are_refused_unless_listed_and_the_error_tells_nothing() -> None:
    policy = OutboundPolicy.from_settings({**SETTINGS, "AccountSecrets": OTHER})
    existing = policy.queue_refusal(queue("jobs", connectionSetting="AccountSecrets"))
    missing = policy.queue_refusal(queue("jobs", connectionSetting="NoSuchSetting"))
    assert existing is not None and missing is not None
    assert existing[0] == missing[0] == "connectionSetting"
    assert existing[1].replace("AccountSecrets", "X") == missing[1].replace("NoSuchSetting", "X")
    assert OutboundPolicy.from_settings({}).queue_refusal(
        queue("jobs", connectionSetting="AzureWebJobsStorage")
    ) == ("connectionSetting", missing[1].replace("NoSuchSetting", "AzureWebJobsStorage"))


@pytest.mark.parametrize(
    "name", ["runs", "runs-poison", "devices", "devices-poison", "azure-webjobs-blobtrigger-x"]
)
def test_the_apps_own_queues_are_refused_in_its_own_account(name: str) -> None:
    policy = OutboundPolicy.from_settings(SETTINGS)
    by_connection = policy.queue_refusal(queue(name, connectionSetting="AzureWebJobsStorage"))
    assert by_connection is not None and by_connection[0] == "queueName"
    by_sas = policy.queue_refusal(queue(name, storageAccount="appacct", sasToken="sig=x"))
    assert by_sas is not None and by_sas[0] == "queueName"
    # The same name in another account is someone else's queue.
    assert policy.queue_refusal(queue(name, connectionSetting="JobQueues")) is None
    assert policy.queue_refusal(queue(name, storageAccount="jobacct", sasToken="sig=x")) is None


def test_a_listed_setting_on_the_apps_account_under_another_name_is_still_the_app() -> None:
    policy = OutboundPolicy.from_settings(
        {**SETTINGS, "SCHEDULER_QUEUE_CONNECTIONS": "Again", "Again": APP}
    )
    refusal = policy.queue_refusal(queue("runs", connectionSetting="Again"))
    assert refusal is not None and refusal[0] == "queueName"
    assert policy.queue_refusal(queue("reports", connectionSetting="Again")) is None


def test_a_bad_setting_name_fails_at_start() -> None:
    env = {"AzureWebJobsStorage": APP, "SCHEDULER_QUEUE_CONNECTIONS": "Good,bad name"}
    with pytest.raises(ConfigError, match="^SCHEDULER_QUEUE_CONNECTIONS: 'bad name'"):
        Settings.from_env(env)
    assert Settings.from_env(SETTINGS).outbound == OutboundPolicy.from_settings(SETTINGS)


def test_the_default_device_work_queue_is_the_apps_without_the_setting() -> None:
    """The broadcasts' device-work queue is refused like the execution queue, by default too."""
    policy = OutboundPolicy.from_settings(
        {"AzureWebJobsStorage": APP, **{"SCHEDULER_QUEUE_CONNECTIONS": "AzureWebJobsStorage"}}
    )
    for name in ("scheduler-devicework", "scheduler-devicework-poison", "scheduler-executions"):
        refusal = policy.queue_refusal(queue(name, connectionSetting="AzureWebJobsStorage"))
        assert refusal is not None and refusal[0] == "queueName", name
