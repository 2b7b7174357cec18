"""Every app setting is parsed and checked once, at start-up: a bad one stops `from_env` with a
message naming it and saying why, and never echoing a secret value."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from pathlib import Path

import pytest

from shared.config import ManagedIdentity, Settings
from shared.errors import ConfigError
from shared.kinds.http.network_guard import AddressClass

CONNECTION = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
SECRET_KEY = "c2VjcmV0LWtleS10aGF0LW11c3Qtbm90LWxlYWs="


def test_defaults_name_the_tables() -> None:
    settings = Settings.from_env(CONNECTION)
    assert (settings.collections_table, settings.due_table) == (
        "SchedulerCollections",
        "SchedulerDue",
    )


@pytest.mark.parametrize("prefix", ["A", "Sched2", "x" * 30])
def test_a_valid_prefix_is_taken(prefix: str) -> None:
    assert (
        Settings.from_env({**CONNECTION, "SCHEDULER_TABLE_PREFIX": prefix}).table_prefix == prefix
    )


@pytest.mark.parametrize("prefix", ["", "2sched", "sched-uler", "x" * 31])
def test_a_prefix_azure_would_refuse_is_named_at_start(prefix: str) -> None:
    with pytest.raises(ConfigError, match="SCHEDULER_TABLE_PREFIX"):
        Settings.from_env({**CONNECTION, "SCHEDULER_TABLE_PREFIX": prefix})


def test_every_setting_is_typed_once(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(_A_CA_CERTIFICATE)
    settings = Settings.from_env(
        {
            **CONNECTION,
            "SCHEDULER_EXECUTION_QUEUE": "runs-1",
            "SCHEDULER_DISPATCH_QUEUE": "slices-1",
            "SCHEDULER_LOOKAHEAD_SECONDS": "90",
            "SCHEDULER_HTTP_TIMEOUT_SECONDS": "15",
            "SCHEDULER_LEASE_MARGIN_SECONDS": "5",
            "SCHEDULER_HISTORY_MAX_DAYS": "7",
            "SCHEDULER_HISTORY_MAX_ROWS": "10",
            "SCHEDULER_BROADCAST_RETENTION_DAYS": "2",
            "SCHEDULER_MAX_JOBS_PER_COLLECTION": "3",
            "SCHEDULER_MIN_RECURRENCE_SECONDS": "0",
            "SCHEDULER_MAX_JOB_SIZE": "4096",
            "SCHEDULER_MAX_REQUEST_URI_LENGTH": "100",
            "SCHEDULER_MAX_REQUEST_HEADER_COUNT": "0",
            "SCHEDULER_MAX_REQUEST_HEADERS_LENGTH": "200",
            "SCHEDULER_MAX_REQUEST_BODY_LENGTH": "300",
            "SCHEDULER_ALLOWED_NETWORKS": "loopback, 10.1.0.0/16",
            "SCHEDULER_AAD_AUTHORITY": "https://login.example.com/",
            "SCHEDULER_EXTRA_CA_CERTS": str(ca),
            "IDENTITY_ENDPOINT": "http://127.0.0.1:41741/MSI/token/",
            "IDENTITY_HEADER": "header-value",
        }
    )
    assert settings.execution_queue == "runs-1"
    assert settings.dispatch_queue == "slices-1"
    assert Settings.from_env(CONNECTION).dispatch_queue == "scheduler-dispatch"
    assert settings.lookahead == timedelta(seconds=90)
    assert settings.http_timeout == timedelta(seconds=15)
    assert settings.lease_margin == timedelta(seconds=5)
    assert settings.history_max_age == timedelta(days=7)
    assert settings.history_max_rows == 10
    assert settings.broadcast_retention == timedelta(days=2)
    assert Settings.from_env(CONNECTION).broadcast_retention == timedelta(days=30)
    assert settings.max_jobs_per_collection == 3
    assert settings.min_recurrence == timedelta(0)
    assert settings.max_job_size == 4096
    limits = settings.request_limits
    assert (limits.uri_length, limits.header_count, limits.headers_length) == (100, 0, 200)
    assert limits.body_length == 300
    assert settings.networks.names == frozenset({AddressClass.LOOPBACK})
    assert settings.networks.cidrs == (ipaddress.ip_network("10.1.0.0/16"),)
    assert settings.aad_authority == "https://login.example.com"
    assert settings.extra_ca_certs == str(ca)
    assert settings.identity == ManagedIdentity("http://127.0.0.1:41741/MSI/token/", "header-value")
    assert "header-value" not in repr(settings), "the identity header is a secret"


def test_empty_values_take_the_defaults() -> None:
    names = [
        "SCHEDULER_LOOKAHEAD_SECONDS",
        "SCHEDULER_MAX_JOBS_PER_COLLECTION",
        "SCHEDULER_AAD_AUTHORITY",
        "SCHEDULER_EXTRA_CA_CERTS",
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
    ]
    settings = Settings.from_env({**CONNECTION, **dict.fromkeys(names, "")})
    assert settings.lookahead == timedelta(seconds=120)
    assert settings.max_jobs_per_collection is None
    assert settings.aad_authority == "https://login.microsoftonline.com"
    assert settings.extra_ca_certs is None
    assert settings.identity is None


def test_http_authority_is_taken_on_loopback_only() -> None:
    local = {**CONNECTION, "SCHEDULER_AAD_AUTHORITY": "http://127.0.0.1:8400"}
    assert Settings.from_env(local).aad_authority == "http://127.0.0.1:8400"


BAD = [
    ("SCHEDULER_LOOKAHEAD_SECONDS", "0", "at least 1"),
    ("SCHEDULER_LOOKAHEAD_SECONDS", "-5", "whole number"),
    ("SCHEDULER_LOOKAHEAD_SECONDS", "1.5", "whole number"),
    ("SCHEDULER_HTTP_TIMEOUT_SECONDS", "0", "at least 1"),
    ("SCHEDULER_HTTP_TIMEOUT_SECONDS", "sixty", "whole number"),
    ("SCHEDULER_LEASE_MARGIN_SECONDS", "0", "at least 1"),
    ("SCHEDULER_HISTORY_MAX_DAYS", "0", "at least 1"),
    ("SCHEDULER_HISTORY_MAX_ROWS", "0", "at least 1"),
    ("SCHEDULER_BROADCAST_RETENTION_DAYS", "0", "at least 1"),
    ("SCHEDULER_MAX_JOBS_PER_COLLECTION", "0", "at least 1"),
    ("SCHEDULER_MIN_RECURRENCE_SECONDS", "1m", "whole number"),
    ("SCHEDULER_MAX_JOB_SIZE", "0", "at least 1"),
    ("SCHEDULER_MAX_REQUEST_URI_LENGTH", "0", "at least 1"),
    ("SCHEDULER_MAX_REQUEST_HEADER_COUNT", "-1", "whole number"),
    ("SCHEDULER_MAX_REQUEST_HEADERS_LENGTH", "0", "at least 1"),
    ("SCHEDULER_MAX_REQUEST_BODY_LENGTH", "x", "whole number"),
    ("SCHEDULER_EXECUTION_QUEUE", "", "queue name"),
    ("SCHEDULER_EXECUTION_QUEUE", "Runs", "queue name"),
    ("SCHEDULER_EXECUTION_QUEUE", "runs--1", "queue name"),
    ("SCHEDULER_EXECUTION_QUEUE", "q" * 57, "queue name"),
    ("SCHEDULER_DISPATCH_QUEUE", "Slices", "queue name"),
    ("SCHEDULER_DISPATCH_QUEUE", "scheduler-executions", "other than the execution"),
    ("SCHEDULER_ALLOWED_NETWORKS", "loopback,intranet", "'intranet'"),
    ("SCHEDULER_ALLOWED_NETWORKS", "10.0.0.0/33", "CIDR"),
    ("SCHEDULER_QUEUE_CONNECTIONS", "Good,bad name", "'bad name'"),
    ("SCHEDULER_AAD_AUTHORITY", "login.example.com", "absolute https URL"),
    ("SCHEDULER_AAD_AUTHORITY", "http://login.example.com", "absolute https URL"),
    ("SCHEDULER_AAD_AUTHORITY", "https://", "absolute https URL"),
    ("SCHEDULER_AAD_AUTHORITY", "https://login.example.com/?x=1", "query"),
    ("SCHEDULER_AAD_AUTHORITY", "https://user:pw@login.example.com", "user"),
    ("SCHEDULER_EXTRA_CA_CERTS", "/no/such/bundle.pem", "not a file"),
    ("IDENTITY_ENDPOINT", "/msi/token", "absolute http(s) URL"),
    ("IDENTITY_ENDPOINT", "ftp://127.0.0.1/msi", "absolute http(s) URL"),
]


@pytest.mark.parametrize(("name", "value", "reason"), BAD)
def test_a_bad_setting_stops_the_start_naming_it(name: str, value: str, reason: str) -> None:
    env = {**CONNECTION, name: value}
    if name == "IDENTITY_ENDPOINT":
        env["IDENTITY_HEADER"] = "header-value"
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert caught.value.setting == name
    assert str(caught.value).startswith(f"{name}: ")
    assert reason in str(caught.value)


def test_a_ca_bundle_that_is_not_pem_stops_the_start(tmp_path: Path) -> None:
    for path, reason in (
        (tmp_path, "not a file"),
        (tmp_path / "empty.pem", "no PEM certificate"),
        (tmp_path / "junk.pem", "no PEM certificate"),
    ):
        if path.name == "empty.pem":
            path.write_text("")
        elif path.name == "junk.pem":
            path.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        with pytest.raises(ConfigError, match=f"SCHEDULER_EXTRA_CA_CERTS: .*{reason}"):
            Settings.from_env({**CONNECTION, "SCHEDULER_EXTRA_CA_CERTS": str(path)})


def test_an_identity_needs_both_endpoint_and_header() -> None:
    with pytest.raises(ConfigError, match="IDENTITY_HEADER: .*IDENTITY_ENDPOINT"):
        Settings.from_env({**CONNECTION, "IDENTITY_ENDPOINT": "http://127.0.0.1:41741/msi"})
    with pytest.raises(ConfigError, match="IDENTITY_ENDPOINT: .*IDENTITY_HEADER"):
        Settings.from_env({**CONNECTION, "IDENTITY_HEADER": "header-value"})


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"AzureWebJobsStorage": ""},
        {"AzureWebJobsStorage": f"AccountName=acct;Key={SECRET_KEY}"},
        {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "SCHEDULER_STORAGE": SECRET_KEY},
    ],
)
def test_a_missing_or_bad_storage_connection_is_named_without_its_value(
    env: dict[str, str],
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert caught.value.setting in ("AzureWebJobsStorage", "SCHEDULER_STORAGE")
    assert caught.value.setting in str(caught.value)
    assert SECRET_KEY not in str(caught.value)


# A self-signed CA (any valid PEM certificate does; this one is only parsed, never trusted).
_A_CA_CERTIFICATE = """\
-----BEGIN CERTIFICATE-----
MIIBNDCB3KADAgECAgEBMAoGCCqGSM49BAMCMBkxFzAVBgNVBAMMDmNvbmZpZyB0
ZXN0IENBMCAXDTI0MDEwMTAwMDAwMFoYDzIxMjMxMjA4MDAwMDAwWjAZMRcwFQYD
VQQDDA5jb25maWcgdGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABHjH
4rIsBjcFa4jQsYpVszUUpJ9l5YUnNQckAzMbWGIduda7S/pL5ePBuwOXbNAzf+1f
Cwj1bdpNJw/hMBhfbeajEzARMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwID
RwAwRAIgeKiA6jeuoWocY+yPvDNiOhGEpLG+nnGjN3pneReFT+UCIANCL6s+zvhX
IZY4YccXeZ/dt537XLb7S1F3VgZd9wS8
-----END CERTIFICATE-----
"""
