"""Keys remembered until a deadline and then forgotten, oldest first: clicks, customers."""

from __future__ import annotations

import heapq

__all__ = ["ExpiringKeys"]


class ExpiringKeys:
    """Keys with an expiry time; ``expire(now)`` forgets those whose time is up.

    Costs one dict entry and one heap entry per key (the heap is rebuilt when
    refreshed keys leave more than one stale entry per live key).
    """

    def __init__(self) -> None:
        self._expiry: dict[str, int] = {}
        self._order: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def set(self, key: str, expires_ms: int) -> None:
        """Remember ``key`` until ``expires_ms``, replacing an earlier expiry."""
        self._expiry[key] = expires_ms
        heapq.heappush(self._order, (expires_ms, key))
        if len(self._order) > 2 * len(self._expiry) + 64:
            self._order = [(e, k) for k, e in self._expiry.items()]
            heapq.heapify(self._order)

    def expire(self, now_ms: int) -> list[str]:
        """Forget keys whose time is up; returns them so their tables can drop them too."""
        gone = []
        order, expiry = self._order, self._expiry
        while order and order[0][0] <= now_ms:
            expires, key = heapq.heappop(order)
            if expiry.get(key) == expires:
                del expiry[key]
                gone.append(key)
        return gone

    def clear(self) -> None:
        self._expiry.clear()
        self._order.clear()
