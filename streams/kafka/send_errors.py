"""Which failed sends a restart of the worker may mend."""

from __future__ import annotations

from aiokafka.errors import KafkaError, KafkaTimeoutError

__all__ = ["transient"]


def transient(error: BaseException) -> bool:
    """Whether a send that failed (after the producer's own retries) may go through once
    the worker is restarted: a Kafka error marked retriable (a leader moved, too few
    replicas in sync), a delivery that timed out (the producer gave up waiting for the
    brokers) or a lost connection. Not a record over the topic's ``max.message.bytes`` or
    a write the ACLs refuse: those fail again on any worker that takes the partition."""
    if isinstance(error, KafkaTimeoutError | ConnectionError):  # not marked retriable
        return True
    return isinstance(error, KafkaError) and bool(error.retriable)
