"""The ``[collector]`` settings of the HTTP collector: its port, tokens, body limit, CORS."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.config.errors import SettingsError

__all__ = ["CollectorSettings", "collector_settings"]


@dataclass(frozen=True, slots=True)
class CollectorSettings:
    """The HTTP collector's settings, from the ``[collector]`` table."""

    port: int = 6067
    """KPISTREAM_COLLECTOR_PORT or [collector] port."""
    host: str = "0.0.0.0"
    """KPISTREAM_COLLECTOR_HOST or [collector] host: address the collector binds."""
    tokens: Mapping[str, str] = field(default_factory=dict, repr=False)
    """[collector.tokens] tracker = "token"; KPISTREAM_COLLECTOR_TOKENS="tracker=token,..."
    replaces the table. Secrets: kept out of repr."""
    max_body_bytes: int = 1024 * 1024
    """KPISTREAM_COLLECTOR_MAX_BODY or [collector] max_body_bytes: larger requests get 413."""
    cors_origins: tuple[str, ...] = ("*",)
    """KPISTREAM_COLLECTOR_CORS_ORIGINS (comma-separated) or [collector] cors_origins."""


_TRACKER = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_TOKEN = re.compile(r"^[A-Za-z0-9._~+/-]{16,512}=*$")  # RFC 6750 b64token, 16+ characters
_ORIGIN = re.compile(r"^(\*|https?://[^\s/,]+)$")


def collector_settings(table: Mapping[str, Any], env: Mapping[str, str]) -> CollectorSettings:
    defaults = CollectorSettings()
    tokens_env = env.get("KPISTREAM_COLLECTOR_TOKENS")
    if tokens_env is not None:
        tokens = _tokens_from_env(tokens_env)
    else:
        tokens_table = table.get("tokens", {})
        if not isinstance(tokens_table, Mapping):
            raise SettingsError("[collector.tokens]", "must be a table: tracker = \"token\"")
        tokens = _tokens(tokens_table, "[collector.tokens]")
    origins = env.get("KPISTREAM_COLLECTOR_CORS_ORIGINS")
    return CollectorSettings(
        port=_number(env.get("KPISTREAM_COLLECTOR_PORT", table.get("port", defaults.port)),
                     "KPISTREAM_COLLECTOR_PORT", 1, 65535),
        host=str(env.get("KPISTREAM_COLLECTOR_HOST", table.get("host", defaults.host))),
        tokens=tokens,
        max_body_bytes=_number(
            env.get("KPISTREAM_COLLECTOR_MAX_BODY",
                    table.get("max_body_bytes", defaults.max_body_bytes)),
            "KPISTREAM_COLLECTOR_MAX_BODY", 1024, 64 * 1024 * 1024),
        cors_origins=_origins(
            origins.split(",") if origins is not None
            else table.get("cors_origins", list(defaults.cors_origins)),
            "KPISTREAM_COLLECTOR_CORS_ORIGINS" if origins is not None
            else "[collector] cors_origins"),
    )


def _number(value: object, setting: str, low: int, high: int) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or not low <= int(text) <= high:
        raise SettingsError(setting, f"{value!r} is not a whole number {low}-{high}")
    return int(text)


def _tokens_from_env(text: str) -> dict[str, str]:
    setting = "KPISTREAM_COLLECTOR_TOKENS"
    table: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        tracker, sep, token = item.partition("=")
        if not sep:
            raise SettingsError(setting, f"entry {tracker[:20]!r}... is not tracker=token")
        table[tracker.strip()] = token.strip()
    return _tokens(table, setting)


def _tokens(table: Mapping[str, Any], setting: str) -> dict[str, str]:
    """Tracker -> bearer token; a token is never echoed in an error."""
    seen: set[str] = set()
    for tracker, token in table.items():
        if not _TRACKER.fullmatch(tracker):
            raise SettingsError(setting, f"tracker name {tracker!r} must be 1-64 characters "
                                "of A-Za-z0-9._-")
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise SettingsError(f"{setting} {tracker}", "the token must be 16-512 characters "
                                "of A-Za-z0-9-._~+/ (then = padding), e.g. from "
                                "python -c 'import secrets; print(secrets.token_urlsafe(32))'")
        if token in seen:
            raise SettingsError(f"{setting} {tracker}", "this token is another tracker's too; "
                                "every tracker needs its own")
        seen.add(token)
    return dict(table)


def _origins(value: object, setting: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise SettingsError(setting, 'must be a non-empty list like ["https://shop.example"]')
    origins = tuple(str(item).strip().rstrip("/") for item in value)
    for origin in origins:
        if not _ORIGIN.fullmatch(origin):
            raise SettingsError(setting, f"{origin!r} is not * or an origin like "
                                "https://shop.example")
    return origins


# --- [kafka]: security and topic settings ----------------------------------------------
