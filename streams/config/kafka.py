"""The ``[kafka]`` settings: how every client reaches and uses the cluster."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.config.errors import SettingsError

__all__ = ["BROKER_DEFAULT", "SASL_MECHANISMS", "SECURITY_PROTOCOLS", "KafkaSettings",
           "kafka_settings"]

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
BROKER_DEFAULT = -1
"""``replication_factor`` meaning the broker's own ``default.replication.factor``."""


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """How every client reaches and uses the cluster, from the ``[kafka]`` table; each key also
    as KPISTREAM_KAFKA_<KEY>."""

    replication_factor: int = BROKER_DEFAULT
    """Of the topics kpistream creates (internal topics, changelogs); -1: the broker's own."""
    security_protocol: str = "PLAINTEXT"
    """PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""
    sasl_mechanism: str = "PLAIN"
    """PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL protocols only)."""
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    """Only from KPISTREAM_KAFKA_SASL_PASSWORD or the file named by sasl_password_file; a
    secret: kept out of repr and every log line."""
    ssl_cafile: Path | None = None
    """CA certificates (PEM) to check the brokers' certificates; none: the system's."""
    ssl_certfile: Path | None = None
    """Client certificate (PEM) for mutual TLS, with ssl_keyfile."""
    ssl_keyfile: Path | None = None

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")


_KAFKA_KEYS = ("partitions", "replication_factor", "security_protocol", "sasl_mechanism",
               "sasl_username", "sasl_password_file", "ssl_cafile", "ssl_certfile",
               "ssl_keyfile")


def kafka_settings(table: Mapping[str, Any], env: Mapping[str, str]) -> KafkaSettings:
    """The ``[kafka]`` table with KPISTREAM_KAFKA_<KEY> overrides; files checked at start."""
    for key in table:
        if key == "sasl_password":
            raise SettingsError("[kafka] sasl_password", "a password is never read from the "
                                "config file: set KPISTREAM_KAFKA_SASL_PASSWORD or "
                                "[kafka] sasl_password_file")
        if key not in _KAFKA_KEYS:
            raise SettingsError(f"[kafka] {key}", f"unknown key; allowed: {_KAFKA_KEYS}")

    def get(key: str) -> tuple[str, object | None]:
        name = f"KPISTREAM_KAFKA_{key.upper()}"
        if name in env:
            return name, env[name]
        return f"[kafka] {key}", table.get(key)

    protocol = _choice(*get("security_protocol"), SECURITY_PROTOCOLS, "PLAINTEXT")
    mechanism = _choice(*get("sasl_mechanism"), SASL_MECHANISMS, "PLAIN")
    username_setting, username = get("sasl_username")
    password = _sasl_password(env, *get("sasl_password_file"))
    sasl = protocol.startswith("SASL_")
    if sasl and not username:
        raise SettingsError(username_setting, f"security_protocol {protocol} needs a user name")
    if sasl and not password:
        raise SettingsError("KPISTREAM_KAFKA_SASL_PASSWORD",
                            f"security_protocol {protocol} needs a password: set "
                            "KPISTREAM_KAFKA_SASL_PASSWORD or [kafka] sasl_password_file")
    if not sasl and (username or password):
        raise SettingsError(username_setting, f"SASL credentials are given but security_protocol "
                            f"is {protocol}: use SASL_SSL or SASL_PLAINTEXT")
    files = {key: _readable_file(*get(key)) for key in ("ssl_cafile", "ssl_certfile",
                                                         "ssl_keyfile")}
    if (files["ssl_certfile"] is None) != (files["ssl_keyfile"] is None):
        raise SettingsError("[kafka] ssl_certfile", "mutual TLS needs both ssl_certfile and "
                            "ssl_keyfile")
    if protocol not in ("SSL", "SASL_SSL") and any(files.values()):
        raise SettingsError("[kafka] security_protocol", f"TLS files are given but "
                            f"security_protocol is {protocol}: use SSL or SASL_SSL")
    return KafkaSettings(
        replication_factor=_replication_factor(*get("replication_factor")),
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        sasl_username=str(username) if username else None,
        sasl_password=password,
        ssl_cafile=files["ssl_cafile"],
        ssl_certfile=files["ssl_certfile"],
        ssl_keyfile=files["ssl_keyfile"],
    )


def _choice(setting: str, value: object | None, allowed: tuple[str, ...], default: str) -> str:
    if value is None:
        return default
    text = str(value).strip().upper()
    if text not in allowed:
        raise SettingsError(setting, f"{value!r} is not one of {', '.join(allowed)}")
    return text


def _replication_factor(setting: str, value: object | None) -> int:
    if value is None:
        return BROKER_DEFAULT
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"-1|[1-9][0-9]{0,3}", text):
        raise SettingsError(setting, f"{value!r} is not a replica count 1-1000, or -1 for the "
                            "broker's default.replication.factor")
    count = int(text)
    if count > 1000:
        raise SettingsError(setting, f"{value!r} is not a replica count 1-1000")
    return count


def _readable_file(setting: str, value: object | None) -> Path | None:
    if value is None or value == "":
        return None
    path = Path(str(value))
    try:
        path.read_bytes()
    except OSError as exc:
        raise SettingsError(setting, f"cannot read {path}: {exc.strerror or exc}") from None
    return path


def _sasl_password(env: Mapping[str, str], file_setting: str, file: object | None) -> str | None:
    """From KPISTREAM_KAFKA_SASL_PASSWORD, else the first line of sasl_password_file."""
    if env.get("KPISTREAM_KAFKA_SASL_PASSWORD"):
        return env["KPISTREAM_KAFKA_SASL_PASSWORD"]
    if file is None or file == "":
        return None
    try:
        text = Path(str(file)).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(file_setting, f"cannot read {file}: {exc}") from None
    password = text.strip("\r\n")
    if not password:
        raise SettingsError(file_setting, f"{file} is empty")
    return password
