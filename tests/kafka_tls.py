"""Certificates made by the tests (openssl): a CA, the broker's certificate for 127.0.0.1 and
a client certificate for mutual TLS; and the server.properties of a SASL_SSL listener."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Certificates", "make_certificates", "sasl_ssl_listener"]


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str) -> None:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {done.stderr}")


def _signed(folder: Path, name: str, subject: str, ca: Path, ca_key: Path,
            extensions: str) -> tuple[Path, Path]:
    key, csr, cert = (folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.pem")
    ext = folder / f"{name}.ext"
    ext.write_text(extensions, encoding="utf-8")
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
             "-subj", subject, "-out", str(csr))
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", "2", "-sha256", "-extfile", str(ext),
             "-out", str(cert))
    return cert, key


def make_certificates(folder: Path) -> Certificates:
    """A fresh CA and the broker's and a client's certificates signed by it (PKCS#8 keys)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
             "-subj", "/CN=kpistream test CA", "-days", "2", "-out", str(ca))
    server_cert, server_key = _signed(
        folder, "broker", "/CN=127.0.0.1", ca, ca_key,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    client_cert, client_key = _signed(
        folder, "client", "/CN=kpistream", ca, ca_key, "extendedKeyUsage=clientAuth\n")
    return Certificates(ca, server_cert, server_key, client_cert, client_key)


def sasl_ssl_listener(certs: Certificates, plain_users: dict[str, str]) -> dict[str, str]:
    """server.properties for a listener named SECURE: TLS with SCRAM-SHA-256/512 and PLAIN.

    The broker's key and certificate are given inline (PEM keystore); client certificates
    are asked for but not required, so one listener serves SASL_SSL and mutual TLS clients.
    """
    plain = " ".join(f'user_{name}="{password}"' for name, password in plain_users.items())
    prefix = "listener.name.secure."

    def one_line(text: str) -> str:
        return text.strip().replace("\n", "\\n")

    return {
        "sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
        f"{prefix}ssl.keystore.type": "PEM",
        f"{prefix}ssl.keystore.key": one_line(certs.server_key.read_text()),
        f"{prefix}ssl.keystore.certificate.chain": one_line(certs.server_cert.read_text()),
        f"{prefix}ssl.truststore.type": "PEM",
        f"{prefix}ssl.truststore.certificates": one_line(certs.ca.read_text()),
        f"{prefix}ssl.client.auth": "requested",
        f"{prefix}scram-sha-256.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        f"{prefix}scram-sha-512.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        f"{prefix}plain.sasl.jaas.config":
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain};",
    }
