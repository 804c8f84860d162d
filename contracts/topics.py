"""The topic registry: every topic, the one message model on it, its key, partitions and owner.

Topics are created explicitly from this registry (`mgrid stack up` / the test fixtures), never by
broker auto-creation. The key keeps one microgrid's messages in order on one partition
(ARCHITECTURE.md section 2); legacy topics are keyed by the circuit they name.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts import commands as cmd
from contracts import events as ev
from contracts.base import Message

DEFAULT_PARTITIONS = 3

# ---- message size budgets (docs/security.md, "Limits") ---------------------------------------------
# The broker takes records up to message.max.bytes (1,048,588 by default) and the producer sends
# requests up to max_request_size (1,048,576). A topic's budget is what its serialised message may
# weigh, leaving room for the key, the trace headers and the batch framing. A write port refuses
# (413) a write whose message would not fit its budget; contracts/message_sizes.py holds the checks.
BROKER_MAX_MESSAGE_BYTES = 1_048_576
LARGE_MESSAGE_BYTES = 786_432  # 768 KiB: 75% of the broker's limit, for messages that carry a whole tree
SMALL_MESSAGE_BYTES = 65_536  # 64 KiB: every other message (a record or two, bounded free-form JSON)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    message: type[Message]
    key_fields: tuple[str, ...]
    owner: str
    consumers: tuple[str, ...]
    partitions: int = DEFAULT_PARTITIONS
    description: str = ""
    max_bytes: int = SMALL_MESSAGE_BYTES
    """Size budget of one serialised message on this topic (see the budgets above)."""
    # Producers besides the owner (the broker's ACLs let exactly the owner and these write the topic).
    also_produced_by: tuple[str, ...] = ()
    # Services that read the topic outside their consumer group (a reader of their own, no committed
    # offsets): the broker lets them read it; the simulator's consumed barrier does not wait for them.
    also_read_by: tuple[str, ...] = ()

    def key_for(self, message: Message) -> bytes:
        """The first non-null key field of the payload, as bytes."""
        for field in self.key_fields:
            value = getattr(message.payload, field, None)
            if value is not None:
                return str(value).encode()
        raise ValueError(f"{self.name}: message has none of the key fields {self.key_fields}")


T, E, B, C, SIM = "topology", "envelope_lifecycle", "balancing", "compatibility_adapter", "simulator"
# The services, in start order: each is a consumer group, a Kafka principal, a Postgres role and schema.
SERVICES: tuple[str, ...] = (T, E, B, C)
MG = ("microgrid_id",)
LARGE = LARGE_MESSAGE_BYTES

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("microgrid.topology_updated", ev.TopologyUpdated, MG, T, (E, B, C),
              description="Topology mutation accepted; carries the whole tree at that version.", max_bytes=LARGE),
    TopicSpec("microgrid.node_limit_updated", ev.NodeLimitUpdated, MG, T, (B,),
              description="Baseline node-limit record updated (full record)."),
    TopicSpec("microgrid.capability_control_point_updated", ev.CapabilityControlPointUpdated, MG, T, (B, E),
              description="Capability control point record updated (full record).", max_bytes=LARGE),
    TopicSpec("microgrid.capability_status.recorded", ev.CapabilityStatusRecorded, MG, T, (B, E),
              description="Capability status appended as an immutable domain event.", max_bytes=LARGE),
    TopicSpec("microgrid.operating_envelope_received", ev.OperatingEnvelopeReceived, MG, E, (B, T, C),
              description="Operating envelope accepted by the write port (with its blocks).", max_bytes=LARGE),
    TopicSpec("microgrid.operating_envelope_rejected", ev.OperatingEnvelopeRejected, MG, E, (),
              description="Operating envelope failed validation; stored as REJECTED with the reason.", max_bytes=LARGE),
    TopicSpec("microgrid.operating_envelope_lifecycle_evaluated", ev.OperatingEnvelopeLifecycleEvaluated, MG,
              E, (B, T, C), description="Scheduled boundary, expiry or withdrawal evaluated.", max_bytes=LARGE),
    TopicSpec("compatibility.effective_circuit_capacity_changed", ev.EffectiveCircuitCapacityChanged, MG, E,
              (C, B, T), description="Effective feeder-circuit capacity changed (ENVELOPE_CHANGE/LIFECYCLE)."),
    TopicSpec("compatibility.effective_circuit_capacity_reconciled", ev.EffectiveCircuitCapacityReconciled,
              MG, B, (C, T, B), description="Capacity corrected by the REBALANCE_GUARD; never requests a rebalance."),
    TopicSpec("microgrid.rebalance_requested", ev.RebalanceRequested, MG, C, (B,),
              description="Rebalance command accepted (HTTP, scheduler, alias, envelope change).",
              also_produced_by=(B,)),  # balancing's own POST /rebalance route
    TopicSpec("microgrid.demand_resolved", ev.DemandResolved, MG, B, (),
              description="Demand resolution step of a cycle completed.", max_bytes=LARGE),
    TopicSpec("microgrid.constraint_breach_detected", ev.ConstraintBreachDetected, MG, B, (SIM,),
              description="One active policy breach detected in a cycle."),
    TopicSpec("microgrid.cycle_completed", ev.CycleCompleted, MG, B, (SIM,),
              description="Cycle reached its final state; allocations for the chargers.", max_bytes=LARGE,
              also_read_by=(C,)),  # the adapter's HTTP door, only while it waits for a result
    TopicSpec("compatibility.circuit_alias_applied", ev.CircuitAliasApplied, ("circuit_id",), C, (),
              description="Legacy circuit request translated to microgrid_id + node_id."),
    TopicSpec("microgrid.telemetry_reported", ev.TelemetryReported, MG, SIM, (B,),
              description="Meter and connector telemetry and charging demand.", max_bytes=LARGE),
    TopicSpec("microgrid.submit_operating_envelope", cmd.SubmitOperatingEnvelope, MG, "external_adapter", (E,),
              description="Envelope write-port command (external protocol adapters; the compatibility "
              "adapter's TOU translation).", max_bytes=LARGE, also_produced_by=(C,)),
    TopicSpec("microgrid.withdraw_operating_envelope", cmd.WithdrawOperatingEnvelope, MG, "external_adapter", (E,),
              description="Envelope write-port withdrawal command.", also_produced_by=(C,)),
    TopicSpec("compatibility.circuit_alias_failed", ev.CircuitAliasFailed, ("circuit_id",), C, (),
              description="Alias translation failed: CIRCUIT_ALIAS_NOT_RESOLVABLE and friends."),
    TopicSpec("compatibility.scheduler_dispatch_failed", ev.SchedulerDispatchFailed,
              ("microgrid_id", "circuit_id"), C, (), description="Periodic job skipped with a reason code."),
    TopicSpec("load_balancer.rebalance_requested", ev.LegacyRebalanceRequested, ("circuit_id",), "legacy", (C,),
              description="Legacy circuit-keyed rebalance request."),
    TopicSpec("scheduler.rebalance_periodic", ev.ScheduledRebalancePeriodic, ("microgrid_id", "circuit_id"),
              "scheduler", (C,), description="ScheduledEventRebalancePeriodic{circuit_id | microgrid_id}."),
    TopicSpec("legacy_circuit.circuit_updated", ev.LegacyCircuitUpdated, ("depot_id",), "legacy", (T, E, B, C),
              description="Legacy circuit registry record (default and fail-safe capacity, parent)."),
)

BY_NAME: dict[str, TopicSpec] = {t.name: t for t in TOPICS}
BY_MESSAGE: dict[type[Message], TopicSpec] = {t.message: t for t in TOPICS}
# Views a consumer may subscribe with instead of a topic's model (contracts.events, "views"): read only,
# never published (`topic_for` does not know them).
VIEWS: dict[type[Message], TopicSpec] = {ev.CycleCompletedSummary: BY_NAME["microgrid.cycle_completed"]}

# The thirteen events of the spec's Event Dictionary.
SPEC_EVENT_NAMES: tuple[str, ...] = (
    "microgrid.topology_updated",
    "microgrid.node_limit_updated",
    "microgrid.capability_control_point_updated",
    "microgrid.capability_status.recorded",
    "microgrid.operating_envelope_received",
    "microgrid.operating_envelope_lifecycle_evaluated",
    "compatibility.effective_circuit_capacity_changed",
    "compatibility.effective_circuit_capacity_reconciled",
    "microgrid.rebalance_requested",
    "microgrid.demand_resolved",
    "microgrid.constraint_breach_detected",
    "microgrid.cycle_completed",
    "compatibility.circuit_alias_applied",
)

DEAD_LETTER_PREFIX = "dlq."
DEAD_LETTER_PARTITIONS = 1


def dead_letter_topic(consumer_group: str) -> str:
    """One dead-letter topic per consumer group."""
    return f"{DEAD_LETTER_PREFIX}{consumer_group}"


def topic_for(message: Message | type[Message]) -> TopicSpec:
    cls = message if isinstance(message, type) else type(message)
    return BY_MESSAGE[cls]


def subscribed_topic(message_type: type[Message]) -> TopicSpec | None:
    """The topic a handler of `message_type` consumes: the type's own topic, or the one it is a view of."""
    return BY_MESSAGE.get(message_type) or VIEWS.get(message_type)


def decode(topic: str, raw: bytes) -> Message:
    """Parse and validate raw bytes as the topic's one message model (raises pydantic.ValidationError)."""
    return BY_NAME[topic].message.model_validate_json(raw)
