-- A cycle puts ~150 KB of events in its service's outbox (cycle_completed, demand_resolved); lz4
-- compresses them several times faster than the default pglz, on every service's hot path.
ALTER TABLE outbox ALTER COLUMN value SET COMPRESSION lz4;
