"""Click-id attribution: clicks remembered for the attribution window, orders joined to them.

An order may be read before its click (the topics are read independently): it waits up
to ``grace_ms`` for the click, then goes on unattributed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.attribution import UNATTRIBUTED
from streams.dedup import ExpiringKeys
from streams.orders import OrderRoute

__all__ = ["Click", "ClickBook"]

Click = tuple[int, str, str]
"""(ts_ms, campaign, channel) of a remembered click."""


@dataclass
class ClickBook:
    """Clicks by click id, and orders waiting for their click."""

    window_ms: int
    grace_ms: int
    clicks: dict[str, Click] = field(default_factory=dict)
    waiting: dict[str, list[tuple[int, OrderRoute]]] = field(default_factory=dict)
    _expiry: ExpiringKeys = field(default_factory=ExpiringKeys)

    def remember(self, click_id: str, click: Click) -> list[OrderRoute]:
        """Keep a click; returns waiting orders it attributes.

        Click ids are meant to be unique; if one comes twice, the earliest click is kept,
        whatever order they are read in.
        """
        known = self.clicks.get(click_id)
        if known is None or click < known:
            self.load_click(click_id, click)
        released = []
        still_waiting = []
        for due, order in self.waiting.pop(click_id, []):
            if self._claim(order):
                released.append(order)
            else:
                still_waiting.append((due, order))
        if still_waiting:
            self.waiting[click_id] = still_waiting
        return released

    def join(self, order: OrderRoute, now_ms: int) -> OrderRoute | None:
        """The order attributed to its click, or None: it waits for the click."""
        if self._claim(order):
            return order
        assert order.click_id is not None
        self.waiting.setdefault(order.click_id, []).append((now_ms + self.grace_ms, order))
        return None

    def due(self, now_ms: int) -> tuple[list[OrderRoute], set[str]]:
        """Orders whose wait is over (they go on unattributed) and the click ids touched."""
        released: list[OrderRoute] = []
        touched: set[str] = set()
        for click_id in list(self.waiting):
            entries = self.waiting[click_id]
            keep = [(due, order) for due, order in entries if due > now_ms]
            if len(keep) != len(entries):
                for due, order in entries:
                    if due <= now_ms:
                        order.campaign = UNATTRIBUTED
                        released.append(order)
                touched.add(click_id)
                if keep:
                    self.waiting[click_id] = keep
                else:
                    del self.waiting[click_id]
        return released, touched

    def expire(self, now_ms: int) -> list[str]:
        """Forget clicks older than the attribution window by the wall clock."""
        gone = self._expiry.expire(now_ms - self.window_ms)
        for click_id in gone:
            self.clicks.pop(click_id, None)
        return gone

    def load_click(self, click_id: str, click: Click) -> None:
        self.clicks[click_id] = click
        self._expiry.set(click_id, click[0])

    def clear(self) -> None:
        self.clicks.clear()
        self.waiting.clear()
        self._expiry.clear()

    def _claim(self, order: OrderRoute) -> bool:
        click = self.clicks.get(order.click_id or "")
        if click is None:
            return False
        ts_ms, campaign, channel = click
        if not 0 <= order.ts_ms - ts_ms <= self.window_ms:
            return False
        order.campaign, order.channel = campaign, channel
        return True
