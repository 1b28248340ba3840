"""Click-id attribution: clicks remembered for the attribution window, orders joined to them.

An order may be read before its click (the topics are read independently): it waits up
to ``grace_ms`` for the click, then goes on unattributed.

A released order stays on the waiting list, marked with the source offset of the message
that released it, until well after it was sent on: if the worker dies before the send
lands, the replay of that message finds the mark and sends the order again (later
stages drop the copy if the first one did land).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.attribution.expiry import ExpiringKeys
from streams.attribution.named import UNATTRIBUTED
from streams.attribution.orders import OrderRoute

__all__ = ["Click", "ClickBook"]

Click = tuple[int, str, str, str | None]
"""(ts_ms, campaign, channel, content type) of a remembered click."""

KEEP_RELEASED_MS = 60_000
"""How long a released order keeps its mark: far longer than a commit interval."""


@dataclass(slots=True)
class Waiting:
    """An order waiting for its click; ``released`` is the offset that sent it on."""

    due_ms: int
    order: OrderRoute
    released: int | None = None


@dataclass
class ClickBook:
    """Clicks by click id, and orders waiting for their click."""

    window_ms: int
    grace_ms: int
    clicks: dict[str, Click] = field(default_factory=dict)
    waiting: dict[str, list[Waiting]] = field(default_factory=dict)
    _expiry: ExpiringKeys = field(default_factory=ExpiringKeys)

    def remember(self, click_id: str, click: Click, offset: int) -> list[OrderRoute]:
        """Keep a click; returns the waiting orders it attributes (released at ``offset``).

        Click ids are meant to be unique; if one comes twice, the earliest click is kept,
        whatever order they are read in.
        """
        self.keep_earliest(click_id, click)
        return [w.order for w in self.waiting.get(click_id, [])
                if self._release(w, offset, claim=True)]

    def join(self, order: OrderRoute, now_ms: int) -> OrderRoute | None:
        """The order attributed to its click, or None: it waits for the click."""
        if self._claim(order):
            return order
        assert order.click_id is not None
        self.waiting.setdefault(order.click_id, []).append(Waiting(now_ms + self.grace_ms, order))
        return None

    def due(self, now_ms: int, offset: int) -> tuple[list[OrderRoute], set[str]]:
        """Orders whose wait is over (they go on unattributed) and the click ids touched."""
        released: list[OrderRoute] = []
        touched: set[str] = set()
        keep_until = now_ms - max(self.grace_ms, KEEP_RELEASED_MS)
        for click_id in list(self.waiting):
            entries = self.waiting[click_id]
            for entry in entries:
                if entry.due_ms <= now_ms and self._release(entry, offset, claim=False):
                    released.append(entry.order)
                    touched.add(click_id)
            kept = [e for e in entries if e.released is None or e.due_ms > keep_until]
            if len(kept) != len(entries):
                touched.add(click_id)
                if kept:
                    self.waiting[click_id] = kept
                else:
                    del self.waiting[click_id]
        return released, touched

    def _release(self, entry: Waiting, offset: int, *, claim: bool) -> bool:
        """Whether to send ``entry`` on now: newly released, or released by this replay."""
        if entry.released is not None:
            return entry.released == offset
        if claim:
            if not self._claim(entry.order):
                return False
        else:
            entry.order.campaign = UNATTRIBUTED
        entry.released = offset
        return True

    def expire(self, now_ms: int) -> list[str]:
        """Forget clicks older than the attribution window by the wall clock (a click
        exactly the window old can still claim an order, as ``_claim`` allows)."""
        gone = self._expiry.expire(now_ms - self.window_ms - 1)
        for click_id in gone:
            self.clicks.pop(click_id, None)
        return gone

    def keep_earliest(self, click_id: str, click: Click) -> None:
        """Keep ``click`` unless an earlier click of the same id is known."""
        known = self.clicks.get(click_id)
        if known is None or click[:3] < known[:3]:
            self.load_click(click_id, click)

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
        ts_ms, campaign, channel, content = click
        if not 0 <= order.ts_ms - ts_ms <= self.window_ms:
            return False
        order.campaign, order.channel, order.content = campaign, channel, content
        return True
