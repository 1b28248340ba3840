"""An event a stage could not handle: what SPEC 4 asks to dead-letter as ``internal error:``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["INTERNAL_ERROR", "Failure", "internal_reason"]

INTERNAL_ERROR = "internal error: "


@dataclass(frozen=True, slots=True)
class Failure:
    """One event that raised while a stage handled it; the rest of its message goes on."""

    type: str
    """view, engagement, click, order, spend (or unknown)."""
    reason: str
    """Starts with ``internal error:``; names the stage and the exception, never a value."""
    raw: str
    """The event as the stage saw it, for the dead-letter record."""
    index: int | None = None
    """Its place in its message, where a message holds several events."""


def internal_reason(stage: str, exc: BaseException) -> str:
    """The dead-letter reason for an exception in ``stage``: its type, not its text.

    An exception's text may quote the event (a customer id, say); the dead letter's raw
    field already holds the event, and log lines must never carry such ids.
    """
    return f"{INTERNAL_ERROR}{stage} failed on this event ({type(exc).__name__})"
