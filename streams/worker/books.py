"""The three stateful stages of a worker, rebuilt together when recovery ends."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from streams.config.settings import Window
from streams.stages.counting import CountStage
from streams.stages.customer_history import CustomerStage
from streams.stages.joining import ClickStage
from streams.windows.minutes import minute_of
from streams.windows.state import ExtrasRow, KpiRow
from streams.worker.clock import wall_clock_ms
from streams.worker.cycles import cycle_collection_paused
from streams.worker.ownership import Ownership

__all__ = ["Books", "ServedKpis"]

_log = logging.getLogger(__name__)


@dataclass(eq=False)
class Books:
    counts: CountStage
    clicks: ClickStage
    customers: CustomerStage

    def rebuild(self, ownership: Ownership) -> None:
        """Reload every stage from the recovered tables, dropping partitions we lost."""
        owned = ownership.owned_partitions()
        # The rebuilt state is long-lived and holds no reference cycles: the cyclic garbage
        # collector is kept from walking it while it grows (its passes took ~2 s of a 13 s
        # rebuild at 10,000 campaign-channels x 24 h), and from then on (refcounting still
        # frees it).
        with cycle_collection_paused():
            try:
                self.counts.rebuild(
                    owned, lambda campaign: ownership.campaign_partition(campaign) in owned,
                    wall_clock_ms())
                self.clicks.rebuild(ownership.owned_partitions("click_join"),
                                    ownership.owns("click_join"))
                self.customers.rebuild(ownership.owned_partitions("customer_orders"),
                                       ownership.owns("customer_orders"))
            finally:
                gc.freeze()


@dataclass(eq=False)
class ServedKpis:
    """The KPI rows of the campaigns this worker serves: what /metrics reads."""

    books: Books
    ownership: Ownership
    windows: tuple[Window, ...]

    def rows(self) -> Iterator[KpiRow]:
        """Window sums of the campaigns this worker serves, for the collector."""
        owned = self.ownership.served_partitions()
        return self.books.counts.state.rows(
            minute_of(wall_clock_ms()), self.windows,
            lambda campaign: self.ownership.campaign_partition(campaign) in owned,
        )

    def extras_rows(self) -> Iterator[ExtrasRow]:
        """Viewers, products, content types and LTV of the campaigns this worker serves,
        with the state's own maps in them (``KpiState.live_extras_rows``): the collector
        copies them as it collects (metrics.kpi_gauges.ScrapeRows)."""
        owned = self.ownership.served_partitions()
        return self.books.counts.state.live_extras_rows(
            minute_of(wall_clock_ms()), self.windows,
            lambda campaign: self.ownership.campaign_partition(campaign) in owned,
        )

    def rebuild(self) -> None:
        """The books rebuilt from the recovered tables, then every window of every
        campaign-channel summed once (``prime``)."""
        self.books.rebuild(self.ownership)
        try:
            self.prime()
        except Exception as error:  # a head start only: it must never stop recovery
            _log.warning("summing the windows after the rebuild failed (%s): the first "
                         "scrape sums them", type(error).__name__)

    def prime(self) -> None:
        """Sum every window now, as the first scrape after a start or rebalance would: that
        scrape then only moves the sums on (at 10,000 campaign-channels x 24 h, summing
        afresh was ~1 s of its 1.9 s). Held by the state's running sums."""
        for _ in self.rows():
            pass
        for _ in self.extras_rows():
            pass

    def owned_campaigns(self) -> set[str]:
        """Campaigns this worker serves and has counted, for the target collector."""
        owned = self.ownership.served_partitions()
        # No windows: only the running totals come back, so no minute bucket is summed.
        rows = self.books.counts.state.rows(
            0, (), lambda campaign: self.ownership.campaign_partition(campaign) in owned)
        return {campaign for campaign, _, _, _ in rows}
