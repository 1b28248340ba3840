"""Which campaign an order belongs to: campaign_id, then promo code, then click id."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from streams.events import Event

__all__ = ["NO_CLICKS", "UNATTRIBUTED", "ClickLookup", "attribute"]

UNATTRIBUTED: Final = "unattributed"

ClickLookup = Callable[[str, int], tuple[str, str] | None]
"""(click_id, order ts_ms) -> (campaign, channel) of a click inside the attribution window."""


def _no_clicks(click_id: str, ts_ms: int) -> tuple[str, str] | None:
    return None


NO_CLICKS: Final[ClickLookup] = _no_clicks
"""A lookup that knows no clicks: orders with only a click id stay unattributed."""


def attribute(
    order: Event, promo_codes: Mapping[str, str], clicks: ClickLookup = NO_CLICKS
) -> tuple[str, str]:
    """(campaign, channel) of an order; the first rule that matches wins."""
    if order.campaign_id is not None:
        return order.campaign_id, order.channel
    if order.promo_code is not None and order.promo_code in promo_codes:
        return promo_codes[order.promo_code], order.channel
    if order.click_id is not None:
        match = clicks(order.click_id, order.ts_ms)
        if match is not None:
            return match
    return UNATTRIBUTED, order.channel
