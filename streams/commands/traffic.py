"""Believable campaign traffic for the demo: a funnel per campaign and channel, some bad input.

Pure: no Kafka. Deterministic for a seed and a sequence of ``tick`` calls. Each
(campaign, channel) has its own funnel (engagement rate, click-through, conversion)
and CPM, so their KPIs differ the way real campaigns do; spend follows the views bought,
so ROAS does not depend on the event rate. Each campaign has its own mix of content types
and its own small product catalog, which sets its order values: orders carry their lines
(``items``, whose revenues add up exactly to the order's ``revenue``) and most carry a
``cost`` of goods, a campaign's own share of the revenue.
"""

from __future__ import annotations

import json
import random
from collections import deque
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final, Literal

from streams.events.validation import EventType

__all__ = [
    "BAD_FRACTION",
    "DEMO_FX_RATES",
    "DEMO_PROMO_CODES",
    "DUPLICATE_FRACTION",
    "SimEvent",
    "SimKind",
    "Simulator",
    "campaigns",
]

DEMO_FX_RATES: Final = {
    "EUR": Decimal("1.08"),
    "IDR": Decimal("0.000063"),
    "TRY": Decimal("0.029"),
    "VND": Decimal("0.000039"),
}
"""USD for one unit of each currency the simulated orders use besides USD."""
DEMO_PROMO_CODES: Final = {
    "SUMMER10": "summer-sale",
    "BF25": "black-friday",
    "CREATOR15": "creator-collab",
}
"""Promo codes of the demo campaigns, for the ``[promo_codes]`` table."""
BAD_FRACTION: Final = 0.005
"""Share of events that break a rule of SPEC section 4."""
DUPLICATE_FRACTION: Final = 0.003
"""Share of events that are a second delivery of an earlier event."""

SimKind = Literal["good", "duplicate", "bad"]
Payload = dict[str, Any]

_UNKNOWN_CURRENCIES: Final = ("BRL", "ARS", "NGN")
_ACTIONS: Final = ("like", "comment", "share", "save", "follow", "profile_visit")
_ACTION_WEIGHTS: Final = (60, 8, 7, 8, 5, 12)
_ORDER_CURRENCIES: Final = ("USD", "EUR", "IDR", "TRY", "VND")
_ORDER_CURRENCY_WEIGHTS: Final = (55, 15, 12, 10, 8)
_CLICK_ID_PREFIX: Final = {
    "tiktok": "ttclid", "instagram": "fbclid", "youtube": "gclid", "influencer": "irclid"
}
_REPEAT_CUSTOMER: Final = 0.3
_CONTENT_TYPES: Final = ("tutorial", "unboxing", "challenge", "live", None)
"""Content types of views, engagements and clicks; None: the event carries none."""
# campaign -> weights of _CONTENT_TYPES
_CONTENT_WEIGHTS: Final = {
    "summer-sale": (15, 15, 45, 10, 15),
    "black-friday": (10, 35, 10, 30, 15),
    "creator-collab": (10, 25, 15, 40, 10),
    "app-install": (55, 5, 15, 5, 20),
}
# campaign -> products (id, unit price in USD, popularity)
_CATALOG: Final = {
    "summer-sale": (("sunscreen", 12.0, 40), ("beach-towel", 19.0, 25),
                    ("sunglasses", 29.0, 20), ("swimwear", 35.0, 15)),
    "black-friday": (("headphones", 79.0, 20), ("smartwatch", 69.0, 15),
                     ("speaker", 39.0, 30), ("charger", 15.0, 35)),
    "creator-collab": (("lip-kit", 19.0, 35), ("palette", 29.0, 25),
                       ("brush-set", 15.0, 25), ("merch-tee", 25.0, 15)),
    "app-install": (("gems-100", 2.99, 35), ("gems-550", 9.99, 15),
                    ("premium-month", 4.99, 25), ("starter-pack", 3.99, 25)),
}
_LINES: Final = (1, 2, 3)
_LINE_WEIGHTS: Final = (60, 30, 10)
_QUANTITIES: Final = (1, 2, 3)
_QUANTITY_WEIGHTS: Final = (75, 18, 7)
# campaign -> cost of goods as a share of revenue (low, high)
_COST_SHARE: Final = {
    "summer-sale": (0.40, 0.55),
    "black-friday": (0.55, 0.70),
    "creator-collab": (0.45, 0.60),
    "app-install": (0.40, 0.50),
}
_WITHOUT_COST: Final = 0.15
"""Share of orders that carry no ``cost``."""
_MEMORY: Final = 2000  # recent clicks, customers and events kept for reuse


