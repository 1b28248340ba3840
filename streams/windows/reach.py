"""Distinct viewers (reach) per minute bucket and over trailing windows, as CPC sketches.

A minute's viewers are one Apache DataSketches CPC sketch (lg_k 11: 1.53 % relative standard
error once merged; serialized 48 bytes for 10 viewers, 576 for 1,000, 1,272 when dense;
figures and the choice against HLL in bench/README.md). Every estimate here is read from a
union's result, so it uses CPC's merged (ICON) estimator, which depends only on the set of
coupons: the same viewers give the same estimate whatever the order or grouping of merges,
a copy or a round trip through the changelog (an HLL union's estimate depends on the order
in which it took small sketches' coupons).

A window of N minutes at minute ``now`` holds the buckets ``now - N + 1`` and later, as for
the counters (buckets ahead of now count). ``WindowReach`` keeps a roll-up per hour (the
union of its minutes, rebuilt when one of them changes) and one union of the roll-ups of
the hours before the newest two; in an hour gone by that holds a window's trailing edge,
the union of each 10-minute block and the blocks after it. So a 24 h window unions at most
9 minute sketches, a block union, the middle's union and two roll-ups, and it remembers
the answer per window start until a bucket at or after that start changes. Building an
hour's roll-up freezes the minutes of an hour gone by (only their serialized bytes stay,
until a late view). Given ``read`` (a minute's sketch as the kpi table's store holds it in
its bucket), it goes further: an hour two or more behind the newest keeps only its roll-up
and the list of its minutes, and its
minutes are read back when they are needed again: a window's trailing edge inside it (that
hour then stays in memory: it is read at every estimate), or retention dropping part of
it; a late view into it reads back only its own minute and adds to the roll-up. User ids
never enter a sketch or a log: only ``user_key`` hashes of them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Final

from datasketches import cpc_sketch, cpc_union

__all__ = ["LG_K", "UserSketch", "WindowReach", "minute_bits", "union_wire", "user_key"]

LG_K: Final = 11
"""log2 of the CPC sketch's k: 2,048, 1.53 % relative standard error merged (SPEC: <= 2 %)."""

_HOUR: Final = 60
_KEY_MASK: Final = (1 << 63) - 1
_PERSON: Final = b"kpistream-user"
_CACHED_STARTS: Final = 16
"""Window answers remembered (a scrape asks a few windows at one ``now``)."""
_LIVE: Final = 2
"""Minute sketches kept live at once (``WindowReach._added_to``)."""
_BLOCK: Final = 10
"""Minutes of an edge hour's block: a window's trailing edge inside an hour gone by takes
the minutes left of its block and one union of the blocks after it (``_tails``)."""


def user_key(user_id: str) -> int:
    """Stable 63-bit hash of a user id (same on every process and machine; not Python's
    salted hash): what travels on the internal topic instead of the id."""
    digest = hashlib.blake2b(user_id.encode("utf-8"), digest_size=8, person=_PERSON).digest()
    return int.from_bytes(digest, "big") & _KEY_MASK


