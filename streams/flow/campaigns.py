"""Live campaign-channels per partition: the cap on new ones, and retiring silent ones.

SPEC 4: a flood of new campaign or channel names (a broken tracker) cannot exhaust memory
or Prometheus. A campaign-channel is live from its first counted event until
``[kpi] campaign_retention`` after its last; past ``[kpi] max_campaign_channels`` live
ones per deployment, events that would start a new one are refused. A campaign lives on
one partition, and no worker sees the others' partitions, so the cap is kept per
partition: its share, ``ceil(max / partitions)``, which keeps the deployment within the
cap (a deployment near the cap may see its first refusals in its fullest partition a
little before the total reaches it).

Pure: no Kafka. Last-seen times are by the worker's clock when an event is counted; after
a restart a campaign-channel counts as seen at its newest minute bucket, or at the
restart if it has none within the windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.config.durations import MINUTE_MS

__all__ = ["CampaignChannels", "limit_reason"]

Cell = tuple[str, str]
"""(campaign, channel)."""


def limit_reason(max_campaign_channels: int, per_partition: int) -> str:
    return (f"too many campaign-channels: [kpi] max_campaign_channels is "
            f"{max_campaign_channels} live per deployment ({per_partition} per partition), "
            "and this event would start another")


@dataclass
class CampaignChannels:
    """Per partition: live campaign-channels and when each was last counted."""

    max_campaign_channels: int
    """The deployment's cap ([kpi] max_campaign_channels)."""
    partitions: int
    retention_ms: int
    live: dict[int, dict[Cell, int]] = field(default_factory=dict)
    _scanned_minute: dict[int, int] = field(default_factory=dict)

    @property
    def per_partition(self) -> int:
        """A partition's share of the cap."""
        return -(-self.max_campaign_channels // self.partitions)

    @property
    def refusal(self) -> str:
        """The dead-letter reason of an event refused by the cap."""
        return limit_reason(self.max_campaign_channels, self.per_partition)

    def admit(self, partition: int, campaign: str, channels: list[str]) -> set[str]:
        """The channels (distinct, in the order they first appear in a message) that may
        count now: live ones, and new ones in that order while the partition has room,
        so a replay of the message admits the same."""
        cells = self.live.setdefault(partition, {})
        new = [ch for ch in channels if (campaign, ch) not in cells]
        room = max(0, self.per_partition - len(cells))
        return set(channels) - set(new[room:])

    def seen(self, partition: int, cells: set[Cell], now_ms: int) -> None:
        live = self.live.setdefault(partition, {})
        for cell in cells:
            live[cell] = now_ms

    def retire(self, partition: int, now_ms: int) -> list[Cell]:
        """Campaign-channels of ``partition`` silent for the retention; checked once a
        minute per partition."""
        minute = now_ms // MINUTE_MS
        if self._scanned_minute.get(partition) == minute:
            return []
        self._scanned_minute[partition] = minute
        live = self.live.get(partition, {})
        cutoff = now_ms - self.retention_ms
        gone = [cell for cell, last in live.items() if last < cutoff]
        for cell in gone:
            del live[cell]
        return gone

    def load(self, partition: int, cell: Cell, seen_ms: int) -> None:
        """A campaign-channel read back from the table (a rebuild)."""
        live = self.live.setdefault(partition, {})
        live[cell] = max(live.get(cell, seen_ms), seen_ms)

    def clear(self) -> None:
        self.live.clear()
        self._scanned_minute.clear()
