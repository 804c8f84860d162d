"""Advisory-lock keys are built one way: stable, 64-bit signed, distinct per kind of lock."""

from __future__ import annotations

import hashlib
import uuid

from libs.platform.advisory_locks import advisory_lock_key


def test_a_key_is_stable_and_fits_postgres_bigint() -> None:
    microgrid_id = uuid.UUID("00000000-0000-0000-0000-000000000001")
    key = advisory_lock_key("balancing", microgrid_id)
    assert key == advisory_lock_key("balancing", str(microgrid_id))  # the parts' text is what counts
    # Pinned: replicas of one release and the next must compute the same key for the same lock
    # (the outbox relay's and the migration runner's session locks had this format already).
    digest = hashlib.sha256(f"balancing:{microgrid_id}".encode()).digest()
    assert key == int.from_bytes(digest[:8], "big", signed=True)
    assert -(2**63) <= key < 2**63


def test_kinds_and_instances_never_share_a_key() -> None:
    microgrid_id = uuid.uuid4()
    keys = {
        advisory_lock_key("balancing", microgrid_id),
        advisory_lock_key("envelope_lifecycle", microgrid_id),
        advisory_lock_key("balancing", uuid.uuid4()),
        advisory_lock_key("outbox", "schema_a"),
        advisory_lock_key("migrate", "schema_a"),
    }
    assert len(keys) == 5
