"""Deterministic identities: every UUID the simulator sends comes from the run's namespace and a name.

The namespace is derived from (scenario name, seed, anchor), so the same three give the same ids,
byte for byte, and a later run (a later anchor) never collides with an earlier one's ids in the
services' inboxes and tables.

Ids also sort the same way in every run (NFR-007): the services break ties in node id order (which
connector gets a rounding remainder's last watt, which is admitted first when minimums do not all
fit), so two runs whose ids sorted differently would allocate differently from the same inputs. An
id is therefore the run's half (the namespace's first 8 bytes, with its version) followed by the
name's half (the last 8 bytes of a uuid5 of the name alone, with its variant): within a run the
name's half decides the order, and it is the same in every run.
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
        self._run_half = uuid5(namespace, "run").bytes[:8]  # a version-5 nibble in byte 6
        self._events = count(1)

    def of(self, kind: str, name: str) -> UUID:
        """The id of a named thing: unique to the run, in the same order among a run's ids every run."""
        return UUID(bytes=self._run_half + uuid5(SIMULATOR_NAMESPACE, f"{kind}:{name}").bytes[8:])

    def next_event(self) -> UUID:
        return uuid5(self.namespace, f"event:{next(self._events)}")

    def key(self, kind: str, name: str) -> str:
        """A short stable string key (source refs, idempotency keys, correlation ids)."""
        return f"sim-{kind}-{uuid5(self.namespace, f'{kind}:{name}').hex[:12]}"
