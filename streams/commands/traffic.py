"""Believable campaign traffic for the demo: a funnel per campaign and channel, some bad input.

Pure: no Kafka. Deterministic for a seed and a sequence of ``tick`` calls. Each
(campaign, channel) has its own funnel (engagement rate, click-through, conversion),
order value and CPM, so their KPIs differ the way real campaigns do; spend follows the
views bought, so ROAS does not depend on the event rate.
"""

from __future__ import annotations

import json
import math
import random
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
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
    aov_usd: float
    cpm_usd: float
    spend_currency: str = "USD"


# campaign -> (channels, conversion, average order value in USD, engagement multiplier)
_CAMPAIGNS: Final = {
    "summer-sale": (("tiktok", "instagram", "youtube"), 0.07, 45.0, 1.0),
    "black-friday": (("tiktok", "instagram", "youtube", "influencer"), 0.10, 70.0, 0.8),
    "creator-collab": (("influencer", "tiktok", "instagram"), 0.05, 35.0, 1.6),
    "app-install": (("tiktok", "youtube", "instagram"), 0.14, 9.0, 0.7),
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
    for campaign, (channels, conversion, aov, engagement) in _CAMPAIGNS.items():
        for channel in channels:
            share, eng, ctr, completion, cpm = _CHANNELS[channel]
            eur = (campaign, channel) == ("black-friday", "instagram")
            spend_currency = "EUR" if eur else "USD"
            pairs.append(_Pair(campaign, channel, share, eng * engagement, ctr, conversion,
                               completion, aov, cpm, spend_currency))
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
        if rng.random() < 0.9:  # the rest are plain impressions
            completed = rng.random() < pair.completion
            length_ms = rng.randrange(8_000, 60_000, 500)
            event["completed"] = completed
            event["watch_ms"] = length_ms if completed else rng.randrange(0, length_ms, 250)
        return SimEvent("view", event)

    def _engagement(self, pair: _Pair, now_ms: int) -> SimEvent:
        event = self._base("e", pair, now_ms)
        event["action"] = self._rng.choices(_ACTIONS, _ACTION_WEIGHTS)[0]
        return SimEvent("engagement", event)

    def _click(self, pair: _Pair, now_ms: int) -> SimEvent:
        event = self._base("c", pair, now_ms)
        if self._rng.random() < 0.9:
            click_id = f"{_CLICK_ID_PREFIX[pair.channel]}-{self._run}-{self._seq}"
            event["click_id"] = click_id
            clicks = self._memory.clicks.setdefault((pair.campaign, pair.channel),
                                                    deque(maxlen=_MEMORY))
            clicks.append(click_id)
        return SimEvent("click", event)

    def _order(self, pair: _Pair, now_ms: int) -> SimEvent:
        rng = self._rng
        event = self._base("o", pair, now_ms)
        event["order_id"] = f"ORD-{self._run}-{self._seq}"
        event["customer_id"] = self._customer()
        currency = rng.choices(_ORDER_CURRENCIES, _ORDER_CURRENCY_WEIGHTS)[0]
        event["revenue"] = _price(rng.lognormvariate(math.log(pair.aov_usd), 0.5), currency, rng)
        event["currency"] = currency
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


def _price(usd: float, currency: str, rng: random.Random) -> str | float:
    """A price as a shop in that currency would show it: IDR and VND in thousands."""
    local = usd / float(DEMO_FX_RATES.get(currency, 1))
    if currency in ("IDR", "VND"):
        return str(max(1, round(local / 1000)) * 1000)
    if currency == "TRY":
        return f"{max(1, round(local)) - 0.1:.2f}"
    price = max(0.99, round(local) - 0.01)
    return f"{price:.2f}" if rng.random() < 0.5 else price


def _dumps(payload: Payload) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")
