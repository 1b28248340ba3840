"""What the stateful stages share: the table type they write and the key partitioner."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

__all__ = ["Partitioner", "Table"]

Table = MutableMapping[Any, Any]
"""A Faust table's data (streams.worker.changelog) or, in tests, a dict."""
Partitioner = Callable[[str], int]
