"""Which partition a routing key goes to: Kafka's default partitioner, as producers use."""

from __future__ import annotations

from aiokafka.partitioner import murmur2

__all__ = ["partition_for"]


def partition_for(key: str, partitions: int) -> int:
    """The partition of a routing key (Kafka's default murmur2 partitioner)."""
    hashed: int = murmur2(key.encode("utf-8"))
    return (hashed & 0x7FFFFFFF) % partitions
