"""The scenario file format: steps played by the outside actors, and the outcomes each must produce.

A scenario is data, not code. Each step has exactly one action (what an outside actor does) and
optionally `expect` (what the system must show for it, checked by polling with a deadline). Times
are seconds relative to the step's own instant on the scenario clock (`at`: planned offset from the
start of the run; `after`: planned offset from the previous step's instant, which keeps "3 s after the
envelope was sent" true however long the setup took; with neither, a step runs right after the
previous one).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.enums import (
    CapabilityState,
    CapabilityType,
    ConstraintType,
    ControlSource,
    CycleOutcome,
    EnvelopeStatus,
    EnvelopeType,
    ProjectionTrigger,
    ReasonCode,
    RebalanceSource,
    SourceMode,
)
from contracts.topics import BY_NAME
from simulator.depot import DepotLayout, load_depot

SCENARIOS_DIR = Path(__file__).resolve().parent / "scenarios"
REQUIREMENT_ID = re.compile(r"^N?FR-\d{3}$")
UNKNOWN_CIRCUIT = "unknown"
"""A circuit name that no registry record ever names: the unresolvable legacy alias."""


class ScenarioModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- actions -------------------------------------------------------------------------------------

TelemetryPattern = Literal["healthy", "noisy", "stale", "missing", "dropout", "invalid"]


class SetupAction(ScenarioModel):
    """The operator brings the depot up: registry records, resync, tree, limits, control points."""

    circuits: bool = True
    resync: bool = True
    tree: bool = True
    limits: bool = True
    control_points: bool = True
    plug_in: Literal["all", "none"] = "all"
    telemetry: TelemetryAction | None = Field(default_factory=lambda: TelemetryAction())

    @field_validator("telemetry", mode="before")
    @classmethod
    def _pattern_shorthand(cls, value: Any) -> Any:
        return {"pattern": value} if isinstance(value, str) else value


class CircuitAction(ScenarioModel):
    """The legacy circuit registry publishes a circuit record (new, changed or removed)."""

    name: str
    default_capacity_watts: int | None = Field(default=None, ge=0)
    fail_safe_capacity_watts: int | None = Field(default=None, ge=0)
    removed: bool = False


class ResyncAction(ScenarioModel):
    pass


class TopologyEdit(ScenarioModel):
    """One authored edit of the tree, applied to the operator's copy and posted whole (replace)."""

    reparent: dict[str, str] | None = Field(default=None, description="{node: X, parent: Y}")
    detach: str | None = Field(default=None, description="Node whose parent is set to a node id not in the tree")
    add: dict[str, Any] | None = Field(default=None, description="{name, type, parent}")
    remove: str | None = None
    rename: dict[str, str] | None = Field(default=None, description="{node: X, to: Y}")
    version: Literal["current", "stale"] = "current"

    @model_validator(mode="after")
    def _one(self) -> TopologyEdit:
        set_ = [k for k in ("reparent", "detach", "add", "remove", "rename") if getattr(self, k) is not None]
        if len(set_) != 1:
            raise ValueError(f"a topology edit has exactly one of reparent/detach/add/remove/rename, got {set_}")
        return self


class ConcurrentEditsAction(ScenarioModel):
    """Two operators post edits authored on the same version at the same time."""

    edits: list[TopologyEdit] = Field(min_length=2, max_length=8)


class NodeLimitAction(ScenarioModel):
    node: str
    watts: int = Field(ge=0)
    constraint_type: ConstraintType = ConstraintType.CONSUMPTION_CAP


class AggregateCapAction(ScenarioModel):
    watts: int | None = Field(ge=0)


class PlugInAction(ScenarioModel):
    """EVs plug in: each named connector (default all) starts a session requesting its power."""

    connectors: list[str] | None = None
    requested_watts: int | None = Field(default=None, ge=0, description="Default: the connector's max")
    min_watts: int | None = Field(default=None, ge=0)
    energy_wh: int | None = Field(default=None, ge=0)


class UnplugAction(ScenarioModel):
    connectors: list[str] | None = None


class TelemetryAction(ScenarioModel):
    """One telemetry tick from every meter and charger, with a degradation pattern on some nodes."""

    pattern: TelemetryPattern = "healthy"
    nodes: list[str] | None = Field(default=None, description="Nodes the pattern applies to (default: all)")
    others: TelemetryPattern = "healthy"
    per_node: dict[str, TelemetryPattern] = Field(default_factory=dict, description="Node -> pattern, first")
    noise: float = Field(default=0.05, ge=0, le=1)
    stale_age_s: float = Field(default=3600, ge=0)
    dropout_rate: float = Field(default=0.5, ge=0, le=1)
    ticks: int = Field(default=1, ge=1, le=1000)
    tick_s: float = Field(default=0.5, ge=0)