@dataclass(frozen=True, slots=True)
class SimEvent:
    """One simulated message: its event type (the topic) and a JSON object or raw bytes."""

    type: EventType
    payload: Payload | bytes
    kind: SimKind = "good"

    def encode(self) -> bytes:
        """The Kafka message value."""
        if isinstance(self.payload, bytes):
            return self.payload
        return _dumps(self.payload)

    @property
    def key(self) -> bytes | None:
        """The campaign as message key, when the event names one."""
        if isinstance(self.payload, dict) and isinstance(self.payload.get("campaign_id"), str):
            return str(self.payload["campaign_id"]).encode("utf-8")
        return None


@dataclass(frozen=True, slots=True)
class _Pair:
    """One campaign on one channel: its share of traffic and its funnel."""

    campaign: str
    channel: str
    share: float
    engagement_rate: float
    """Engagements per view."""
    ctr: float
    """Clicks per view."""
    conversion: float
    """Orders per click."""
    completion: float
    cpm_usd: float
    spend_currency: str = "USD"


# campaign -> (channels, conversion, engagement multiplier); its order values come from
# its catalog (_CATALOG)
_CAMPAIGNS: Final = {
    "summer-sale": (("tiktok", "instagram", "youtube"), 0.07, 1.0),
    "black-friday": (("tiktok", "instagram", "youtube", "influencer"), 0.10, 0.8),
    "creator-collab": (("influencer", "tiktok", "instagram"), 0.05, 1.6),
    "app-install": (("tiktok", "youtube", "instagram"), 0.14, 0.7),
}
# channel -> (traffic share, engagement rate, CTR, completion, CPM in USD)
_CHANNELS: Final = {
    "tiktok": (4.0, 0.09, 0.020, 0.35, 12.0),
    "instagram": (3.0, 0.06, 0.015, 0.45, 15.0),
    "youtube": (2.0, 0.03, 0.010, 0.25, 18.0),
    "influencer": (1.0, 0.12, 0.030, 0.55, 30.0),
}


def _pairs() -> tuple[_Pair, ...]:
    pairs = []
    for campaign, (channels, conversion, engagement) in _CAMPAIGNS.items():
        for channel in channels:
            share, eng, ctr, completion, cpm = _CHANNELS[channel]
            eur = (campaign, channel) == ("black-friday", "instagram")
            spend_currency = "EUR" if eur else "USD"
            pairs.append(_Pair(campaign, channel, share, eng * engagement, ctr, conversion,
                               completion, cpm, spend_currency))
    return tuple(pairs)


def campaigns() -> tuple[str, ...]:
    """The simulated campaigns."""
    return tuple(_CAMPAIGNS)


@dataclass(slots=True)
class _SpendMeter:
    """Views bought since the last spend event of a pair, and when the next one is due."""

    due_ms: int
    views: int = 0


@dataclass(slots=True)
class _Memory:
    clicks: dict[tuple[str, str], deque[str]] = field(default_factory=dict)
    customers: list[str] = field(default_factory=list)
    recent: deque[SimEvent] = field(default_factory=lambda: deque(maxlen=200))


