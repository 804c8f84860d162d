-- The value the circuit-facing capacity had before its last change (GET effective-circuit-capacity showed null).
ALTER TABLE effective_circuit_capacity ADD COLUMN IF NOT EXISTS previous_capacity_watts bigint;
