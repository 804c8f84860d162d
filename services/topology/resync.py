"""Depot resync (pure): the managed first-level GRID_CONNECTION nodes a depot's feeder circuits call for.

A top-level feeder circuit (no parent circuit, not removed) becomes one first-level GRID_CONNECTION
node attached to it (`attached_asset_type=CIRCUIT`, `managed=true`). Its node id is derived from the
microgrid and the circuit, so a circuit always maps to the same node. Operator-authored nodes are
returned untouched; a managed node whose circuit is no longer a feeder is dropped.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from uuid import UUID

from contracts.enums import AssetType, NodeStatus, NodeType
from contracts.records import LegacyCircuitRecord, MicrogridNodeRecord

# Namespace of the managed node ids (uuid5 of "<microgrid_id>/<circuit_id>"): fixed, never change it.
MANAGED_NODE_NAMESPACE = UUID("6b1f3a52-5d0e-4f59-9a8e-2f3c1f0c7a10")


def managed_node_id(microgrid_id: UUID, circuit_id: UUID) -> UUID:
    return uuid.uuid5(MANAGED_NODE_NAMESPACE, f"{microgrid_id}/{circuit_id}")


def resynced_nodes(
    microgrid_id: UUID, current: Iterable[MicrogridNodeRecord], feeders: Iterable[LegacyCircuitRecord]
) -> list[MicrogridNodeRecord]:
    """The whole node set after resync, in node_id order."""
    current = list(current)
    managed_by_circuit = {
        n.attached_asset_id: n for n in current if n.managed and n.attached_asset_type is AssetType.CIRCUIT
    }
    nodes = [n for n in current if not n.managed]
    for circuit in feeders:
        kept = managed_by_circuit.get(circuit.circuit_id)
        nodes.append(
            MicrogridNodeRecord(
                node_id=kept.node_id if kept else managed_node_id(microgrid_id, circuit.circuit_id),
                microgrid_id=microgrid_id,
                parent_node_id=None,
                name=circuit.name,
                node_type=NodeType.GRID_CONNECTION,
                attached_asset_type=AssetType.CIRCUIT,
                attached_asset_id=circuit.circuit_id,
                # Operator-set operational fields of an existing managed node survive a resync.
                status=kept.status if kept else NodeStatus.ACTIVE,
                display_order=kept.display_order if kept else 0,
                managed=True,
            )
        )
    return sorted(nodes, key=lambda n: str(n.node_id))
