-- cycles.result is stored as json, the record's text as encode_cycle wrote it, no longer as jsonb (issue 13).
-- Every read parses it in Python (contracts.records.CycleResultRecord); jsonb's decomposition of a curtailed
-- depot's ~130 kB record cost its backend ~4 ms of CPU a cycle, json's validation ~1 ms
-- (benchmarks/toast_compression.py). The `->` operators work on json as they did.
DROP VIEW IF EXISTS breaches;
-- engine_version becomes a plain column the insert writes (a generated one would parse the record again);
-- its values stay, and a row written without it counts as engine 1, as before.
ALTER TABLE cycles ALTER COLUMN engine_version DROP EXPRESSION;
ALTER TABLE cycles ALTER COLUMN engine_version SET DEFAULT '1';
ALTER TABLE cycles ALTER COLUMN engine_version SET NOT NULL;
ALTER TABLE cycles ALTER COLUMN result TYPE json USING result::json;
ALTER TABLE cycles ALTER COLUMN result SET COMPRESSION lz4;
CREATE VIEW breaches AS
SELECT (b.record->>'breach_id')::uuid           AS breach_id,
       c.cycle_id,
       c.microgrid_id,
       b.record,
       (b.record->>'detected_at')::timestamptz  AS detected_at
FROM cycles c, json_array_elements(c.result->'breaches') AS b(record);