class UserSketch:
    """The distinct users of one minute bucket, or of any union of them.

    A sketch is live (a CPC sketch, updatable) or frozen (only its serialized bytes: 2-7x
    less memory for a minute that no longer changes); ``add`` thaws a frozen one.
    """

    __slots__ = ("_frozen", "_sketch")

    def __init__(self, sketch: cpc_sketch | None = None, frozen: bytes | None = None) -> None:
        """An empty sketch, ``sketch`` live, or the serialized non-empty sketch ``frozen``."""
        if frozen is not None:
            self._sketch: cpc_sketch | None = None
        else:
            self._sketch = cpc_sketch(LG_K) if sketch is None else sketch
        self._frozen = frozen

    @property
    def cpc(self) -> cpc_sketch:
        """The DataSketches sketch, to read or to union (a fresh one if frozen; update the
        sketch through ``add``)."""
        if self._sketch is None:
            return cpc_sketch.deserialize(self._frozen)
        return self._sketch

    def add(self, keys: Iterable[int]) -> None:
        if self._sketch is None:
            self._sketch, self._frozen = self.cpc, None
        update = self._sketch.update
        for key in keys:
            update(key)

    def merge(self, other: UserSketch) -> None:
        """In-place union with ``other``."""
        if other:
            self._sketch, self._frozen = _union((self, other)).cpc, None

    def estimate(self) -> float:
        """Distinct users, by the merged estimator (a function of the set alone)."""
        if not self:
            return 0.0
        return float(_union((self,)).cpc.get_estimate())

    def freeze(self) -> None:
        """Keep only the serialized form until the next ``add`` (an empty sketch stays live)."""
        if self._sketch is not None and not self._sketch.is_empty():
            self._frozen, self._sketch = bytes(self._sketch.serialize()), None

    @property
    def frozen(self) -> bool:
        return self._sketch is None

    def copy(self) -> UserSketch:
        return UserSketch(cpc_sketch.deserialize(self._serialized()))

    def to_wire(self) -> str:
        """Base64 of the sketch's serialized form, for the JSON changelog."""
        return base64.b64encode(self._serialized()).decode("ascii")

    @classmethod
    def from_wire(cls, text: str) -> UserSketch:
        """The sketch ``to_wire`` wrote, frozen (recovery loads many minutes no longer
        changing)."""
        try:
            blob = base64.b64decode(text, validate=True)
            sketch = cpc_sketch.deserialize(blob)
        except (binascii.Error, IndexError, RuntimeError, ValueError) as error:
            raise ValueError(f"not a serialized user sketch: {error}") from None
        if sketch.lg_k != LG_K:
            raise ValueError(f"user sketch has lg_k {sketch.lg_k}, expected {LG_K}")
        return cls(sketch) if sketch.is_empty() else cls(frozen=blob)

    def _serialized(self) -> bytes:
        if self._sketch is None:
            assert self._frozen is not None
            return self._frozen
        return bytes(self._sketch.serialize())

    def __bool__(self) -> bool:
        return self._sketch is None or not self._sketch.is_empty()


