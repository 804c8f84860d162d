"""The domain's view of contract records: the one mapping every service uses.

Contracts carry UUIDs and pydantic records on the wire; the domain works on plain frozen values with
string ids. Pure: no I/O.
"""

from __future__ import annotations

from contracts.records import MicrogridNodeRecord, MicrogridRecord, NodeLimitRecord, OperatingEnvelopeRecord
from libs.domain.envelopes import EnvelopeBlock, OperatingEnvelope
from libs.domain.limits import NodeLimit
from libs.domain.topology import Microgrid, MicrogridNode


def domain_microgrid(record: MicrogridRecord) -> Microgrid:
    return Microgrid(str(record.microgrid_id), str(record.depot_id), record.version)


def domain_node(record: MicrogridNodeRecord) -> MicrogridNode:
    return MicrogridNode(
        node_id=str(record.node_id),
        microgrid_id=str(record.microgrid_id),
        parent_node_id=str(record.parent_node_id) if record.parent_node_id else None,
        name=record.name,
        node_type=record.node_type,
        attached_asset_type=record.attached_asset_type,
        attached_asset_id=str(record.attached_asset_id) if record.attached_asset_id else None,
        status=record.status,
        display_order=record.display_order,
    )


def domain_node_limit(record: NodeLimitRecord) -> NodeLimit:
    return NodeLimit(
        node_limit_id=str(record.node_limit_id),
        microgrid_id=str(record.microgrid_id),
        node_id=str(record.node_id),
        constraint_type=record.constraint_type,
        limit_watts=record.limit_watts,
        source_type=record.source_type,
        status=record.status,
        updated_at=record.updated_at,
    )


def domain_envelope(record: OperatingEnvelopeRecord) -> OperatingEnvelope:
    return OperatingEnvelope(
        envelope_id=str(record.envelope_id),
        microgrid_id=str(record.microgrid_id),
        node_id=str(record.node_id),
        envelope_type=record.envelope_type,
        constraint_type=record.constraint_type,
        effective_from=record.effective_from,
        effective_to=record.effective_to,
        status=record.status,
        blocks=tuple(
            EnvelopeBlock(b.block_from, b.block_to, b.min_limit_watts, b.max_limit_watts, b.target_watts)
            for b in record.blocks
        ),
        origin_control_point_id=str(record.origin_control_point_id) if record.origin_control_point_id else None,
        source_ref=record.source_ref,
        received_at=record.received_at,
    )
