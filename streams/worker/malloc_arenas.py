"""At most two glibc malloc arenas for the worker's threads; memory freed handed back.

glibc gives each thread that allocates its own arena (64 MiB regions, up to 8 per core),
and memory freed in one stays there. The worker's threads (Faust's consumer thread, which
fetches every stream message, the scrape thread, RocksDB's) each grew one: at 10,000
campaign-channels x 24 h, five such arenas held 230 MiB of a 1,030 MiB worker while it
counted. ``MALLOC_ARENA_MAX`` is glibc's setting for this, read at the first allocation,
so the worker sets it through ``mallopt`` before it starts a thread; a value the
environment sets wins. Elsewhere (musl, macOS) nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Callable

__all__ = ["ARENAS", "hand_back_freed_memory", "limit_malloc_arenas"]

ARENAS = 2
"""The main arena and one more, shared by the other threads."""
_M_ARENA_MAX = -8
"""``mallopt``'s parameter number for it (glibc's malloc.h)."""


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap this process's malloc arenas; True if glibc took the cap."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    mallopt = _glibc("mallopt")
    return mallopt is not None and bool(mallopt(_M_ARENA_MAX, arenas))


def hand_back_freed_memory() -> bool:
    """glibc's ``malloc_trim(0)``: the free pages of the heap go back to the system (glibc
    keeps them otherwise; a /metrics answer at 10,000 campaign-channels frees ~100 MiB in
    the writer at once). True if glibc handed some back."""
    trim = _glibc("malloc_trim")
    return trim is not None and bool(trim(0))


def _glibc(function: str) -> Callable[..., int] | None:
    libc = _libc()
    if libc is None or getattr(libc, "gnu_get_libc_version", None) is None:
        return None
    found: Callable[..., int] | None = getattr(libc, function, None)
    return found


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library, looked up once (``find_library`` runs ``ldconfig`` each time)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
