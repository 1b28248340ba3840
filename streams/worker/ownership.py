"""Which partitions, and so which campaigns, this worker owns and serves right now."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.kafka.partitions import partition_for

__all__ = ["Ownership"]


class Ownership:
    """Faust's assignment, read for the internal topics (``topics``: role -> Faust topic)."""

    def __init__(self, faust_app: Any, topics: dict[str, Any], partitions: int) -> None:
        self._app = faust_app
        self._topics = topics
        self._partitions = partitions
        self._of_campaign: dict[str, int] = {}

    def partition(self, key: str) -> int:
        """The partition of an internal topic a routing key (campaign, click, customer) is on."""
        return partition_for(key, self._partitions)

    def campaign_partition(self, campaign: str) -> int:
        """``partition`` of a campaign, remembered (campaigns are few, clicks and customers
        are not): a scrape asks it of every campaign-channel three times, 1.5 us each in
        murmur2's Python, ~45 ms at 10,000 campaign-channels."""
        partition = self._of_campaign.get(campaign)
        if partition is None:
            partition = self._of_campaign[campaign] = self.partition(campaign)
        return partition

    def owned_partitions(self, topic: str = "kpi_events") -> set[int]:
        """Partitions of an internal topic this worker actively owns now."""
        name = self._topics[topic].get_topic_name()
        return {tp.partition for tp in self._app.assignor.assigned_actives()
                if tp.topic == name}

    def served_partitions(self) -> set[int]:
        """Partitions whose KPIs /metrics shows: none while a rebalance is under way.

        A worker learns which partitions it lost only when the rebalance hands out the
        new assignment, and another worker may have recovered them and be serving them
        by then (seen in 2 of 10 scale-test runs: the old owner still served a campaign
        0.1 s after the new one had recovered it).
        Faust's ``rebalancing`` is set before this worker rejoins the group and cleared
        once its recovery is done, so no campaign is ever served by two workers.
        """
        return set() if self._app.rebalancing else self.owned_partitions()

    def owns(self, topic: str) -> Callable[[str], int | None]:
        """For the stages' rebuild: a key's partition if this worker owns it now, else None."""
        mine = self.owned_partitions(topic)

        def owner(key: str) -> int | None:
            partition = self.partition(key)
            return partition if partition in mine else None

        return owner
