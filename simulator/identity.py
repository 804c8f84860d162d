"""Deterministic identities: every UUID the simulator sends is a uuid5 over the run's namespace.

The namespace is derived from (scenario name, seed, anchor), so the same three give the same ids,
byte for byte, and a later run (a later anchor) never collides with an earlier one's ids in the
services' inboxes and tables.
"""

from __future__ import annotations

from datetime import datetime
from itertools import count
from uuid import UUID, uuid5

# The simulator's root namespace (a fixed random UUID, never change it: it would change every id).
SIMULATOR_NAMESPACE = UUID("5f0b7c2e-8d3a-4b61-9c52-3e1f6a9d0b47")


def run_namespace(scenario: str, seed: int, anchor: datetime) -> UUID:
    return uuid5(SIMULATOR_NAMESPACE, f"{scenario}|{seed}|{anchor.isoformat()}")


class Identities:
    """Names to UUIDs within one run: `of(kind, name)` is stable, `next_event()` counts in send order."""

    def __init__(self, namespace: UUID) -> None:
        self.namespace = namespace
        self._events = count(1)

    def of(self, kind: str, name: str) -> UUID:
        return uuid5(self.namespace, f"{kind}:{name}")

    def next_event(self) -> UUID:
        return uuid5(self.namespace, f"event:{next(self._events)}")

    def key(self, kind: str, name: str) -> str:
        """A short stable string key (source refs, idempotency keys, correlation ids)."""
        return f"sim-{kind}-{self.of(kind, name).hex[:12]}"
