"""A throwaway certificate authority and the certificates it issues, made with `cryptography`,
for HTTPS tests: servers on localhost/127.0.0.1 (PEM and PKCS#12 files), TLS clients, stand-ins
for named services."""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    pkcs12,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class ServerCertificate:
    ca_pem: Path  # what a client trusts (REQUESTS_CA_BUNDLE, httpx verify)
    cert_pem: Path
    key_pem: Path
    pfx: Path
    password: str


@dataclass
class Issued:
    key: Any
    cert: x509.Certificate

    def pem_files(self, directory: Path, name: str) -> tuple[Path, Path]:
        cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
        cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_path, key_path

    def pfx(self, password: str) -> str:
        """The key and certificate as base64 PKCS#12 (as ClientCertificate auth takes it)."""
        data = pkcs12.serialize_key_and_certificates(
            b"client",
            self.key,
            self.cert,
            None,
            serialization.BestAvailableEncryption(password.encode()),
        )
        return base64.b64encode(data).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(common_name: str) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def issue(
    ca: Issued, common_name: str, *, dns: tuple[str, ...] = (), ips: tuple[str, ...] = ()
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if names else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return Issued(key, builder.sign(ca.key, hashes.SHA256()))


def make_server_certificate(directory: Path, password: str = "pfx-pass") -> ServerCertificate:
    """A CA and a server certificate for localhost and 127.0.0.1, written as PEM and PKCS#12."""
    ca = make_ca("devhost test CA")
    server = issue(ca, "localhost", dns=("localhost",), ips=("127.0.0.1",))
    cert_pem, key_pem = server.pem_files(directory, "server")
    result = ServerCertificate(
        ca_pem=directory / "ca.pem",
        cert_pem=cert_pem,
        key_pem=key_pem,
        pfx=directory / "server.pfx",
        password=password,
    )
    result.ca_pem.write_bytes(ca.cert.public_bytes(Encoding.PEM))
    result.pfx.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"server",
            server.key,
            server.cert,
            [ca.cert],
            BestAvailableEncryption(password.encode()),
        )
    )
    return result