class Simulator:
    """Marketing events for a few campaigns; ``tick`` returns what happened at ``now_ms``."""

    def __init__(
        self, seed: int, *, bad_fraction: float = BAD_FRACTION,
        duplicate_fraction: float = DUPLICATE_FRACTION,
    ) -> None:
        if not 0 <= bad_fraction + duplicate_fraction <= 1 or min(
            bad_fraction, duplicate_fraction
        ) < 0:
            raise ValueError("bad_fraction and duplicate_fraction must be >= 0 and sum to "
                             f"at most 1, got {bad_fraction} and {duplicate_fraction}")
        self._bad_fraction = bad_fraction
        self._duplicate_fraction = duplicate_fraction
        self._rng = random.Random(seed)
        self._run = f"{seed:x}"
        self._pairs = _pairs()
        self._weights = [p.share for p in self._pairs]
        self._seq = 0
        self._customers = 0
        self._meters: dict[_Pair, _SpendMeter] = {}
        self._memory = _Memory()

    def tick(self, now_ms: int, count: int) -> list[SimEvent]:
        """``count`` audience events (views to orders) at ``now_ms``, plus any spend now due."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        out = [self._one(now_ms) for _ in range(count)]
        out.extend(self._spend_due(now_ms))
        return out

    def _one(self, now_ms: int) -> SimEvent:
        roll = self._rng.random()
        if roll < self._bad_fraction:
            return self._spoil(self._good(now_ms))
        if roll < self._bad_fraction + self._duplicate_fraction and self._memory.recent:
            again = self._rng.choice(self._memory.recent)
            return SimEvent(again.type, again.payload, "duplicate")
        event = self._good(now_ms)
        if event.type == "click":
            self._remember_click(event)
        self._memory.recent.append(event)
        return event

    def _good(self, now_ms: int) -> SimEvent:
        pair = self._rng.choices(self._pairs, self._weights)[0]
        weights = (1.0, pair.engagement_rate, pair.ctr, pair.ctr * pair.conversion)
        kind = self._rng.choices(("view", "engagement", "click", "order"), weights)[0]
        if kind == "view":
            return self._view(pair, now_ms)
        if kind == "engagement":
            return self._engagement(pair, now_ms)
        if kind == "click":
            return self._click(pair, now_ms)
        return self._order(pair, now_ms)

    def _base(self, prefix: str, pair: _Pair, now_ms: int) -> Payload:
        self._seq += 1
        return {"event_id": f"{prefix}-{self._run}-{self._seq}", "ts": now_ms,
                "campaign_id": pair.campaign, "channel": pair.channel}

    def _view(self, pair: _Pair, now_ms: int) -> SimEvent:
        self._meter(pair, now_ms).views += 1
        rng = self._rng
        event = self._base("v", pair, now_ms)
        event["user_id"] = f"u{rng.randrange(50_000)}"
        self._content(event, pair)
        if rng.random() < 0.9:  # the rest are plain impressions
            completed = rng.random() < pair.completion
            length_ms = rng.randrange(8_000, 60_000, 500)
            event["completed"] = completed
            event["watch_ms"] = length_ms if completed else rng.randrange(0, length_ms, 250)
        return SimEvent("view", event)

    def _engagement(self, pair: _Pair, now_ms: int) -> SimEvent:
        event = self._base("e", pair, now_ms)
        event["action"] = self._rng.choices(_ACTIONS, _ACTION_WEIGHTS)[0]
        self._content(event, pair)
        return SimEvent("engagement", event)

    def _click(self, pair: _Pair, now_ms: int) -> SimEvent:
        event = self._base("c", pair, now_ms)
        self._content(event, pair)
        if self._rng.random() < 0.9:
            event["click_id"] = f"{_CLICK_ID_PREFIX[pair.channel]}-{self._run}-{self._seq}"
        return SimEvent("click", event)

    def _remember_click(self, event: SimEvent) -> None:
        """Keep a good click's id for later orders (a spoiled click never reaches the worker)."""
        assert isinstance(event.payload, dict)
        click_id = event.payload.get("click_id")
        if click_id is not None:
            key = (event.payload["campaign_id"], event.payload["channel"])
            self._memory.clicks.setdefault(key, deque(maxlen=_MEMORY)).append(click_id)

    def _order(self, pair: _Pair, now_ms: int) -> SimEvent:
        rng = self._rng
        event = self._base("o", pair, now_ms)
        event["order_id"] = f"ORD-{self._run}-{self._seq}"
        event["customer_id"] = self._customer()
        currency = rng.choices(_ORDER_CURRENCIES, _ORDER_CURRENCY_WEIGHTS)[0]
        items = self._items(pair.campaign, currency)
        revenue = sum((Decimal(str(item["revenue"])) for item in items), Decimal(0))
        event["revenue"] = _show(revenue, currency, rng)
        event["currency"] = currency
        if rng.random() >= _WITHOUT_COST:
            share = Decimal(f"{rng.uniform(*_COST_SHARE[pair.campaign]):.4f}")
            event["cost"] = _show(_in_units(revenue * share, currency), currency, rng)
        event["items"] = items
        clicks = self._memory.clicks.get((pair.campaign, pair.channel))
        if clicks and rng.random() < 0.6:
            event["click_id"] = rng.choice(clicks)
        code = next((c for c, name in DEMO_PROMO_CODES.items() if name == pair.campaign), None)
        if code is not None and rng.random() < 0.15:
            event["promo_code"] = code
        how = rng.random()
        if "promo_code" in event and how < 0.3:
            del event["campaign_id"]  # attributed by its promo code
        elif "click_id" in event and how < 0.1:
            del event["campaign_id"], event["channel"]  # attributed by its click id
        return SimEvent("order", event)

    def _content(self, event: Payload, pair: _Pair) -> None:
        """Give the event a content type from its campaign's mix, or none."""
        content = self._rng.choices(_CONTENT_TYPES, _CONTENT_WEIGHTS[pair.campaign])[0]
        if content is not None:
            event["content_type"] = content

    def _items(self, campaign: str, currency: str) -> list[Payload]:
        """1-3 lines of distinct products from the campaign's catalog, in ``currency``."""
        rng = self._rng
        catalog = list(_CATALOG[campaign])
        items = []
        for _ in range(rng.choices(_LINES, _LINE_WEIGHTS)[0]):
            product_id, usd, _ = catalog.pop(
                rng.choices(range(len(catalog)), [p[2] for p in catalog])[0])
            quantity = rng.choices(_QUANTITIES, _QUANTITY_WEIGHTS)[0]
            line = _local_price(usd, currency) * quantity
            items.append({"product_id": product_id, "quantity": quantity,
                          "revenue": _show(line, currency, rng)})
        return items

    def _customer(self) -> str:
        customers = self._memory.customers
        if customers and self._rng.random() < _REPEAT_CUSTOMER:
            return self._rng.choice(customers)
        self._customers += 1
        customer = f"cust-{self._run}-{self._customers}"
        if len(customers) < _MEMORY:
            customers.append(customer)
        else:
            customers[self._rng.randrange(_MEMORY)] = customer
        return customer

    def _meter(self, pair: _Pair, now_ms: int) -> _SpendMeter:
        meter = self._meters.get(pair)
        if meter is None:
            meter = self._meters[pair] = _SpendMeter(now_ms + self._rng.randrange(1_000, 4_000))
        return meter

    def _spend_due(self, now_ms: int) -> list[SimEvent]:
        out = []
        for pair in self._pairs:
            meter = self._meter(pair, now_ms)
            if now_ms < meter.due_ms:
                continue
            usd = meter.views * pair.cpm_usd / 1000 * self._rng.uniform(0.85, 1.15)
            amount = round(usd / float(DEMO_FX_RATES.get(pair.spend_currency, 1)), 2)
            if amount < 0.01:
                continue  # too little bought yet to bill; keep counting
            event = self._base("s", pair, now_ms)
            event["amount"] = f"{amount:.2f}" if self._rng.random() < 0.5 else amount
            event["currency"] = pair.spend_currency
            spend = SimEvent("spend", event)
            out.append(self._spoil(spend) if self._rng.random() < self._bad_fraction else spend)
            meter.views = 0
            meter.due_ms = now_ms + self._rng.randrange(2_000, 6_000)
        return out

    def _spoil(self, good: SimEvent) -> SimEvent:
        """The event broken in one way SPEC section 4 rejects."""
        rng = self._rng
        assert isinstance(good.payload, dict)
        event = dict(good.payload)
        flaws = ["missing", "json"]
        if good.type in ("order", "spend"):
            flaws += ["negative", "currency"]
        flaw = rng.choice(flaws)
        if flaw == "json":
            text = good.encode()
            return SimEvent(good.type, text[: rng.randrange(1, len(text) - 1)], "bad")
        if flaw == "missing":
            del event[rng.choice(_required(good.type, event))]
        elif flaw == "negative":
            name = "revenue" if good.type == "order" else "amount"
            event[name] = f"-{event[name]}"
        else:
            event["currency"] = rng.choice(_UNKNOWN_CURRENCIES)
        return SimEvent(good.type, event, "bad")


