"""Keeping freed heap memory in the process, so the next cycle's arrays do not fault in fresh pages.

A cycle allocates and frees its lists, its JSON and its messages by the megabyte. glibc's malloc hands
the top of a freed heap back to the kernel once it exceeds its trim threshold, and serves any block
above its mmap threshold with a fresh mapping; either way the next cycle's first touch of every page is
a page fault, and on this machine (a virtual machine) a fault costs microseconds: a 10,000-node cycle
took ~1,300 of them, a third of its demand view's CPU time (docs/performance.md, twelfth round). Raising
both thresholds keeps the memory mapped between cycles: the process holds its peak heap instead of
returning it, which a long-running service reaches within its first cycles anyway.

Only glibc has these knobs (``mallopt``); elsewhere nothing is changed.
"""

from __future__ import annotations

import ctypes
import functools

# glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc's own largest dynamic mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX): above it a block is
# mapped on its own, as before.
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library the interpreter runs on, when it is glibc."""
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols: the C library it is linked against
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version") else None


def keep_freed_memory(trim_threshold_bytes: int) -> bool:
    """Freed memory is kept up to ``trim_threshold_bytes`` at the heap's top, and blocks up to 32 MiB come
    from the heap. 0 leaves glibc's defaults. True when applied (glibc), False otherwise."""
    libc = _glibc()
    if trim_threshold_bytes <= 0 or libc is None:
        return False
    return bool(libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold_bytes)) and bool(
        libc.mallopt(_M_MMAP_THRESHOLD, min(trim_threshold_bytes, MMAP_THRESHOLD_MAX))
    )
