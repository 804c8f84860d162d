-- The envelope-lifecycle service's own schema (search_path is pinned to it by the runtime).

-- Read models kept from other services' events ------------------------------------------------------

-- The latest topology per microgrid (microgrid.topology_updated carries the whole tree).
CREATE TABLE microgrid (
    microgrid_id uuid PRIMARY KEY,
    depot_id     uuid NOT NULL,
    version      integer NOT NULL
);

CREATE TABLE microgrid_node (
    microgrid_id        uuid NOT NULL REFERENCES microgrid (microgrid_id) ON DELETE CASCADE,
    node_id             uuid NOT NULL,
    parent_node_id      uuid,
    name                text NOT NULL,
    node_type           text NOT NULL,
    attached_asset_type text,
    attached_asset_id   uuid,
    managed             boolean NOT NULL DEFAULT false,
    PRIMARY KEY (microgrid_id, node_id)
);
CREATE INDEX microgrid_node_asset ON microgrid_node (attached_asset_id) WHERE attached_asset_id IS NOT NULL;

-- Legacy circuit records: default and fail-safe capacity of each feeder circuit.
CREATE TABLE legacy_circuit (
    circuit_id               uuid PRIMARY KEY,
    depot_id                 uuid NOT NULL,
    parent_circuit_id        uuid,
    name                     text NOT NULL,
    default_capacity_watts   bigint NOT NULL,
    fail_safe_capacity_watts bigint NOT NULL,
    removed                  boolean NOT NULL DEFAULT false
);

-- Capability control points (configuration) and the latest status of each (forecast-source health).
CREATE TABLE capability_control_point (
    control_point_id uuid PRIMARY KEY,
    microgrid_id     uuid NOT NULL,
    node_id          uuid,
    capability_type  text NOT NULL,
    state            text NOT NULL,
    active           boolean NOT NULL
);

CREATE TABLE capability_status_latest (
    control_point_id   uuid PRIMARY KEY,
    microgrid_id       uuid NOT NULL,
    operational_status text NOT NULL,
    observed_at        timestamptz NOT NULL,
    status_event_id    uuid NOT NULL
);

-- Owned state ---------------------------------------------------------------------------------------

-- Every envelope the write port received, accepted or REJECTED (never silently dropped).
-- Type columns are text: a submission naming an unknown type is stored as REJECTED with what it said.
CREATE TABLE operating_envelope (
    envelope_id             uuid PRIMARY KEY,
    microgrid_id            uuid NOT NULL,
    node_id                 uuid NOT NULL,
    origin_control_point_id uuid,
    envelope_type           text NOT NULL,
    constraint_type         text NOT NULL,
    effective_from          timestamptz NOT NULL,
    effective_to            timestamptz NOT NULL,
    source_ref              text NOT NULL,
    status                  text NOT NULL,
    received_at             timestamptz NOT NULL,
    rejection_reason        text,
    violated_rule           text,
    rejection_details       jsonb,
    -- Digest of the submitted content: a replay of the same source_ref must carry the same content.
    submission_digest       text NOT NULL,
    submitted_by            text NOT NULL,
    -- NFR-010: ingest is idempotent by source reference.
    UNIQUE (microgrid_id, source_ref)
);
CREATE INDEX operating_envelope_node ON operating_envelope (microgrid_id, node_id, status);

CREATE TABLE operating_envelope_block (
    envelope_id     uuid NOT NULL REFERENCES operating_envelope (envelope_id) ON DELETE CASCADE,
    seq             integer NOT NULL,
    block_from      timestamptz NOT NULL,
    block_to        timestamptz NOT NULL,
    min_limit_watts bigint,
    max_limit_watts bigint,
    target_watts    bigint,
    PRIMARY KEY (envelope_id, seq)
);

-- Envelope lifecycle history (D-025: separate from capability status history).
CREATE TABLE envelope_lifecycle_history (
    history_id      bigserial PRIMARY KEY,
    envelope_id     uuid NOT NULL,
    microgrid_id    uuid NOT NULL,
    node_id         uuid NOT NULL,
    transition      text NOT NULL,  -- RECEIVED, REJECTED, BLOCK_BOUNDARY, EXPIRY, WITHDRAWAL, HEALTH_CHANGE
    previous_status text,
    status          text NOT NULL,
    evaluated_at    timestamptz NOT NULL,
    timer_id        bigint,
    detail          jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX envelope_lifecycle_history_envelope ON envelope_lifecycle_history (envelope_id, history_id);

-- Durable lifecycle timers: every block boundary, expiry and forecast health check is a row.
-- A timer is done exactly once: claimed FOR UPDATE SKIP LOCKED and marked in the transaction that
-- applies its state change and writes its outbox rows.
CREATE TABLE lifecycle_timer (
    timer_id     bigserial PRIMARY KEY,
    microgrid_id uuid NOT NULL,
    kind         text NOT NULL,  -- BLOCK_BOUNDARY, EXPIRY, HEALTH_CHECK
    fire_at      timestamptz NOT NULL,
    envelope_id  uuid,
    control_point_id uuid,      -- the forecast source of a HEALTH_CHECK
    done_at      timestamptz,
    outcome      text,           -- FIRED, CANCELLED, FAILED
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    CHECK ((envelope_id IS NULL) <> (control_point_id IS NULL))
);
CREATE INDEX lifecycle_timer_due ON lifecycle_timer (microgrid_id, fire_at, timer_id) WHERE done_at IS NULL;
CREATE UNIQUE INDEX lifecycle_timer_envelope ON lifecycle_timer (envelope_id, kind, fire_at)
    WHERE envelope_id IS NOT NULL;
CREATE UNIQUE INDEX lifecycle_timer_source ON lifecycle_timer (microgrid_id, control_point_id, fire_at)
    WHERE control_point_id IS NOT NULL;

-- Forecast sources: one per origin control point that sent a forecast (a forecast without an origin has
-- no source that could go stale).
CREATE TABLE forecast_source (
    microgrid_id              uuid NOT NULL,
    control_point_id          uuid NOT NULL,
    health                    text NOT NULL,
    last_forecast_received_at timestamptz NOT NULL,
    health_changed_at         timestamptz NOT NULL,
    PRIMARY KEY (microgrid_id, control_point_id)
);

-- The last effective capacity projected to each managed feeder circuit (FR-033).
CREATE TABLE effective_circuit_capacity (
    circuit_id               uuid PRIMARY KEY,
    microgrid_id             uuid NOT NULL,
    node_id                  uuid NOT NULL,
    effective_capacity_watts bigint NOT NULL,
    basis                    text NOT NULL,
    binding_envelope_id      uuid,
    forecast_source_health   text,
    projection_trigger       text NOT NULL,
    evaluated_at             timestamptz NOT NULL
);
CREATE INDEX effective_circuit_capacity_microgrid ON effective_circuit_capacity (microgrid_id);

-- Envelopes on a node that should project but cannot (D-022: fail deterministically, never guess).
CREATE TABLE projection_failure (
    microgrid_id uuid NOT NULL,
    node_id      uuid NOT NULL,
    reason_code  text NOT NULL,
    detail       text NOT NULL,
    evaluated_at timestamptz NOT NULL,
    PRIMARY KEY (microgrid_id, node_id)
);
