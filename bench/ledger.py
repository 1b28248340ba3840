"""The soak's traffic and its ledger: every event sent, and the exact totals it must produce.

Pure: no Kafka, no kpistream code. The ledger decides attribution and new customers from
the events as sent (SPEC section 1), so the check at the end is independent of what it
checks. Thread-safe: the producer adds and acknowledges, the killer and poller read.
"""

from __future__ import annotations

import random
import re
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final

import orjson

__all__ = [
    "FX",
    "METRICS",
    "PROMO_CODES",
    "Difference",
    "Item",
    "Ledger",
    "Snapshot",
    "Totals",
    "add_totals",
    "compare",
    "config_toml",
    "covers",
    "read_totals",
]

Series = tuple[str, str]
"""(campaign, channel)."""
Totals = dict[Series, list[int]]
"""(campaign, channel) -> one int per METRICS entry (money in micros of USD)."""

METRICS: Final = (
    "marketing_views", "marketing_completed_views", "marketing_engagements",
    "marketing_clicks", "marketing_orders", "marketing_new_customers",
    "marketing_revenue", "marketing_spend",
)
VIEWS, COMPLETED, ENGAGEMENTS, CLICKS, ORDERS, NEW, REVENUE, SPEND = range(len(METRICS))
_MONEY: Final = frozenset({REVENUE, SPEND})

MIX: Final = {"view": 0.80, "engagement": 0.08, "click": 0.06, "order": 0.04, "spend": 0.02}
"""Share of each event type among unique events: view-heavy, with enough orders that
attribution and returning customers are exercised every second."""
TOPIC_KEYS: Final = {
    "view": "views", "engagement": "engagements", "click": "clicks",
    "order": "orders", "spend": "spend",
}
CHANNELS: Final = ("tiktok", "instagram", "youtube", "influencer")
FX: Final = {"USD": Decimal(1), "EUR": Decimal("1.08")}
PROMO_CODES: Final = {"SOAK0": "soak-00", "SOAK7": "soak-07", "ONLYPROMO": "soak-promo"}
"""Promo code -> campaign; ``soak-promo`` has no events but the orders naming its code."""
_ACTIONS: Final = ("like", "comment", "share", "save", "follow", "profile_visit")
_MICROS: Final = Decimal(1_000_000)
_RECENT: Final = 3_000
_RESERVOIR: Final = 20_000
_CLICK_POOL: Final = 5_000
_CLICK_SETTLE_S: Final = 2.0
"""An order names only a click acknowledged by the broker at least this long ago."""


def config_toml() -> str:
    """The ``[fx]`` and ``[promo_codes]`` tables the deployment needs for this traffic."""
    fx = "\n".join(f"{code} = {rate}" for code, rate in FX.items() if code != "USD")
    promos = "\n".join(f'{code} = "{campaign}"' for code, campaign in PROMO_CODES.items())
    return f"[fx]\n{fx}\n\n[promo_codes]\n{promos}\n"


