-- When the envelope service's projection last set a circuit's value, apart from a cycle's guard
-- reconciliation (which may carry a newer evaluated_at): a projection change requests its one
-- rebalance whichever of the two arrived first, and a replayed or late projection requests none.
ALTER TABLE circuit_capacity ADD COLUMN IF NOT EXISTS projected_at timestamptz;
UPDATE circuit_capacity SET projected_at = evaluated_at
 WHERE projected_at IS NULL AND projection_trigger <> 'REBALANCE_GUARD';
