-- The operator console's read model (services/balancing/console), kept from published events only.

-- One point per completed cycle and checked grid connection or circuit: asked, drawn, given, and the limit.
CREATE TABLE IF NOT EXISTS console_timeline (
    microgrid_id          uuid        NOT NULL,
    node_id               uuid        NOT NULL,
    cycle_id              uuid        NOT NULL,
    at                    timestamptz NOT NULL,
    requested_watts       bigint      NOT NULL,
    drawn_watts           bigint,
    allocated_watts       bigint      NOT NULL,
    effective_limit_watts bigint,
    PRIMARY KEY (microgrid_id, node_id, cycle_id)
);
CREATE INDEX IF NOT EXISTS console_timeline_recent ON console_timeline (microgrid_id, at DESC);

-- Completed cycles as published (microgrid.cycle_completed), newest first for the cycle list.
CREATE TABLE IF NOT EXISTS console_cycles (
    cycle_id     uuid        PRIMARY KEY,
    microgrid_id uuid        NOT NULL,
    ended_at     timestamptz NOT NULL,
    record       jsonb       NOT NULL
);
CREATE INDEX IF NOT EXISTS console_cycles_recent ON console_cycles (microgrid_id, ended_at DESC);

-- Every envelope status an event reported: receipt, boundaries, expiry, withdrawal.
CREATE TABLE IF NOT EXISTS console_envelope_transitions (
    event_id        uuid        PRIMARY KEY,
    envelope_id     uuid        NOT NULL,
    microgrid_id    uuid        NOT NULL,
    transition      text        NOT NULL,
    previous_status text,
    status          text        NOT NULL,
    at              timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS console_transitions_by_microgrid ON console_envelope_transitions (microgrid_id, at);

-- The effective circuit capacity with the value it replaced and why it changed.
CREATE TABLE IF NOT EXISTS console_circuit_capacity (
    microgrid_id            uuid        NOT NULL,
    node_id                 uuid        NOT NULL,
    circuit_id              uuid        NOT NULL,
    capacity_watts          bigint      NOT NULL,
    previous_capacity_watts bigint,
    trigger                 text        NOT NULL,
    basis                   text        NOT NULL,
    evaluated_at            timestamptz NOT NULL,
    PRIMARY KEY (microgrid_id, node_id)
);

-- What-if previews: audited, never a cycle, never an event.
CREATE TABLE IF NOT EXISTS console_previews (
    preview_id   uuid        PRIMARY KEY,
    microgrid_id uuid        NOT NULL,
    actor        text        NOT NULL,
    kind         text        NOT NULL,
    proposal     jsonb       NOT NULL,
    inputs_digest text       NOT NULL,
    outcome_before text      NOT NULL,
    outcome_after  text      NOT NULL,
    previewed_at timestamptz NOT NULL
);
