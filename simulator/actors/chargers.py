"""The chargers: one session per occupied connector, drawing what the last cycle allocated to it.

Before any cycle a freshly plugged vehicle draws its full request (an uncontrolled start, as a real
charger does until it gets a profile); after a cycle it follows the allocation, so the loop closes:
allocation -> draw -> telemetry -> next cycle. A session ends when its energy is delivered.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from contracts.records import CycleResultRecord


@dataclass
class Session:
    connector: str
    session_ref: str
    requested_watts: int
    min_watts: int
    energy_left_wh: float
    allocated_watts: int | None = None  # None: no cycle has spoken yet (uncontrolled start)

    @property
    def draw_watts(self) -> int:
        if self.energy_left_wh <= 0:
            return 0
        if self.allocated_watts is None:
            return self.requested_watts
        return min(self.requested_watts, self.allocated_watts)


class Chargers:
    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self._started = 0

    def plug_in(self, connector: str, *, requested_watts: int, min_watts: int, energy_wh: float, ref: str) -> Session:
        self._started += 1
        session = Session(connector, ref, requested_watts, min(min_watts, requested_watts), energy_wh)
        self.sessions[connector] = session
        return session

    def unplug(self, connector: str) -> None:
        self.sessions.pop(connector, None)

    def draw(self, connector: str) -> int:
        session = self.sessions.get(connector)
        return session.draw_watts if session else 0

    def follow(self, cycle: CycleResultRecord, name_of: dict[UUID, str]) -> None:
        """Adopt the cycle's allocation for every connector it names (others keep their last one)."""
        if cycle.outcome == "REJECTED":
            return  # nothing was applied: chargers keep their profile
        for node in cycle.allocation_summary.by_node:
            name = name_of.get(node.node_id)
            if name in self.sessions:
                self.sessions[name].allocated_watts = node.allocated_watts

    def advance(self, hours: float) -> list[str]:
        """Deliver energy for `hours` at the current draws; returns the connectors whose session ended."""
        finished = []
        for name, session in sorted(self.sessions.items()):
            session.energy_left_wh -= session.draw_watts * hours
            if session.energy_left_wh <= 0:
                finished.append(name)
        for name in finished:
            self.unplug(name)
        return finished

    def requested(self, connector: str) -> int:
        session = self.sessions.get(connector)
        return session.requested_watts if session else 0
