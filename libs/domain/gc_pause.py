"""Pausing the cyclic garbage collector while a cycle builds its short-lived containers.

A cycle of a large depot allocates tens of thousands of small containers (per-node rows, breach
tuples, the dicts its JSON is written from). Each 700 of them start a collection, and every few of
those walk older generations too: the whole heap of a service holding depots' inputs, to find no
reference cycle (the cycle's values are acyclic and freed by reference counting). Measured, those
walks were a large and erratic share of a 10,000-node cycle and of its serialisation. So the
collector is paused for the duration of the call and resumed as it was: no value, no output byte
and no order depends on it; garbage with cycles made meanwhile waits for the next collection.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic collector for the block (nested use and an already paused collector are kept)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