def _required(event_type: EventType, event: Payload) -> list[str]:
    """Fields of this event whose absence makes it invalid."""
    required = ["event_id", "ts"]
    if "campaign_id" in event and event_type != "order":
        required.append("campaign_id")
    required += {
        "view": [],
        "engagement": ["action"],
        "click": [],
        "order": ["order_id", "customer_id", "revenue", "currency"],
        "spend": ["amount", "currency"],
    }[event_type]
    return required


def _local_price(usd: float, currency: str) -> Decimal:
    """A price as a shop in that currency would set it: IDR and VND in thousands."""
    local = usd / float(DEMO_FX_RATES.get(currency, 1))
    if currency in ("IDR", "VND"):
        return Decimal(max(1, round(local / 1000)) * 1000)
    if currency == "TRY":
        return Decimal(max(1, round(local))) - Decimal("0.10")
    return max(Decimal("0.99"), Decimal(round(local)) - Decimal("0.01"))


def _in_units(amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded to the currency's smallest unit the simulator uses."""
    unit = Decimal(1) if currency in ("IDR", "VND") else Decimal("0.01")
    return amount.quantize(unit, rounding=ROUND_HALF_EVEN)


def _show(amount: Decimal, currency: str, rng: random.Random) -> str | float:
    """An amount as a tracker sends it: a string, or for USD and EUR half the time a number."""
    if currency in ("IDR", "VND"):
        return str(amount.quantize(Decimal(1)))
    if currency == "TRY" or rng.random() < 0.5:
        return f"{amount:.2f}"
    return float(amount)


def _dumps(payload: Payload) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")