class EnvelopeBlock(ScenarioModel):
    from_s: float = Field(alias="from")
    to_s: float = Field(alias="to")
    watts: int | None = Field(default=None, ge=0, description="target_watts")
    max_watts: int | None = Field(default=None, ge=0)
    min_watts: int | None = Field(default=None, ge=0)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EnvelopeAction(ScenarioModel):
    """An external envelope adapter submits an operating envelope through the write port."""

    name: str = Field(default="forecast", description="The envelope's name in this scenario (its source_ref)")
    resend: bool = Field(default=False, description="Submit the named envelope again exactly as sent (a retry)")
    node: str | None = None
    type: EnvelopeType = EnvelopeType.FORECAST
    constraint_type: ConstraintType = ConstraintType.CONSUMPTION_CAP
    blocks: list[EnvelopeBlock] = Field(default_factory=list)
    effective_from: float | None = None
    effective_to: float | None = None
    origin: str | None = Field(default=None, description="Forecast source name; default the node's own")
    no_origin: bool = False

    @model_validator(mode="after")
    def _complete(self) -> EnvelopeAction:
        if not self.resend and (self.node is None or not self.blocks):
            raise ValueError(f"envelope {self.name}: a new envelope needs a node and blocks")
        return self


class WithdrawEnvelopeAction(ScenarioModel):
    name: str


class ControlPointAction(ScenarioModel):
    """The operator configures a capability control point (configuration, not live status)."""

    name: str
    capability_type: CapabilityType
    control_source: ControlSource = ControlSource.EXTERNAL
    node: str | None = Field(default=None, description="Target subtree root; none for the whole microgrid")
    state: CapabilityState = CapabilityState.ENABLED
    schedule_ref: str | None = None
    external_config_type: str | None = None
    external_config_ref: str | None = None
    local_config: dict[str, Any] | None = None


class StatusEventAction(ScenarioModel):
    """A local or external controller reports a capability's runtime status."""

    control_point: str
    status: str | bool
    ref: str = Field(description="Name of the upstream event (its source_event_ref: the idempotency key)")
    observed_ago_s: float = Field(default=0, ge=0)
    detail: dict[str, Any] | None = None
    via: Literal["control_point", "depot"] = Field(
        default="control_point", description="The control point's route, or the depot-scoped whole-microgrid alias"
    )


class ForecastSourceAction(ScenarioModel):
    """The forecast source reports its health (going silent = STALE, then OFFLINE)."""

    name: str
    status: Literal["HEALTHY", "STALE", "OFFLINE"]


RebalanceVia = Literal["operator", "legacy_event", "legacy_http", "scheduler_circuit", "scheduler_microgrid"]


class RebalanceAction(ScenarioModel):
    via: RebalanceVia = "operator"
    circuit: str | None = Field(default=None, description=f"Legacy paths: circuit name or {UNKNOWN_CIRCUIT!r}")
    node: str | None = Field(default=None, description="Operator path: optional subtree scope")
    repeat: int = Field(default=1, ge=1, le=5, description="Send the same request (same key) this many times")

    @model_validator(mode="after")
    def _circuit_for_legacy(self) -> RebalanceAction:
        if self.via in ("legacy_event", "legacy_http", "scheduler_circuit") and self.circuit is None:
            raise ValueError(f"rebalance via {self.via} needs a circuit")
        return self


class TouPeriod(ScenarioModel):
    from_s: float = Field(alias="from")
    to_s: float = Field(alias="to")
    watts: int = Field(ge=0)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TouLimitsAction(ScenarioModel):
    """A legacy integration writes (POST) or reads (GET) a circuit's TOU limits."""

    circuit: str
    method: Literal["POST", "GET"] = "POST"
    periods: list[TouPeriod] = Field(default_factory=list)


class DepotDayAction(ScenarioModel):
    """A compressed busy day: vehicles arrive and leave, telemetry and a scheduler cycle every tick."""

    ticks: int = Field(default=48, ge=1, le=2000)
    tick_s: float = Field(default=0.5, ge=0, description="Scenario seconds per tick")
    period_minutes: int = Field(default=30, ge=1, description="Depot minutes a tick stands for (plots)")
    arrival_rate: float = Field(default=0.35, ge=0, le=1, description="Chance a free connector is taken per tick")
    mean_energy_wh: int = Field(default=40000, ge=1)
    telemetry: TelemetryPattern = "noisy"
    degraded_nodes: list[str] = Field(default_factory=list, description="Nodes whose meters drop out")
    via: Literal["scheduler_microgrid", "scheduler_circuit", "operator"] = "scheduler_microgrid"


class OperatorViewAction(ScenarioModel):
    """The operator reads the depot view (tree, active envelopes, effective capacities) and the status."""


