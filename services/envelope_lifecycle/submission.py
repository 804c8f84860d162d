"""What the write port receives, in one shape for both doors (command topic and internal HTTP).

Envelope and constraint types are kept as the strings the sender gave, so that an unknown type is judged
by the same validation path as every other rule and stored as REJECTED, rather than lost at the edge.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid5

from contracts.records import EnvelopeBlockRecord

# Envelope ids are derived from (microgrid_id, source_ref): a replay maps to the same envelope (NFR-010).
_ENVELOPE_NAMESPACE = UUID("6f1c7a52-3c1e-4a53-9a44-6b8f0f7d2e11")


@dataclass(frozen=True, slots=True)
class EnvelopeSubmission:
    microgrid_id: UUID
    node_id: UUID
    origin_control_point_id: UUID | None
    envelope_type: str
    constraint_type: str
    effective_from: datetime
    effective_to: datetime
    source_ref: str
    blocks: tuple[EnvelopeBlockRecord, ...]
    submitted_by: str  # the actor: the token's subject (HTTP) or the sending service (command topic)
    claimed_by: str | None = None  # what the HTTP body said it was: a label only, never the actor
    # Withdrawn when (and only when) this envelope is accepted; not content, so not in the digest.
    supersedes_source_refs: tuple[str, ...] = ()

    @property
    def envelope_id(self) -> UUID:
        return uuid5(_ENVELOPE_NAMESPACE, f"{self.microgrid_id}/{self.source_ref}")

    def digest(self) -> str:
        """Fingerprint of the content (not of who sent it): a replay must match it exactly."""
        content = {
            "microgrid_id": str(self.microgrid_id),
            "node_id": str(self.node_id),
            "origin_control_point_id": str(self.origin_control_point_id) if self.origin_control_point_id else None,
            "envelope_type": self.envelope_type,
            "constraint_type": self.constraint_type,
            "effective_from": self.effective_from.isoformat(),
            "effective_to": self.effective_to.isoformat(),
            "source_ref": self.source_ref,
            "blocks": [b.model_dump(mode="json") for b in self.blocks],
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