@dataclass(frozen=True, slots=True)
class Item:
    """One event to put in a message: its topic key, JSON bytes and serial in the ledger."""

    topic_key: str
    raw: bytes
    serial: int
    campaign: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the broker had acknowledged at one moment: per series, and distinct customers."""

    per_series: Totals
    customers: int
    events: int


@dataclass(slots=True)
class _Effect:
    """What one unique event adds, kept until its first acknowledgement."""

    series: Series
    metric: int
    completed: bool = False
    micros: int = 0
    customer: str | None = None


@dataclass(slots=True)
class _Click:
    serial: int
    ts_ms: int
    series: Series
    click_id: str
    made_at: float


@dataclass
class Ledger:
    """Makes the soak's events and knows exactly what they add up to."""

    seed: int
    campaigns: int = 20
    late_share: float = 0.10
    """Share of events whose event time is 1-8 minutes in the past."""
    duplicate_share: float = 0.05
    """Share of sent events that are a re-send of an earlier one."""
    rng: random.Random = field(init=False)
    sent_unique: dict[str, int] = field(init=False)
    sent_duplicates: dict[str, int] = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _expected: Totals = field(init=False, default_factory=dict)
    _acked: Totals = field(init=False, default_factory=dict)
    _acked_customers: set[str] = field(init=False, default_factory=set)
    _acked_events: int = field(init=False, default=0)
    _pending: dict[int, _Effect] = field(init=False, default_factory=dict)
    _firsts: dict[str, tuple[int, str, Series]] = field(init=False, default_factory=dict)
    """customer -> (ts_ms, event_id, series) of their first order by (event time, id)."""
    _customers: list[str] = field(init=False, default_factory=list)
    _clicks: deque[_Click] = field(init=False)
    _recent: deque[Item] = field(init=False)
    _reservoir: list[Item] = field(init=False, default_factory=list)
    _serial: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.sent_unique = dict.fromkeys(MIX, 0)
        self.sent_duplicates = dict.fromkeys(MIX, 0)
        self._clicks = deque(maxlen=_CLICK_POOL)
        self._recent = deque(maxlen=_RECENT)
        self._campaign_ids = [f"soak-{i:02d}" for i in range(self.campaigns)]
        self._types = list(MIX)
        self._weights = list(MIX.values())

    def make(self, count: int, now_ms: int, now_s: float) -> list[Item]:
        """``count`` events for the topics: new ones and, at ``duplicate_share``, re-sends."""
        items = []
        with self._lock:
            for _ in range(count):
                if self._serial and self.rng.random() < self.duplicate_share:
                    items.append(self._duplicate())
                else:
                    items.append(self._new(now_ms, now_s))
        return items

    def ack(self, serials: Iterable[int]) -> None:
        """The broker acknowledged a message holding these events."""
        with self._lock:
            for serial in serials:
                effect = self._pending.pop(serial, None)
                if effect is None:
                    continue
                self._acked_events += 1
                _apply(self._acked, effect)
                if effect.customer is not None:
                    self._acked_customers.add(effect.customer)

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot({s: list(v) for s, v in self._acked.items()},
                            len(self._acked_customers), self._acked_events)

    def expected(self) -> Totals:
        """What /metrics must show (window ``total``) once every event sent is counted."""
        with self._lock:
            out = {s: list(v) for s, v in self._expected.items()}
            for _, _, series in self._firsts.values():
                out.setdefault(series, [0] * len(METRICS))[NEW] += 1
            return out

    @property
    def unacked(self) -> int:
        with self._lock:
            return len(self._pending)

    def _new(self, now_ms: int, now_s: float) -> Item:
        rng = self.rng
        event_type = rng.choices(self._types, self._weights)[0]
        serial = self._serial
        self._serial += 1
        ts_ms = now_ms - (rng.randrange(60_000, 480_000) if rng.random() < self.late_share
                          else rng.randrange(2_000))
        campaign = rng.choice(self._campaign_ids)
        channel = rng.choice(CHANNELS)
        doc: dict[str, Any] = {"event_id": f"{event_type[0]}-{serial}"}
        effect = _Effect((campaign, channel), VIEWS)
        if event_type == "view":
            effect.completed = rng.random() < 0.3
            doc.update(campaign_id=campaign, channel=channel, completed=effect.completed,
                       user_id=f"u{rng.randrange(50_000)}", watch_ms=rng.randrange(60_000))
        elif event_type == "engagement":
            effect.metric = ENGAGEMENTS
            doc.update(campaign_id=campaign, channel=channel, action=rng.choice(_ACTIONS))
        elif event_type == "click":
            effect.metric = CLICKS
            doc.update(campaign_id=campaign, channel=channel, click_id=f"clk-{serial}")
            self._clicks.append(_Click(serial, ts_ms, (campaign, channel), f"clk-{serial}",
                                       now_s))
        elif event_type == "spend":
            effect.metric = SPEND
            amount, currency, effect.micros = self._money()
            doc.update(campaign_id=campaign, channel=channel, amount=float(amount),
                       currency=currency)
        else:
            ts_ms, campaign = self._order(doc, effect, serial, ts_ms, now_ms, now_s)
        doc["ts"] = ts_ms if serial % 2 else _rfc3339(ts_ms)
        self.sent_unique[event_type] += 1
        _apply(self._expected, effect)
        self._pending[serial] = effect
        item = Item(TOPIC_KEYS[event_type], orjson.dumps(doc), serial, campaign, False)
        self._remember(item)
        return item

    def _order(self, doc: dict[str, Any], effect: _Effect, serial: int, ts_ms: int,
               now_ms: int, now_s: float) -> tuple[int, str]:
        """Fill an order: attributed by campaign id, promo code or an earlier click."""
        rng = self.rng
        effect.metric = ORDERS
        if self._customers and rng.random() < 0.4:
            customer = rng.choice(self._customers)  # a returning customer (or so it seems)
        else:
            customer = f"cust-{len(self._customers)}"
            self._customers.append(customer)
        revenue, currency, effect.micros = self._money()
        doc.update(order_id=f"ord-{serial}", customer_id=customer, revenue=revenue,
                   currency=currency)
        how = rng.random()
        click = self._settled_click(now_s) if how < 0.4 else None
        if click is not None:
            doc["click_id"] = click.click_id
            ts_ms = rng.randrange(click.ts_ms, now_ms + 1)  # at or after its click
            effect.series = click.series
        elif how < 0.7:
            code = rng.choice(tuple(PROMO_CODES))
            channel = rng.choice(CHANNELS)
            doc.update(promo_code=code, channel=channel)
            effect.series = (PROMO_CODES[code], channel)
        else:
            doc.update(campaign_id=effect.series[0], channel=effect.series[1])
        effect.customer = customer
        event_id = doc["event_id"]
        first = self._firsts.get(customer)
        if first is None or (ts_ms, event_id) < first[:2]:
            self._firsts[customer] = (ts_ms, event_id, effect.series)
        return ts_ms, effect.series[0]

    def _settled_click(self, now_s: float) -> _Click | None:
        """A random click the broker acknowledged a while ago, or None if there is none."""
        settled = [c for c in self._clicks
                   if now_s - c.made_at >= _CLICK_SETTLE_S and c.serial not in self._pending]
        return self.rng.choice(settled) if settled else None

    def _duplicate(self) -> Item:
        """A re-send of an earlier event: half from the last seconds, half from any time."""
        pool: Any = self._recent if self.rng.random() < 0.5 or not self._reservoir \
            else self._reservoir
        original: Item = pool[self.rng.randrange(len(pool))]
        event_type = next(t for t, k in TOPIC_KEYS.items() if k == original.topic_key)
        self.sent_duplicates[event_type] += 1
        return Item(original.topic_key, original.raw, original.serial, original.campaign,
                    True)

    def _remember(self, item: Item) -> None:
        self._recent.append(item)
        if len(self._reservoir) < _RESERVOIR:
            self._reservoir.append(item)
        else:
            slot = self.rng.randrange(item.serial + 1)
            if slot < _RESERVOIR:
                self._reservoir[slot] = item

    def _money(self) -> tuple[str, str, int]:
        cents = self.rng.randrange(100, 50_000)
        currency = self.rng.choice(tuple(FX))
        amount = f"{cents // 100}.{cents % 100:02d}"
        exact = Decimal(amount) * FX[currency] * _MICROS
        return amount, currency, int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _apply(totals: Totals, effect: _Effect) -> None:
    row = totals.setdefault(effect.series, [0] * len(METRICS))
    if effect.metric in _MONEY:
        row[effect.metric] += effect.micros
    else:
        row[effect.metric] += 1
    row[COMPLETED] += effect.completed
    if effect.metric == ORDERS:
        row[REVENUE] += effect.micros


