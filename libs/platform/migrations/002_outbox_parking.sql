-- A row the broker can never take (too large, invalid topic) is parked with its reason instead of
-- holding every row behind it; `mgrid outbox` lists them, requeue puts one back after a fix.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS parked_at timestamptz;
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS parked_reason text;

-- The relay's claim reads only rows still to send; parked rows leave the index like sent ones.
DROP INDEX IF EXISTS outbox_unpublished;
CREATE INDEX IF NOT EXISTS outbox_to_publish ON outbox (id) WHERE published_at IS NULL AND parked_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_parked ON outbox (id) WHERE parked_at IS NOT NULL AND published_at IS NULL;

-- Every published row leaves a dead entry in the partial index until VACUUM (the claim then reads
-- thousands of buffers for a few live rows): vacuum this busy table after a few thousand changes
-- instead of after 20 % of it, without cost throttling. Published rows are also pruned after a
-- retention (PlatformSettings.outbox_retention_s), so the table stays small.
ALTER TABLE outbox SET (
    autovacuum_vacuum_scale_factor = 0.0,
    autovacuum_vacuum_threshold = 2000,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0.05
);
