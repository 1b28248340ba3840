"""Lifetime value: a customer's orders credited to the campaign-channel that acquired them.

An *acquisition* is an order counted as a new customer (``n``): the customer's first
order when the history decides (``CustomerRecord.counted``; it moves when a late earlier
order is read, and then its new customer is retracted), and every order whose own
``new_customer`` flag is true (``CustomerRecord.acquired``; never retracted). An order
whose flag is false acquires no one. So the customers credited to a campaign-channel
are exactly those counted in its ``new_customers``.

The invariant (``tests/unit/test_ltv.py`` checks it): for each horizon of ``d`` days and
each acquisition ``A`` standing, the revenue credited to ``A``'s campaign-channel is the
revenue of every order of the customer, in any campaign, with
``A.ts <= order.ts <= A.ts + d days`` (``A`` itself included); a retracted acquisition
has had all of it taken back. So ``marketing_ltv = credited revenue / new customers``.

Credits are ``L`` events (``streams.flow.forwards``), one per acquisition and horizon and
decision, summed; a take-back is a negative one. Their ids are the acquiring order's
counted id, the record's version (one per decision that credits) and the horizon: the
same for a replay of the same message, distinct for distinct credits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple

from streams.attribution.orders import counted_id
from streams.flow.forwards import Extra, Forwards

__all__ = ["DAY_MS", "Acquisition", "LtvCredit", "Purchase", "credit_id", "credits_of",
           "forward_credits", "order_credits", "revenue_within", "summed"]

DAY_MS: Final = 24 * 3600 * 1000

Acquisition = tuple[str, str, int, str]
"""(campaign, channel, ts_ms, event_id) of an order counted as a new customer."""

Purchase = tuple[int, int, int]
"""(ts_ms, revenue micros, kept at least until ms) of an order, as the record keeps it."""


class LtvCredit(NamedTuple):
    """Revenue credited (negative: taken back) to an acquisition within one horizon."""

    campaign: str
    channel: str
    ts_ms: int
    """The acquiring order's time: the credit lands in the minute it was counted in."""
    horizon_days: int
    amount: int
    acquired_id: str
    """The acquiring order's event id."""


def revenue_within(history: Iterable[Purchase], start_ms: int, days: int) -> int:
    """Revenue of the orders placed from ``start_ms`` to ``days`` days after, both ends in."""
    end_ms = start_ms + days * DAY_MS
    return sum(revenue for ts, revenue, _ in history if start_ms <= ts <= end_ms)


def credits_of(acquisition: Acquisition, history: Sequence[Purchase],
               horizon_days: Sequence[int], sign: int = 1) -> list[LtvCredit]:
    """All the revenue of ``history`` an acquisition is owed (``sign`` -1: to take back)."""
    campaign, channel, ts_ms, event_id = acquisition
    return [LtvCredit(campaign, channel, ts_ms, days, sign * amount, event_id)
            for days in horizon_days
            if (amount := revenue_within(history, ts_ms, days))]


def order_credits(acquisitions: Iterable[Acquisition], ts_ms: int, revenue: int,
                  horizon_days: Sequence[int]) -> list[LtvCredit]:
    """One new order's revenue, to each acquisition whose horizon it falls in."""
    if not revenue:
        return []
    return [LtvCredit(campaign, channel, start_ms, days, revenue, event_id)
            for campaign, channel, start_ms, event_id in acquisitions
            for days in horizon_days
            if start_ms <= ts_ms <= start_ms + days * DAY_MS]


def summed(credits: Iterable[LtvCredit]) -> tuple[LtvCredit, ...]:
    """One credit per acquisition and horizon (so ids within a decision are distinct),
    without those that sum to nothing."""
    totals: dict[tuple[str, str, int, int, str], int] = {}
    for c in credits:
        key = (c.campaign, c.channel, c.ts_ms, c.horizon_days, c.acquired_id)
        totals[key] = totals.get(key, 0) + c.amount
    return tuple(LtvCredit(campaign, channel, ts_ms, days, amount, event_id)
                 for (campaign, channel, ts_ms, days, event_id), amount in totals.items()
                 if amount)


def credit_id(customer_id: str, credit: LtvCredit, version: int) -> str:
    """The id the counting stage deduplicates a credit by (split from the right, it is
    unique: the version and horizon are integers)."""
    return f"{counted_id(customer_id, credit.acquired_id)}:{version}:{credit.horizon_days}"


def forward_credits(forwards: dict[str, Forwards], customer_id: str,
                    credits: Iterable[LtvCredit], version: int) -> None:
    """Add the credits to their acquiring campaigns' forwards."""
    for credit in credits:
        forwards.setdefault(credit.campaign, Forwards()).add(
            "L", credit_id(customer_id, credit, version), credit.ts_ms, credit.channel,
            credit.amount, Extra(horizon_days=credit.horizon_days))