def _rfc3339(ts_ms: int) -> str:
    moment = datetime.fromtimestamp(ts_ms // 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


_INDEX: Final = {name: i for i, name in enumerate(METRICS)}
_LABEL: Final = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def read_totals(text: str) -> Totals:
    """The ledger's metrics with ``window="total"`` from one /metrics answer."""
    out: Totals = {}
    for line in text.splitlines():
        if not line.startswith("marketing_") or 'window="total"' not in line:
            continue
        brace = line.find("{")
        index = _INDEX.get(line[:brace])
        if index is None:
            continue
        labels = dict(_LABEL.findall(line[brace:line.rindex("}")]))
        number = float(line.rsplit(" ", 1)[1])
        row = out.setdefault((labels["campaign"], labels["channel"]), [0] * len(METRICS))
        row[index] += round(number * 1_000_000) if index in _MONEY else round(number)
    return out


def add_totals(into: Totals, more: Mapping[Series, list[int]]) -> None:
    for series, row in more.items():
        mine = into.setdefault(series, [0] * len(METRICS))
        for i, v in enumerate(row):
            mine[i] += v


def covers(counted: Totals, snapshot: Snapshot) -> bool:
    """Does ``counted`` hold at least what was acknowledged in ``snapshot``?

    Per campaign-channel for every metric but new customers, which can move between
    campaigns when an earlier order of a customer arrives late; for them, their sum.
    """
    zero = [0] * len(METRICS)
    for series, want in snapshot.per_series.items():
        got = counted.get(series, zero)
        if any(got[i] < want[i] for i in range(len(METRICS)) if i != NEW):
            return False
    return sum(row[NEW] for row in counted.values()) >= snapshot.customers


@dataclass(frozen=True, slots=True)
class Difference:
    series: Series
    metric: str
    expected: float
    counted: float


def compare(expected: Totals, counted: Totals) -> tuple[dict[str, dict[str, float]],
                                                         list[Difference]]:
    """Per metric: expected, counted, lost and double counted summed over campaign-channels
    (lost: expected - counted where positive; double: counted - expected where positive),
    and every campaign-channel that differs."""
    summary = {name: {"expected": 0.0, "counted": 0.0, "lost": 0.0, "double": 0.0}
               for name in METRICS}
    differences = []
    zero = [0] * len(METRICS)
    for series in sorted(set(expected) | set(counted)):
        want, got = expected.get(series, zero), counted.get(series, zero)
        for i, name in enumerate(METRICS):
            scale = 1_000_000 if i in _MONEY else 1
            e, c = want[i] / scale, got[i] / scale
            row = summary[name]
            row["expected"] += e
            row["counted"] += c
            if want[i] != got[i]:
                differences.append(Difference(series, name, e, c))
                row["lost" if want[i] > got[i] else "double"] += abs(e - c)
    return summary, differences
