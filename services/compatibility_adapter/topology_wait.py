"""Read-your-writes across services (issue 15, defect 7): a legacy HTTP call naming a circuit no node
carries here yet waits, bounded (`compat_topology_wait_s`), for the topology that maps it, before the
alias is judged; only then is it refused, saying that it waited.

Right after a resync the topology service has attached the circuit to its node, but the adapter learns
the alias from `microgrid.topology_updated` a moment later. (The legacy event doors need no wait: they
are consumed in order after the topology on the same broker.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from uuid import UUID

from libs.domain.circuit_alias import AliasFailure
from services.compatibility_adapter.adapters import alias_read_model
from services.compatibility_adapter.settings import CompatibilityAdapterContext

_POLL_S = 0.05


async def wait_for_circuit(ctx: CompatibilityAdapterContext, circuit_id: UUID) -> float | None:
    """Wait until some node carries the circuit here; None when one does, else the seconds waited."""
    wait_s = ctx.settings.compat_topology_wait_s
    started = time.monotonic()
    while not await alias_read_model.rows_for_circuit(ctx.pool, circuit_id):
        waited = time.monotonic() - started
        if waited >= wait_s:
            return waited
        await asyncio.sleep(_POLL_S)
    return None


def after_waiting(failure: AliasFailure, waited_s: float | None) -> AliasFailure:
    """The refusal says plainly that the topology was waited for."""
    if not waited_s:
        return failure
    detail = f"{failure.detail} (no node carries it here after waiting {waited_s:.0f} s for the topology)"
    return dataclasses.replace(failure, detail=detail)
