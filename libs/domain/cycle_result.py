"""What one balancing cycle decided, with enough provenance to explain and replay it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar, overload

from contracts.enums import ConstraintType, CycleOutcome, NodeType, ReasonCode, RebalanceSource, SourceMode
from libs.domain.allocation import AllocationState
from libs.domain.circuit_capacity import CircuitCapacityResolution
from libs.domain.demand import DemandResolution
from libs.domain.effective_constraints import EffectiveConstraint
from libs.domain.limits import ConstraintSource
from libs.domain.topology import TopologyViolation

T = TypeVar("T")


class LazyRecords(Sequence[T], Generic[T]):
    """A tuple of result records built on first use (iteration, indexing, length, comparison).

    The cycle decides on arrays by tree position; the per-node records that explain a decision are
    only needed where a result is serialised or read, so they are built there, once, from a builder
    the cycle leaves behind (a pure function of values the cycle already computed and never changes).
    Equal to a tuple of the same records, so results compare as before.
    """

    __slots__ = ("_build", "_items", "_json", "_columns")

    def __init__(
        self,
        build: Callable[[], Iterable[T]],
        json: Callable[[], bytes] | None = None,
        columns: Callable[[], tuple[Sequence[Any], ...]] | None = None,
    ) -> None:
        """``json``: the canonical JSON array of the records, written straight from the values they are
        built from (the same bytes as encoding the records): a result serialised without being read
        never builds them. ``columns``: those values, one sequence per record field in field order."""
        self._build: Callable[[], Iterable[T]] | None = build
        self._items: tuple[T, ...] | None = None
        self._json = json
        self._columns = columns

    def items(self) -> tuple[T, ...]:
        items = self._items
        if items is None:
            items = self._items = tuple(self._build())  # type: ignore[misc]
            self._build = None
            self._json = None
        return items

    def canonical_json(self) -> bytes | None:
        """The records' canonical JSON array without building them, when they are not built yet and a
        writer was left (None otherwise: encode the records)."""
        return self._json() if self._json is not None else None

    def columns(self) -> tuple[Sequence[Any], ...] | None:
        """The records' fields as columns (one per field, in field order), when the cycle left them: a
        writer of some fields reads them without building a record per node."""
        return self._columns() if self._columns is not None else None

    def __len__(self) -> int:
        return len(self.items())

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[T, ...]: ...
    def __getitem__(self, i: Any) -> Any:
        return self.items()[i]

    def __iter__(self) -> Iterator[T]:
        return iter(self.items())

    def __bool__(self) -> bool:
        return bool(self.items())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyRecords):
            other = other.items()
        return isinstance(other, tuple) and self.items() == other

    def __hash__(self) -> int:
        return hash(self.items())

    def __repr__(self) -> str:
        return repr(self.items())

    def __reduce__(self) -> tuple[Any, ...]:
        return (tuple, (self.items(),))  # pickles (and copies) as the plain tuple it stands for


def once(make: Callable[[], T]) -> Callable[[], T]:
    """``make``, called on first use only; later calls give what it gave (the values a result's lazy
    records, their JSON and their columns are all made from)."""
    made: list[T] = []

    def first() -> T:
        if not made:
            made.append(make())
        return made[0]

    return first


@dataclass(frozen=True, slots=True)
class Binding:
    """The cap that limited a connector: on ``node_id`` (None: the aggregate)."""

    node_id: str | None
    constraint_type: ConstraintType
    constraint_ref: str
    source: ConstraintSource
    limit_watts: int
    headroom_watts: int  # what the cap left for controllable load once uncontrolled load was counted


@dataclass(frozen=True, slots=True)
class NodeAllocation:
    node_id: str
    node_type: NodeType
    requested_watts: int  # connectors: the request; other nodes: the sum requested in the subtree
    allocated_watts: int
    uncontrolled_watts: int  # load in the subtree this cycle does not control
    state: AllocationState | None = None  # connectors only
    min_watts: int = 0
    binding: Binding | None = None


@dataclass(frozen=True, slots=True)
class AllocationSummary:
    total_requested_watts: int
    total_allocated_watts: int
    nodes: tuple[NodeAllocation, ...]  # the checked nodes, in tree preorder


@dataclass(frozen=True, slots=True)
class Breach:
    breach_id: str
    microgrid_id: str
    node_id: str | None  # None: the microgrid-wide aggregate cap
    constraint_type: ConstraintType
    constraint_ref: str
    reason_code: ReasonCode
    effective_demand_watts: int
    resolved_limit_watts: int
    source_mode: SourceMode
    detected_at: datetime

    @property
    def excess_watts(self) -> int:
        return self.effective_demand_watts - self.resolved_limit_watts


@dataclass(frozen=True, slots=True)
class CycleAudit:
    rebalance_source: RebalanceSource | None
    correlation_id: str | None
    legacy_alias_applied: bool


@dataclass(frozen=True, slots=True)
class CycleResult:
    cycle_id: str
    microgrid_id: str
    node_id: str | None
    topology_version: int
    started_at: datetime
    ended_at: datetime
    evaluated_at: datetime
    outcome: CycleOutcome
    reason_codes: tuple[ReasonCode, ...]
    allocation_summary: AllocationSummary
    breaches: tuple[Breach, ...]
    demand_resolutions: tuple[DemandResolution, ...]
    effective_constraints: tuple[EffectiveConstraint, ...]
    circuit_capacities: tuple[CircuitCapacityResolution, ...]
    topology_violations: tuple[TopologyViolation, ...]
    expected_topology_version: int | None
    missing_inputs: tuple[str, ...]  # scopes with neither usable telemetry nor a fallback rule
    safe_action_taken: str | None
    audit: CycleAudit
    inputs_digest: str