class SettleAction(ScenarioModel):
    """Wait until every service has consumed everything on its topics."""


SetupAction.model_rebuild()

ACTIONS = (
    "setup", "circuit", "resync", "edit_topology", "concurrent_edits", "node_limit", "aggregate_cap",
    "plug_in", "unplug", "telemetry", "envelope", "withdraw_envelope", "forecast_source", "control_point",
    "status_event", "rebalance",
    "tou_limits", "depot_day", "operator_view", "settle",
)


# ---- expectations ---------------------------------------------------------------------------------


class Bound(ScenarioModel):
    eq: int | None = None
    max: int | None = None
    min: int | None = None

    def holds(self, value: int | None) -> bool:
        if value is None:
            return False
        return ((self.eq is None or value == self.eq) and (self.max is None or value <= self.max)
                and (self.min is None or value >= self.min))

    def __str__(self) -> str:
        parts = [f"{k} {v}" for k, v in (("==", self.eq), ("<=", self.max), (">=", self.min)) if v is not None]
        return " and ".join(parts)


def _bound(value: Any) -> Any:
    return {"eq": value} if isinstance(value, int) and not isinstance(value, bool) else value


class HttpExpectation(ScenarioModel):
    """The step's HTTP answer; `statuses` for a step that makes several calls (any order)."""

    status: int | None = None
    statuses: list[int] | None = None
    reason_code: ReasonCode | None = None

    @model_validator(mode="after")
    def _one(self) -> HttpExpectation:
        if (self.status is None) == (self.statuses is None):
            raise ValueError("give exactly one of status and statuses")
        return self


class CycleExpectation(ScenarioModel):
    outcome: CycleOutcome | None = None
    reason_codes: list[ReasonCode] | None = Field(default=None, description="Exact, in precedence order")
    reason_codes_include: list[ReasonCode] = Field(default_factory=list)
    reason_codes_exclude: list[ReasonCode] = Field(default_factory=list)
    source: RebalanceSource | None = None
    node: str | None = Field(default=None, description="The cycle's subtree scope (node name)")
    count: int = Field(default=1, ge=1, description="Exactly this many cycles for this step")
    allocations: dict[str, Bound] = Field(default_factory=dict, description="Node name -> allocated watts")
    same_allocations_as: str | None = Field(
        default=None, description="Label of an earlier step whose cycle must have allocated the same"
    )
    tolerance_watts: int = Field(default=0, ge=0, description="Per-node difference allowed by same_allocations_as")
    total_allocated_watts: Bound | None = None

    @field_validator("allocations", mode="before")
    @classmethod
    def _bounds(cls, value: Any) -> Any:
        return {k: _bound(v) for k, v in (value or {}).items()}

    @field_validator("total_allocated_watts", mode="before")
    @classmethod
    def _total(cls, value: Any) -> Any:
        return _bound(value)


class BreachExpectation(ScenarioModel):
    reason_code: ReasonCode
    node: str | None = Field(default=None, description="Node name; omit for any, 'aggregate' for none")
    resolved_limit_watts: int | None = None
    source_mode: SourceMode | None = None


class EventExpectation(ScenarioModel):
    """Some message on a topic, matched on payload fields (names of circuits/nodes are resolved)."""

    topic: str
    where: dict[str, Any] = Field(default_factory=dict)
    count: int | None = Field(default=None, description="Exactly this many (default: at least one)")

    @field_validator("topic")
    @classmethod
    def _known_topic(cls, value: str) -> str:
        if value not in BY_NAME:
            raise ValueError(f"unknown topic {value!r}")
        return value


class CapacityExpectation(ScenarioModel):
    """The circuit-facing effective capacity (latest changed/reconciled event, and the adapter's view)."""

    circuit: str
    watts: int
    trigger: ProjectionTrigger | None = None


class EnvelopeExpectation(ScenarioModel):
    name: str
    status: EnvelopeStatus


class DemandExpectation(ScenarioModel):
    source_mode: SourceMode
    node: str | None = None


class ControlPointView(ScenarioModel):
    status: str | None = Field(default=None, description="latest_operational_status of the projection")
    reported_by: ControlSource | None = None
    max_freshness_s: int | None = None
    history: int | None = Field(default=None, description="Number of status events in its history")
    configured: bool = True


class ViewExpectation(ScenarioModel):
    """What the operator's reads show (FR-033, FR-007): re-read until it holds or the deadline passes."""

    active_envelopes: int | None = None
    capacity: dict[str, int] = Field(default_factory=dict, description="Circuit name -> effective watts")
    nodes: int | None = Field(default=None, description="Number of nodes in the tree")
    latest_outcome: CycleOutcome | None = None
    control_points: dict[str, ControlPointView] = Field(default_factory=dict, description="By control point name")


