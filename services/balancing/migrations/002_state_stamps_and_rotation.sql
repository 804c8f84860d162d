-- Stamps that say when a microgrid's read models last changed, so a replica can keep them in memory
-- and reload only what changed (services/balancing/adapters/state_cache.py). Every read-model write
-- takes a fresh value from one sequence: a stamp never repeats, across replicas and restarts.
CREATE SEQUENCE IF NOT EXISTS state_stamps;
CREATE TABLE IF NOT EXISTS microgrid_stamps (
    microgrid_id    uuid   PRIMARY KEY,
    static_stamp    bigint NOT NULL DEFAULT 0,  -- tree, limits, control points, status, envelopes, circuits
    telemetry_stamp bigint NOT NULL DEFAULT 0   -- meter readings and connector demands
);
INSERT INTO microgrid_stamps (microgrid_id, static_stamp, telemetry_stamp)
SELECT microgrid_id, nextval('state_stamps'), nextval('state_stamps') FROM microgrids
ON CONFLICT (microgrid_id) DO NOTHING;

-- The allocation tie-break rotation in a column: reading it from the inputs jsonb detoasted the whole
-- inputs document of the last cycle on every cycle.
ALTER TABLE cycles ADD COLUMN IF NOT EXISTS rotation integer;
UPDATE cycles SET rotation = (inputs->>'rotation')::int WHERE rotation IS NULL;
