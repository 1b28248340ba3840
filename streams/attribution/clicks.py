"""Click-id attribution: clicks remembered for the attribution window, orders joined to them.

An order may be read before its click (the topics are read independently): it waits up
to ``grace_ms`` for the click, then goes on unattributed.

A released order stays on the waiting list, marked with the source offset of the message
that released it, until well after it was sent on: if the worker dies before the send
lands, the replay of that message finds the mark and sends the order again (later
stages drop the copy if the first one did land).

``due`` runs on every click-join message, so it looks only at what is due: the click ids
on a heap of the times their orders' waits end and their marks are dropped, and those
released by the offset given (a replay), never at every waiting order.

The clicks themselves are not held here: ``known`` asks the clicks table's store
(streams.stages.click_records, on disk in a worker), and the book holds only the clicks
the message being handled keeps (``added``), which the stage writes as its record.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import count

from streams.attribution.named import UNATTRIBUTED
from streams.attribution.orders import OrderRoute

__all__ = ["Click", "ClickBook"]

Click = tuple[int, str, str, str | None]
"""(ts_ms, campaign, channel, content type) of a remembered click."""
Known = Callable[[str], "tuple[Click, int] | None"]
"""A click id's remembered click and the offset of the message that kept it, if any."""


def _none_known(click_id: str) -> tuple[Click, int] | None:
    return None

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
    known: Known = _none_known
    """The clicks kept by earlier messages (the clicks table's store)."""
    added: dict[str, Click] = field(default_factory=dict)
    """The clicks the message being handled keeps: written as its record, then cleared."""
    _forgotten_before: int | None = None
    """Clicks older than this (the attribution window before the last tick) are gone."""
    _waiting: dict[str, list[Waiting]] = field(default_factory=dict)
    _looks: list[tuple[int, int, str]] = field(default_factory=list)
    """A heap of (time, sequence, click id): when ``due`` must look at a click id's
    orders again (an order's wait ends, a released order's mark is to be dropped)."""
    _released_at: dict[int, set[str]] = field(default_factory=dict)
    """Offset -> click ids with an order it released and still marked."""
    _since: dict[str, int] = field(default_factory=dict)
    """Click id -> when it got its waiting list (a sequence number): ``due`` goes through
    click ids in that order, as through ``waiting``."""
    _sequence: count[int] = field(default_factory=count)

    @property
    def waiting(self) -> dict[str, list[Waiting]]:
        """Orders waiting for their click (or marked), by click id; change them with
        ``join`` and ``load_waiting``."""
        return self._waiting

    def remember(self, click_id: str, click: Click, offset: int) -> list[OrderRoute]:
        """Keep a click; returns the waiting orders it attributes (released at ``offset``).

        Click ids are meant to be unique; if one comes twice, the earliest click is kept,
        whatever order they are read in.
        """
        self.keep_earliest(click_id, click, offset)
        return [w.order for w in self._waiting.get(click_id, [])
                if self._release(click_id, w, offset, claim=True)]

    def join(self, order: OrderRoute, now_ms: int) -> OrderRoute | None:
        """The order attributed to its click, or None: it waits for the click."""
        if self._claim(order):
            return order
        assert order.click_id is not None
        self._add_waiting(order.click_id, [Waiting(now_ms + self.grace_ms, order)])
        return None

    def load_waiting(self, click_id: str, entries: Iterable[Waiting]) -> None:
        """Put back a click id's waiting orders read from the table (a rebuild)."""
        self._add_waiting(click_id, list(entries))

    def _add_waiting(self, click_id: str, entries: list[Waiting]) -> None:
        if click_id not in self._waiting:
            self._since[click_id] = next(self._sequence)
        self._waiting.setdefault(click_id, []).extend(entries)
        for entry in entries:
            self._look_at(entry.due_ms, click_id)
            if entry.released is not None:
                self._released_at.setdefault(entry.released, set()).add(click_id)

    def _look_at(self, when_ms: int, click_id: str) -> None:
        heapq.heappush(self._looks, (when_ms, next(self._sequence), click_id))

    def due(self, now_ms: int, offset: int) -> tuple[list[OrderRoute], set[str]]:
        """Orders whose wait is over (they go on unattributed) and the click ids touched."""
        released: list[OrderRoute] = []
        touched: set[str] = set()
        keep_ms = max(self.grace_ms, KEEP_RELEASED_MS)
        keep_until = now_ms - keep_ms
        looks = self._looks
        look_at = set(self._released_at.get(offset, ()))  # a replay sends them again
        while looks and looks[0][0] <= now_ms:
            look_at.add(heapq.heappop(looks)[2])
        for click_id in sorted(look_at & self._waiting.keys(), key=self._since.__getitem__):
            entries = self._waiting[click_id]
            for entry in entries:
                if entry.due_ms <= now_ms and self._release(click_id, entry, offset,
                                                            claim=False):
                    released.append(entry.order)
                    touched.add(click_id)
            kept = [e for e in entries if e.released is None or e.due_ms > keep_until]
            for entry in kept:  # a released order's mark goes when its time is up
                if entry.released is not None and entry.due_ms <= now_ms:
                    self._look_at(entry.due_ms + keep_ms, click_id)
            if len(kept) != len(entries):
                touched.add(click_id)
                self._unmark(click_id, entries, kept)
                if kept:
                    self._waiting[click_id] = kept
                else:
                    del self._waiting[click_id]
                    del self._since[click_id]
        return released, touched

    def _unmark(self, click_id: str, entries: list[Waiting], kept: list[Waiting]) -> None:
        """Forget the offsets of dropped orders' marks that no kept order still has."""
        still = {e.released for e in kept}
        for entry in entries:
            if entry.released is not None and entry.released not in still:
                ids = self._released_at.get(entry.released)
                if ids is not None:
                    ids.discard(click_id)
                    if not ids:
                        del self._released_at[entry.released]

    def _release(self, click_id: str, entry: Waiting, offset: int, *, claim: bool) -> bool:
        """Whether to send ``entry`` on now: newly released, or released by this replay."""
        if entry.released is not None:
            return entry.released == offset
        if claim:
            if not self._claim(entry.order):
                return False
        else:
            entry.order.campaign = UNATTRIBUTED
        entry.released = offset
        self._released_at.setdefault(offset, set()).add(click_id)
        return True

    def expire(self, now_ms: int) -> None:
        """Forget clicks older than the attribution window by the wall clock (a click
        exactly the window old can still claim an order, as ``_claim`` allows)."""
        self._forgotten_before = now_ms - self.window_ms

    def click(self, click_id: str) -> Click | None:
        """The click id's click: added by this message, or kept before and not forgotten."""
        added = self.added.get(click_id)
        if added is not None:
            return added
        known = self.known(click_id)
        if known is None or (self._forgotten_before is not None
                             and known[0][0] < self._forgotten_before):
            return None
        return known[0]

    def keep_earliest(self, click_id: str, click: Click, offset: int) -> None:
        """Keep ``click`` (into ``added``) unless an earlier click of the same id is known.
        A click kept by this very message (read again after a crash) counts as not known:
        the message decides again, and writes its record again."""
        known = self.added.get(click_id)
        if known is None:
            kept = self.known(click_id)
            if kept is not None and kept[1] != offset and (
                    self._forgotten_before is None or kept[0][0] >= self._forgotten_before):
                known = kept[0]
        if known is None or click[:3] < known[:3]:
            self.added[click_id] = click

    def clear(self) -> None:
        self.added.clear()
        self._forgotten_before = None
        self._waiting.clear()
        self._looks.clear()
        self._released_at.clear()
        self._since.clear()

    def _claim(self, order: OrderRoute) -> bool:
        click = self.click(order.click_id or "")
        if click is None:
            return False
        ts_ms, campaign, channel, content = click
        if not 0 <= order.ts_ms - ts_ms <= self.window_ms:
            return False
        order.campaign, order.channel, order.content = campaign, channel, content
        return True
