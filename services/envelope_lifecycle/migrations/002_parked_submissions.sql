-- Read-your-writes (issue 15, defect 7): an envelope command naming a node this service has not seen yet
-- waits here, bounded, for the topology that brings it, instead of being judged REJECTED at once.
CREATE TABLE IF NOT EXISTS parked_submission (
    event_id     uuid PRIMARY KEY,
    microgrid_id uuid        NOT NULL,
    node_id      uuid        NOT NULL,
    message      jsonb       NOT NULL,
    deadline     timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS parked_submission_microgrid ON parked_submission (microgrid_id);
CREATE INDEX IF NOT EXISTS parked_submission_deadline ON parked_submission (deadline);