class Expectations(ScenarioModel):
    http: HttpExpectation | None = None
    cycle: CycleExpectation | None = None
    no_cycle: bool = False
    breaches: list[BreachExpectation] = Field(default_factory=list)
    no_breaches: bool = False
    events: list[EventExpectation] = Field(default_factory=list)
    capacity: CapacityExpectation | None = None
    envelope: EnvelopeExpectation | None = None
    demand: DemandExpectation | None = None
    view: ViewExpectation | None = None
    timeout_s: float = Field(default=20.0, gt=0)


# ---- step and scenario ----------------------------------------------------------------------------


class Step(ScenarioModel):
    label: str | None = None
    at: float | None = Field(default=None, ge=0, description="Planned offset (s) from the run's start")
    after: float | None = Field(default=None, ge=0, description="Planned offset (s) after the previous step's instant")
    expect: Expectations | None = None
    setup: SetupAction | None = None
    circuit: CircuitAction | None = None
    resync: ResyncAction | None = None
    edit_topology: TopologyEdit | None = None
    concurrent_edits: ConcurrentEditsAction | None = None
    node_limit: NodeLimitAction | None = None
    aggregate_cap: AggregateCapAction | None = None
    plug_in: PlugInAction | None = None
    unplug: UnplugAction | None = None
    telemetry: TelemetryAction | None = None
    envelope: EnvelopeAction | None = None
    withdraw_envelope: WithdrawEnvelopeAction | None = None
    forecast_source: ForecastSourceAction | None = None
    control_point: ControlPointAction | None = None
    status_event: StatusEventAction | None = None
    rebalance: RebalanceAction | None = None
    tou_limits: TouLimitsAction | None = None
    depot_day: DepotDayAction | None = None
    operator_view: OperatorViewAction | None = None
    settle: SettleAction | None = None

    @model_validator(mode="after")
    def _exactly_one_action(self) -> Step:
        if self.at is not None and self.after is not None:
            raise ValueError("give at most one of at and after")
        present = [name for name in ACTIONS if getattr(self, name) is not None]
        if len(present) != 1:
            raise ValueError(f"a step has exactly one action of {', '.join(ACTIONS)}; got {present or 'none'}")
        return self

    @property
    def action_name(self) -> str:
        return next(name for name in ACTIONS if getattr(self, name) is not None)

    @property
    def action(self) -> ScenarioModel:
        return getattr(self, self.action_name)

    def title(self, index: int) -> str:
        return self.label or f"{index + 1}. {self.action_name}"


Invariant = Literal["limits_never_exceeded", "connector_minimums", "one_cycle_per_request", "no_dead_letters"]
DEFAULT_INVARIANTS: tuple[Invariant, ...] = ("limits_never_exceeded", "connector_minimums", "one_cycle_per_request",
                                             "no_dead_letters")


class DepotOverrides(ScenarioModel):
    aggregate_cap_watts: int | None = Field(default=None, ge=0)


class Scenario(ScenarioModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    description: str = ""
    requirements: list[str] = Field(min_length=1)
    edge_case: str | None = Field(default=None, description="The spec's edge case this scenario plays, verbatim")
    depot: str
    overrides: DepotOverrides = DepotOverrides()
    seed: int = 1
    tags: list[str] = Field(default_factory=list)
    invariants: list[Invariant] = Field(default_factory=lambda: list(DEFAULT_INVARIANTS))
    steps: list[Step] = Field(min_length=1)

    @field_validator("requirements")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not REQUIREMENT_ID.match(v)]
        if bad:
            raise ValueError(f"requirement ids look like FR-001 or NFR-007, got {bad}")
        return value

    def layout(self) -> DepotLayout:
        layout = load_depot(self.depot)
        if self.overrides.aggregate_cap_watts is not None:
            layout = layout.model_copy(update={"aggregate_cap_watts": self.overrides.aggregate_cap_watts})
        return layout


def load_scenario(name_or_path: str | Path) -> Scenario:
    path = Path(name_or_path)
    if not path.suffix:
        path = SCENARIOS_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no scenario {name_or_path!r} (known: {', '.join(library_names())})")
    scenario = Scenario.model_validate(yaml.safe_load(path.read_text()))
    if scenario.name != path.stem:
        raise ValueError(f"{path}: scenario name {scenario.name!r} must match the file name")
    scenario.layout()  # the depot must exist and be consistent
    return scenario


def library_paths() -> list[Path]:
    return sorted(SCENARIOS_DIR.glob("*.yaml"))


def library_names() -> list[str]:
    return [p.stem for p in library_paths()]


def library() -> list[Scenario]:
    return [load_scenario(p) for p in library_paths()]
