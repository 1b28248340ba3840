"""Each stream partition's messages reach its stage in offset order, with no hole.

Faust's stream drops a message fetched in an earlier consumer generation (or while flow
control is off) and acks it, "so the lag does not grow". On Apache Kafka this lost
events in about 1 of 10 runs of the 1 -> 2 -> 3 -> 1 scale test: a worker that kept
kpi-events partition 0 through a rebalance had offsets 160-167 (produced during the
rebalance) dropped and acked, handled 168 onward, and committed past 160-167 without
counting them (430 views, clicks and orders of 4 campaigns).

The internal topics have dense offsets (no compaction, no transactions), so a
partition's next message is expected at exactly the next offset, and:

- only the stage's own acks count (streams.kafka.stream_consumer): a message Faust drops is
  never committed;
- a message below the expected offset was handled already: dropped;
- a message above it means a hole: it is not handled or acked, and the wiring seeks the
  partition back to the expected offset, whose messages then come again in order. Until
  they do, later messages (fetched before the seek) are dropped without asking again:
  under load a seek took ~12 s, and when each of those asked for its own seek a
  partition stayed at one offset for minutes. Only the timer (``overdue``) asks again,
  ``RESEEK_AFTER_MS`` after the last seek was done.

Pure bookkeeping; streams.worker.agents does the seeking.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from enum import Enum

__all__ = ["RESEEK_AFTER_MS", "Admit", "OffsetOrder"]

RESEEK_AFTER_MS = 2_000
"""How long after a hole's seek was done the missing offset may take to come before the
seek is asked for again."""


class Admit(Enum):
    TAKE = "take"
    """The expected offset: handle it."""
    SEEN = "seen"
    """Below the expected offset: handled already, drop it."""
    HOLE = "hole"
    """Above the expected offset, and the partition needs a seek back to it now."""
    AHEAD = "ahead"
    """Above the expected offset, a seek back to it already asked for: drop it."""


@dataclass
class OffsetOrder:
    """The next offset each partition's stage takes, reset whenever the consumer seeks."""

    _next: dict[Hashable, int] = field(default_factory=dict)
    _tracked: set[Hashable] = field(default_factory=set)
    """Partitions a seek has placed: the stream partitions (not changelogs)."""
    _seek_asked_ms: dict[Hashable, int] = field(default_factory=dict)
    """Partitions with a hole: when their last seek back was asked for, or done."""
    _seeking: set[Hashable] = field(default_factory=set)
    """Partitions whose seek back is under way: the timer does not ask again meanwhile."""

    def reset(self, positions: Mapping[Hashable, int | None]) -> None:
        """The consumer now reads these partitions from these offsets (None: unknown, the
        first message read sets it)."""
        for tp, offset in positions.items():
            self._tracked.add(tp)
            if offset != self._next.get(tp):  # a seek back to a hole keeps its mark
                self._seek_asked_ms.pop(tp, None)
                self._seeking.discard(tp)
            if offset is None or offset < 0:
                self._next.pop(tp, None)
            else:
                self._next[tp] = offset

    def overdue(self, now_ms: int) -> list[tuple[Hashable, int]]:
        """Holes whose seek has not brought the missing offset for ``RESEEK_AFTER_MS``
        (a fetch under way when it seeked can undo it), with the offset to seek to; each
        counts as asked again now. Checked on a timer: no later message may come."""
        due = [(tp, self._next[tp]) for tp, asked in self._seek_asked_ms.items()
               if now_ms - asked >= RESEEK_AFTER_MS and tp in self._next
               and tp not in self._seeking]
        for tp, _ in due:
            self._seek_asked_ms[tp] = now_ms
            self._seeking.add(tp)
        return due

    def expected(self, tp: Hashable) -> int | None:
        return self._next.get(tp)

    def admit(self, tp: Hashable, offset: int, now_ms: int) -> Admit:
        """What to do with the message at ``offset`` of partition ``tp``."""
        expected = self._next.get(tp)
        if expected is None or offset == expected:
            self._next[tp] = offset + 1
            self._seek_asked_ms.pop(tp, None)
            self._seeking.discard(tp)
            return Admit.TAKE
        if offset < expected:
            return Admit.SEEN
        if tp in self._seek_asked_ms:
            return Admit.AHEAD
        self._seek_asked_ms[tp] = now_ms
        self._seeking.add(tp)
        return Admit.HOLE

    def put_back(self, tp: Hashable, offset: int, now_ms: int) -> None:
        """The stage did not take the message at ``offset`` (it came while the tables were
        being recovered): it is expected again, and, should no seek bring it, the timer
        (``overdue``) asks for a seek back to it ``RESEEK_AFTER_MS`` from now."""
        expected = self._next.get(tp)
        if expected is not None and expected != offset:
            return  # handled already (below), or an earlier offset is missing (above)
        self._next[tp] = offset
        self._seek_asked_ms[tp] = now_ms
        self._seeking.discard(tp)

    def sought(self, tp: Hashable, now_ms: int) -> None:
        """The seek back to ``tp``'s hole is done (or failed): ``overdue`` counts from now."""
        self._seeking.discard(tp)
        if tp in self._seek_asked_ms:
            self._seek_asked_ms[tp] = now_ms

    def tracks(self, tp: Hashable) -> bool:
        return tp in self._tracked

