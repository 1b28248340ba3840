"""Which campaign an order names: its campaign_id, else its promo code's campaign.

Click-id attribution needs remembered clicks: see streams/attribution/clicks.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from streams.events.validation import Event

__all__ = ["UNATTRIBUTED", "attribute"]

UNATTRIBUTED: Final = "unattributed"


def attribute(order: Event, promo_codes: Mapping[str, str]) -> tuple[str, str]:
    """(campaign, channel) by the order's own fields; ``unattributed`` when they name none.

    A promo code mapped to a campaign attributes to it even if no event of that campaign
    was ever seen.
    """
    if order.campaign_id is not None:
        return order.campaign_id, order.channel
    if order.promo_code is not None and order.promo_code in promo_codes:
        return promo_codes[order.promo_code], order.channel
    return UNATTRIBUTED, order.channel
