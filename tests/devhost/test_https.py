"""HTTPS in the local host: a PKCS#12 or PEM certificate, checked at start-up."""

from __future__ import annotations

import ssl

import httpx
import pytest

from devhost.host import DevHost
from devhost.tls import CertificateError, HttpsCertificate
from tests.devhost.test_http import HTTP_ONLY, write_host_json
from tests.support.test_ca import make_server_certificate

SAMPLE = "tests.devhost.sample_app:app"


@pytest.mark.parametrize("form", ["pfx", "pem"])
async def test_serves_https_with_a_ca_signed_certificate(tmp_path, form):
    certificate = make_server_certificate(tmp_path)
    https = (
        HttpsCertificate(certificate.pfx, password=certificate.password)
        if form == "pfx"
        else HttpsCertificate(certificate.cert_pem, certificate.key_pem)
    )
    trusted = ssl.create_default_context(cafile=str(certificate.ca_pem))
    async with DevHost(
        SAMPLE,
        project_dir=write_host_json(tmp_path),
        settings_overrides=HTTP_ONLY,
        port=0,
        https=https,
    ) as host:
        assert host.api_url.startswith("https://")
        async with httpx.AsyncClient(base_url=host.api_url, verify=trusted) as http:
            response = await http.get("/hello")
        async with httpx.AsyncClient(base_url=host.api_url) as untrusting:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.get("/hello")

    assert response.text == "hello from hello"


async def test_the_certificate_setting_turns_https_on(tmp_path):
    certificate = make_server_certificate(tmp_path)
    settings = {
        **HTTP_ONLY,
        "DEVHOST_HTTPS_CERT": str(certificate.pfx),
        "DEVHOST_HTTPS_CERT_PASSWORD": certificate.password,
    }
    trusted = ssl.create_default_context(cafile=str(certificate.ca_pem))
    async with (
        DevHost(
            SAMPLE, project_dir=write_host_json(tmp_path), settings_overrides=settings, port=0
        ) as host,
        httpx.AsyncClient(base_url=host.api_url, verify=trusted) as http,
    ):
        assert (await http.get("/hello")).status_code == 200


@pytest.mark.parametrize(
    ("which", "reason"),
    [
        ("wrong password", "the password is wrong"),
        ("pem without key", "cannot serve this certificate and key"),
        ("missing file", "no such file"),
    ],
)
async def test_a_certificate_that_cannot_be_served_stops_the_start(tmp_path, which, reason):
    certificate = make_server_certificate(tmp_path)
    https = {
        "wrong password": HttpsCertificate(certificate.pfx, password="not-it"),
        "pem without key": HttpsCertificate(certificate.cert_pem),
        "missing file": HttpsCertificate(tmp_path / "nope.pfx"),
    }[which]
    host = DevHost(
        SAMPLE,
        project_dir=write_host_json(tmp_path),
        settings_overrides=HTTP_ONLY,
        port=0,
        https=https,
    )
    with pytest.raises(CertificateError, match=reason) as refused:
        await host.start()
    assert "not-it" not in str(refused.value)
