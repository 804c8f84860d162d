-- The engine version that made each cycle, as a column for queries. It is recorded in the cycle's
-- audit (result.audit.policy_versions.engine_version); cycles stored before that count as engine 1.
ALTER TABLE cycles ADD COLUMN IF NOT EXISTS engine_version text
    GENERATED ALWAYS AS (COALESCE(result -> 'audit' -> 'policy_versions' ->> 'engine_version', '1')) STORED;