def _block_tails(hour: int, minutes: dict[int, UserSketch]) -> dict[int, UserSketch]:
    """For each block of ``hour``, the union of ``minutes`` in it and the blocks after it,
    frozen (made from the last block back: each minute is read once)."""
    by_block: list[list[UserSketch]] = [[] for _ in range(_HOUR // _BLOCK)]
    for minute, sketch in minutes.items():
        by_block[(minute - hour * _HOUR) // _BLOCK].append(sketch)
    union = cpc_union(LG_K)
    tails: dict[int, UserSketch] = {}
    for block in range(len(by_block) - 1, -1, -1):
        for sketch in by_block[block]:
            union.update(sketch.cpc)
        tail = tails[block] = UserSketch(union.get_result())
        tail.freeze()
    return tails


def _union_estimate(sketches: Iterable[UserSketch]) -> float:
    """``_union(sketches).estimate()``, one union fewer: a union's result is a merged
    sketch, whose own estimate is the merged (ICON) one."""
    return float(_merged(sketches).get_estimate())


def union_wire(sketches: Iterable[UserSketch]) -> str | None:
    """``to_wire`` of the union of ``sketches`` (an hour block's viewers), or None if no
    viewer is in them."""
    union = _union(sketches)
    return union.to_wire() if union else None


def _union(sketches: Iterable[UserSketch]) -> UserSketch:
    return UserSketch(_merged(sketches))


def _merged(sketches: Iterable[UserSketch]) -> cpc_sketch:
    union = cpc_union(LG_K)
    for sketch in sketches:
        union.update(sketch.cpc)
    return union.get_result()


def minute_bits(hour: int, minutes: Iterable[int]) -> int:
    """The minutes of ``hour`` as bits: bit ``i`` for its minute ``i``."""
    return sum(1 << (minute - hour * _HOUR) for minute in minutes)


class WindowReach:
    """One campaign-channel's minute sketches, their hour roll-ups and a running total."""

    __slots__ = ("_answers", "_edges", "_hours", "_live", "_newest", "_read", "_rollups",
                 "_settled", "_settled_version", "_spill_due", "_spilled", "_tails", "_total",
                 "_total_answer")

    def __init__(self, read: Callable[[int], UserSketch | None] | None = None) -> None:
        """``read``: a minute's sketch from the store (None: every minute stays in memory)."""
        self._hours: dict[int, dict[int, UserSketch]] = {}
        """Minute sketches by hour, then by minute (hours in memory)."""
        self._spilled: dict[int, int] = {}
        """Hours whose minute sketches are only in the store: their minutes, a bit each
        (bit ``m`` for the hour's minute ``m``)."""
        self._settled: dict[int, tuple[tuple[int, int, int, int], UserSketch]] = {}
        """Window length -> its middle, the union of the roll-ups of its hours before the
        newest two (live), with its (first hour, last hour, hours, ``_settled_version``).
        Made again about hourly; a late view into an hour left in the store adds to it (a
        union grows by what a part does), where it was made again at the next estimate."""
        self._settled_version = 0
        """Moves on when a roll-up of an hour before the newest two changes, but for a late
        view into an hour left in the store (its viewers go into the middles too)."""
        self._edges: dict[int, int] = {}
        """Window length -> the hour its trailing edge fell in last: kept in memory."""
        self._spill_due = False
        """Whether ``_spill`` may find an hour to leave in the store (a roll-up built, an
        hour read back, the newest hour moved on)."""
        self._read = read
        self._rollups: dict[int, UserSketch] = {}
        self._tails: dict[int, dict[int, UserSketch]] = {}
        """Edge hours gone by -> for each of its blocks, the union of its minutes in that
        block and the blocks after it (made when a window's edge is in the hour; retention
        cutting the hour leaves those of the blocks after the cut)."""
        self._answers: dict[int, float] = {}
        """Window answers by the window's first minute."""
        self._total = UserSketch()
        self._total_answer: float | None = None
        self._newest = -(2**62)
        """The newest minute added or loaded."""
        self._live: list[UserSketch] = []
        """The minute sketches viewers were last added to, at most ``_LIVE`` (live): the
        others are frozen (``_added_to``)."""

    def add(self, minute: int, keys: Iterable[int]) -> UserSketch:
        """Add viewers to a minute (and to the total); returns that minute's sketch (to
        write to the changelog; add to it through this method only)."""
        keys = keys if isinstance(keys, list | tuple) else list(keys)
        if minute // _HOUR in self._spilled:
            return self._add_spilled(minute, keys)
        hour = self._hours.setdefault(minute // _HOUR, {})
        sketch = hour.get(minute)
        if sketch is None:
            sketch = hour[minute] = UserSketch()
        if keys:
            sketch.add(keys)
            self._added_to(sketch)
            self._total.add(keys)
            self._total_answer = None
            self._changed(minute, keys)
        return sketch

    def _added_to(self, sketch: UserSketch) -> None:
        """Keep ``sketch`` live, and the one added to before it; freeze the one before
        those. A minute takes viewers while it is the newest or just after (late views):
        kept live, the newest hour's 60 minutes held ~160 B more each (236 B live with two
        viewers, 69 frozen), ~10 KB per campaign-channel, and a backfill's minutes stayed
        live until a scrape made their hour's roll-up. A view into a minute frozen since
        thaws it (``UserSketch.add``)."""
        live = self._live
        if live and live[-1] is sketch:
            return
        if sketch in live:
            live.remove(sketch)
        live.append(sketch)
        if len(live) > _LIVE:
            live.pop(0).freeze()

    def _add_spilled(self, minute: int, keys: list[int] | tuple[int, ...]) -> UserSketch:
        """A late view into an hour left in the store: only its minute is read back (its
        bucket is in memory now, the caller's), and the hour's roll-up takes the viewers
        too (a union of minutes grows by what one of them does), so a backfill into old
        hours does not read each hour again per event."""
        assert self._read is not None
        hour = minute // _HOUR
        sketch = self._read(minute) or UserSketch()
        if keys:
            sketch.add(keys)
            self._added_to(sketch)
            self._total.add(keys)
            self._total_answer = None
            self._spilled[hour] |= 1 << (minute - hour * _HOUR)
            rollup = self._rollups.get(hour)
            if rollup is None:
                self._settled_version += 1
            else:
                rollup.add(keys)
                rollup.freeze()  # as a spilled hour's roll-up is kept
                for (first, last, _, version), middle in self._settled.values():
                    if first <= hour <= last and version == self._settled_version:
                        middle.add(keys)
            self._forget_answers_from(minute)
        return sketch

    def add_total(self, keys: Iterable[int]) -> UserSketch:
        """Add viewers to the total only (a minute past every window, or a replay whose
        minute bucket has them already: adding a viewer twice changes nothing)."""
        keys = keys if isinstance(keys, list | tuple) else list(keys)
        if keys:
            self._total.add(keys)
            self._total_answer = None
        return self._total

    def load(self, minute: int, sketch: UserSketch) -> None:
        """Put back a minute's sketch from the changelog (recovery); replaces that minute."""
        self._hour(minute // _HOUR)[minute] = sketch
        self._changed(minute)

    def load_hour(self, hour: int, bits: int, union: UserSketch) -> None:
        """Put back an hour whose minutes' sketches stay in the store (an hour block's), with
        their ``union``: none is read unless a window's edge or retention cuts the hour, or
        a late view lands in it. ``bits``: the minutes with viewers, bit ``i`` for the
        hour's minute ``i`` (``minute_bits``). Replaces what was held of the hour."""
        assert self._read is not None, "an hour left in the store needs a store to read"
        self._hours.pop(hour, None)
        self._spilled.pop(hour, None)
        self._changed(hour * _HOUR + max(bits.bit_length() - 1, 0))
        if bits and union:
            union.freeze()
            self._spilled[hour] = bits
            self._rollups[hour] = union
            self._settled_version += 1

    def drop_before(self, minute: int) -> None:
        """Forget the minutes before ``minute`` (retention); the total keeps them."""
        gone: list[int] = []
        for hour in [h for h in self._spilled if h <= minute // _HOUR]:
            last = hour * _HOUR + self._spilled[hour].bit_length() - 1
            if last < minute:  # all of it goes: nothing to read
                del self._spilled[hour]
                gone.append(last)
                self._forget_rollup(hour)
        for hour in [h for h in self._spilled if h <= minute // _HOUR]:
            self._hour(hour)  # part of it goes: its roll-up is made again from the rest
        for hour in [h for h in self._hours if h <= minute // _HOUR]:
            minutes = self._hours[hour]
            dropped = [m for m in minutes if m < minute]
            for m in dropped:
                del minutes[m]
            if not minutes:
                del self._hours[hour]
            if dropped:
                tails = self._tails.get(hour)
                self._forget_rollup(hour)
                if tails is not None and minutes:  # the blocks after the cut are as they were
                    self._tails[hour] = {block: tail for block, tail in tails.items()
                                         if hour * _HOUR + block * _BLOCK >= minute}
                gone += dropped
        if gone:
            newest = max(gone)
            self._answers = {start: value for start, value in self._answers.items()
                             if start > newest}

    @property
    def minutes_in_memory(self) -> int:
        """Minute sketches held (the rest are in the store)."""
        return sum(len(minutes) for minutes in self._hours.values())

    def minute_sketch(self, minute: int) -> UserSketch | None:
        hour = minute // _HOUR
        return (self._hour(hour) if hour in self._spilled else self._hours.get(hour, {})).get(
            minute)

    def estimate(self, now_minute: int, window_minutes: int) -> float:
        """Distinct users in minutes [now_minute - window_minutes + 1, +inf) (buckets ahead
        of now count, as for the counters)."""
        start = now_minute - window_minutes + 1
        answer = self._answers.get(start)
        if answer is None:
            answer = _union_estimate(self._window_parts(start, window_minutes))
            if len(self._answers) >= _CACHED_STARTS:
                del self._answers[next(iter(self._answers))]
            self._answers[start] = answer
        return answer

    def total_estimate(self) -> float:
        if self._total_answer is None:
            self._total_answer = self._total.estimate()
        return self._total_answer

    def load_total(self, sketch: UserSketch) -> None:
        self._total, self._total_answer = sketch, None

    def total_sketch(self) -> UserSketch:
        return self._total

    def _window_parts(self, start: int, window_minutes: int) -> list[UserSketch]:
        """The minutes of start's partial hour (for an hour gone by: those left of start's
        block and one union of the blocks after it), a union of the roll-ups of the hours
        before the newest two, then the roll-ups of those two."""
        parts: list[UserSketch] = []
        if start % _HOUR:
            edge = start // _HOUR
            last = self._edges.get(window_minutes)
            if last != edge:
                self._edges[window_minutes] = edge  # the one before may go to the store
                self._spill_due = True
                if last is not None and last not in self._edges.values():
                    self._tails.pop(last, None)
            parts = self._edge_parts(edge, start)
        hours = sorted(h for h in (*self._hours, *self._spilled) if h * _HOUR >= start)
        recent_from = self._newest // _HOUR - 1
        settled = [h for h in hours if h < recent_from]
        if settled:
            key = (settled[0], settled[-1], len(settled), self._settled_version)
            kept = self._settled.get(window_minutes)
            if kept is None or kept[0] != key:
                kept = self._settled[window_minutes] = (
                    key, _union([self._rollup(hour) for hour in settled]))
            parts.append(kept[1])
        parts += [self._rollup(hour) for hour in hours if hour >= recent_from]
        self._spill()
        return parts

    def _edge_parts(self, edge: int, start: int) -> list[UserSketch]:
        """The sketches of hour ``edge``'s minutes from ``start`` on: at most ``_BLOCK`` - 1
        minutes and a union of blocks in an hour gone by (whose minutes rarely change:
        at every new minute the window's edge moves, and the ~30 minutes on average it
        would union again there were most of a scrape's reach with viewers in every
        minute), else every minute."""
        minutes = self._hour(edge) if edge in self._spilled else self._hours.get(edge, {})
        if edge >= self._newest // _HOUR:
            return [s for m, s in minutes.items() if m >= start]
        block_end = -(-start // _BLOCK) * _BLOCK  # the next block's first minute
        parts = [s for m in range(start, block_end) if (s := minutes.get(m)) is not None]
        if block_end < (edge + 1) * _HOUR:
            block = (block_end - edge * _HOUR) // _BLOCK
            tails = self._tails.get(edge)
            if tails is None or block not in tails:
                tails = self._tails[edge] = _block_tails(edge, minutes)
            parts.append(tails[block])
        return parts

    def _rollup(self, hour: int) -> UserSketch:
        rollup = self._rollups.get(hour)
        if rollup is None:
            minutes = self._hour(hour)
            rollup = self._rollups[hour] = _union(minutes.values())
            if hour < self._newest // _HOUR - 1:
                self._spill_due = True
            if hour < self._newest // _HOUR:  # an hour gone by: its minutes rarely change
                for sketch in minutes.values():
                    sketch.freeze()
        return rollup

    def _spill(self) -> None:
        """Leave in the store the minutes of hours two or more behind the newest that have
        a roll-up and hold no window's edge."""
        if self._read is None or not self._spill_due:
            return
        before = self._newest // _HOUR - 1
        edges = set(self._edges.values())
        for hour in [h for h in self._hours if h < before and h in self._rollups
                     and h not in edges]:
            minutes = self._hours.pop(hour)
            if minutes:
                self._spilled[hour] = sum(1 << (m - hour * _HOUR) for m in minutes)
                self._rollups[hour].freeze()  # read again only when the middle changes
        self._spill_due = False

    def _forget_rollup(self, hour: int) -> None:
        self._tails.pop(hour, None)
        if self._rollups.pop(hour, None) is not None and hour < self._newest // _HOUR - 1:
            self._settled_version += 1

    def _hour(self, hour: int) -> dict[int, UserSketch]:
        """An hour's minute sketches, read back from the store if spilled."""
        spilled = self._spilled.pop(hour, None)
        if spilled is None:
            return self._hours.setdefault(hour, {})
        assert self._read is not None
        self._spill_due = True
        minutes = self._hours[hour] = {}
        for minute in range(hour * _HOUR, hour * _HOUR + spilled.bit_length()):
            if not spilled >> (minute - hour * _HOUR) & 1:
                continue
            sketch = self._read(minute)
            if sketch is not None:  # the store lost it: as if it had no viewers
                minutes[minute] = sketch
        return minutes

    def _changed(self, minute: int, added: Sequence[int] | None = None) -> None:
        """``minute``'s sketch changed: by the viewers ``added`` (None: replaced). The
        newest hour's roll-up takes viewers added to its minutes as they come (a union
        grows by what a part does): made afresh each scrape it was ~60 sketch unions per
        campaign-channel with viewers in every minute. It is kept when the next hour
        starts: that hour's minutes are frozen already, but the two viewers last went to
        (``_added_to``), and made again from them it took ~40 µs a campaign-channel
        (60 frozen sketches), ~0.4 s of a scrape each hour at 10,000. Any other hour's
        roll-up is made again after a change. An hour left in the store keeps its roll-up
        (``load_hour``'s, kept up by ``_add_spilled``)."""
        hour, newest_hour = minute // _HOUR, self._newest // _HOUR
        if hour > newest_hour:
            self._spill_due = True
        self._newest = max(self._newest, minute)
        rollup = self._rollups.get(hour)
        if added is not None and rollup is not None and hour == self._newest // _HOUR:
            rollup.add(added)
        else:
            self._forget_rollup(hour)
        self._forget_answers_from(minute)

    def _forget_answers_from(self, minute: int) -> None:
        """Drop the remembered answers of the windows that hold ``minute``."""
        self._answers = {start: value for start, value in self._answers.items()
                         if start > minute}
