-- Every breach is kept with its cycle: cycles.result lists them all (only cycle_completed caps them).
-- A row per breach wrote the same records again, about a hundred jsonb rows per cycle of a curtailed
-- depot, and nothing read them (issue 13). `breaches` stays as a relation to query, now a view.
DROP TABLE IF EXISTS breaches;
CREATE VIEW breaches AS
SELECT (b.record->>'breach_id')::uuid           AS breach_id,
       c.cycle_id,
       c.microgrid_id,
       b.record,
       (b.record->>'detected_at')::timestamptz  AS detected_at
FROM cycles c, jsonb_array_elements(c.result->'breaches') AS b(record);
