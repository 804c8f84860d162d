-- Every replay of a dead letter (`mgrid dlq replay`): who sent which letter back, when, to where.
-- The replayed message takes the normal path (inbox deduplication), so replaying twice is harmless;
-- this table is the audit of it, and what `mgrid dlq list` and /metrics count as replayed.
CREATE TABLE IF NOT EXISTS dead_letter_replays (
    id                 bigserial   PRIMARY KEY,
    consumer_group     text        NOT NULL,
    dlq_topic          text        NOT NULL,
    dlq_partition      integer     NOT NULL,
    dlq_offset         bigint      NOT NULL,
    original_topic     text        NOT NULL,
    original_partition integer     NOT NULL,
    original_offset    bigint      NOT NULL,
    event_id           text,
    reason             text        NOT NULL,
    replayed_by        text        NOT NULL,
    replayed_at        timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS dead_letter_replays_letter
    ON dead_letter_replays (consumer_group, dlq_partition, dlq_offset);
