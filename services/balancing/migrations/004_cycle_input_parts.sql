-- A cycle's large inputs (the tree, limits, envelopes, telemetry) as content-addressed parts: the
-- cycles.inputs document names them by sha256 of their canonical text (key "$parts"), so an unchanged
-- tree is stored once instead of with every cycle. Cycles stored before keep their inputs whole.
CREATE TABLE IF NOT EXISTS cycle_input_parts (
    digest text PRIMARY KEY,
    body   text NOT NULL
);
-- lz4 compresses these large documents several times faster than the default pglz.
ALTER TABLE cycle_input_parts ALTER COLUMN body SET COMPRESSION lz4;
ALTER TABLE cycles ALTER COLUMN result SET COMPRESSION lz4;
ALTER TABLE cycles ALTER COLUMN output SET COMPRESSION lz4;
ALTER TABLE cycles ALTER COLUMN inputs SET COMPRESSION lz4;
