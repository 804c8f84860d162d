-- A row may carry several messages (libs/platform/messaging/outbox_pack.py): `messages` counts them, and
-- a row with more than one holds them packed in `value` (its topic, key and headers are its first
-- message's). A balancing cycle's ~114 events go as one row: one tuple and one entry per index to write,
-- claim and delete instead of a hundred (issue 13).
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS messages integer NOT NULL DEFAULT 1 CHECK (messages >= 1);
