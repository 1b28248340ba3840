"""Live campaign-channels per worker: the cap on new ones, and retiring silent ones.

SPEC 4: a flood of new campaign or channel names (a broken tracker) cannot exhaust memory
or Prometheus. A campaign-channel is live from its first counted event until
``[kpi] campaign_retention`` after its last; past ``[kpi] max_campaign_channels`` live
ones per deployment, events that would start a new one are refused. A campaign lives on
one partition, and no worker sees the partitions of the others, so each worker keeps the
share of the cap of the partitions it owns, ``ceil(max * owned / partitions)``, over all
of them together: a worker that owns every partition keeps the cap exactly however the
campaigns hash, and several workers stay within it together. (A share per partition
refused 1.8 % of the events of 10,000 campaign-channels at a cap of 10,000 over 8
partitions: 2,500 campaigns do not hash evenly.)

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


def limit_reason(max_campaign_channels: int, share: int, owned: int, partitions: int) -> str:
    return (f"too many campaign-channels: [kpi] max_campaign_channels is "
            f"{max_campaign_channels} live per deployment ({share} on this worker, for "
            f"{owned} of {partitions} partitions), and this event would start another")


@dataclass
class CampaignChannels:
    """Per partition: live campaign-channels and when each was last counted."""

    max_campaign_channels: int
    """The deployment's cap ([kpi] max_campaign_channels)."""
    partitions: int
    retention_ms: int
    live: dict[int, dict[Cell, int]] = field(default_factory=dict)
    owned: int | None = None
    """How many partitions this worker owns (None: every one)."""
    _count: int = 0
    """Live campaign-channels over every partition held."""
    _scanned_minute: dict[int, int] = field(default_factory=dict)

    @property
    def _owned(self) -> int:
        return self.partitions if self.owned is None else self.owned

    @property
    def share(self) -> int:
        """This worker's share of the cap: its partitions'."""
        return -(-self.max_campaign_channels * self._owned // self.partitions)

    @property
    def refusal(self) -> str:
        """The dead-letter reason of an event refused by the cap."""
        return limit_reason(self.max_campaign_channels, self.share, self._owned,
                            self.partitions)

    def admit(self, partition: int, campaign: str, channels: list[str]) -> set[str]:
        """The channels (distinct, in the order they first appear in a message) that may
        count now: live ones, and new ones in that order while the worker has room."""
        cells = self.live.setdefault(partition, {})
        new = [ch for ch in channels if (campaign, ch) not in cells]
        room = max(0, self.share - self._count)
        return set(channels) - set(new[room:])

    def seen(self, partition: int, cells: set[Cell], now_ms: int) -> None:
        live = self.live.setdefault(partition, {})
        before = len(live)
        for cell in cells:
            live[cell] = now_ms
        self._count += len(live) - before

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
        self._count -= len(gone)
        return gone

    def load(self, partition: int, cell: Cell, seen_ms: int) -> None:
        """A campaign-channel read back from the table (a rebuild)."""
        live = self.live.setdefault(partition, {})
        self._count += cell not in live
        live[cell] = max(live.get(cell, seen_ms), seen_ms)

    def clear(self, owned: int | None = None) -> None:
        """Forget every partition, before a rebuild for the ``owned`` (how many) now."""
        self.live.clear()
        self._count = 0
        self.owned = owned
        self._scanned_minute.clear()
