"""Errors raised by kpistream.

KpistreamError
 └── SettingsError   a setting is missing or wrong; names the setting
"""

from __future__ import annotations

__all__ = ["KpistreamError", "SettingsError"]


class KpistreamError(Exception):
    """Base of every error kpistream raises on purpose."""


class SettingsError(KpistreamError):
    """A setting is wrong; the message starts with the setting's name."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"setting {setting}: {problem}")
        self.setting = setting
