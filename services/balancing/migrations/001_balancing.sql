-- Balancing's own schema: read models kept from upstream events, cycles with their inputs, breaches.
-- Read models store the whole record (as its contract JSON): the record is the unit the events carry.

-- Topology at the latest version seen (topology_updated carries the whole tree).
CREATE TABLE IF NOT EXISTS microgrids (
    microgrid_id   uuid        PRIMARY KEY,
    depot_id       uuid        NOT NULL,
    version        integer     NOT NULL,
    nodes          jsonb       NOT NULL,
    fallback_rules jsonb       NOT NULL DEFAULT '[]'::jsonb,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS microgrids_by_depot ON microgrids (depot_id);

CREATE TABLE IF NOT EXISTS node_limits (
    node_limit_id uuid        PRIMARY KEY,
    microgrid_id  uuid        NOT NULL,
    record        jsonb       NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS node_limits_by_microgrid ON node_limits (microgrid_id);

CREATE TABLE IF NOT EXISTS control_points (
    control_point_id uuid  PRIMARY KEY,
    microgrid_id     uuid  NOT NULL,
    record           jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS control_points_by_microgrid ON control_points (microgrid_id);

-- Latest capability status per control point (the projection; history stays with topology).
CREATE TABLE IF NOT EXISTS capability_status (
    control_point_id uuid        PRIMARY KEY,
    microgrid_id     uuid        NOT NULL,
    record           jsonb       NOT NULL,
    observed_at      timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS capability_status_by_microgrid ON capability_status (microgrid_id);

CREATE TABLE IF NOT EXISTS envelopes (
    envelope_id  uuid  PRIMARY KEY,
    microgrid_id uuid  NOT NULL,
    status       text  NOT NULL,
    record       jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS envelopes_by_microgrid ON envelopes (microgrid_id);

-- Forecast-source health per origin control point, as envelope-lifecycle judges and announces it
-- (lifecycle_evaluated with forecast_source_health); a first forecast counts as HEALTHY.
CREATE TABLE IF NOT EXISTS forecast_sources (
    control_point_id uuid        PRIMARY KEY,
    microgrid_id     uuid        NOT NULL,
    health           text        NOT NULL,
    evaluated_at     timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS forecast_sources_by_microgrid ON forecast_sources (microgrid_id);

-- Legacy circuit registry records (default and fail-safe capacity of feeder circuits).
CREATE TABLE IF NOT EXISTS legacy_circuits (
    circuit_id uuid  PRIMARY KEY,
    depot_id   uuid  NOT NULL,
    record     jsonb NOT NULL
);

-- The last circuit-facing effective capacity per managed node: projected by envelope-lifecycle
-- (compatibility.effective_circuit_capacity_changed) or reconciled by our own rebalance guard.
CREATE TABLE IF NOT EXISTS circuit_capacities (
    microgrid_id   uuid        NOT NULL,
    node_id        uuid        NOT NULL,
    circuit_id     uuid        NOT NULL,
    capacity_watts bigint      NOT NULL,
    trigger        text        NOT NULL,
    evaluated_at   timestamptz NOT NULL,
    PRIMARY KEY (microgrid_id, node_id)
);

-- Latest telemetry per node: meter readings and connector demand.
CREATE TABLE IF NOT EXISTS telemetry_readings (
    node_id      uuid        PRIMARY KEY,
    microgrid_id uuid        NOT NULL,
    record       jsonb       NOT NULL,
    observed_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS telemetry_readings_by_microgrid ON telemetry_readings (microgrid_id);

CREATE TABLE IF NOT EXISTS connector_demands (
    node_id      uuid        PRIMARY KEY,
    microgrid_id uuid        NOT NULL,
    record       jsonb       NOT NULL,
    observed_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS connector_demands_by_microgrid ON connector_demands (microgrid_id);

-- Every cycle with its inputs (domain serialisation) and canonical output bytes, for explain/replay.
CREATE TABLE IF NOT EXISTS cycles (
    cycle_id         uuid        PRIMARY KEY,
    seq              bigint      GENERATED ALWAYS AS IDENTITY,  -- commit order per service: "latest"
    microgrid_id     uuid        NOT NULL,
    node_id          uuid,
    request_key      text        NOT NULL UNIQUE,  -- one cycle per rebalance request key
    request_event_id uuid        NOT NULL,
    topology_version integer     NOT NULL,
    outcome          text        NOT NULL,
    started_at       timestamptz NOT NULL,
    ended_at         timestamptz NOT NULL,
    result           jsonb       NOT NULL,  -- contracts.records.CycleResultRecord
    inputs           jsonb       NOT NULL,  -- libs.domain cycle inputs, as its own serialisation
    output           bytea       NOT NULL,  -- the domain's canonical output bytes
    inputs_digest    text        NOT NULL,
    output_digest    text        NOT NULL,
    missing_inputs   jsonb       NOT NULL DEFAULT '[]'::jsonb,  -- scopes with no telemetry and no fallback
    safe_action_taken text
);
CREATE INDEX IF NOT EXISTS cycles_latest ON cycles (microgrid_id, seq DESC);

CREATE TABLE IF NOT EXISTS breaches (
    breach_id    uuid        PRIMARY KEY,
    cycle_id     uuid        NOT NULL REFERENCES cycles (cycle_id),
    microgrid_id uuid        NOT NULL,
    record       jsonb       NOT NULL,
    detected_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS breaches_by_cycle ON breaches (cycle_id);

-- Rebalance requests recorded by the HTTP door: the key is claimed once, so a retry publishes nothing.
CREATE TABLE IF NOT EXISTS rebalance_requests (
    request_key  text        PRIMARY KEY,
    microgrid_id uuid        NOT NULL,
    node_id      uuid,
    event_id     uuid        NOT NULL,
    requested_at timestamptz NOT NULL
);

-- Requests naming a topology version not seen yet: they wait here (not in the consumer loop, which
-- would block the very topology event they wait for) until it arrives or their deadline passes.
CREATE TABLE IF NOT EXISTS pending_rebalances (
    event_id                  uuid        PRIMARY KEY,
    microgrid_id              uuid        NOT NULL,
    expected_topology_version integer     NOT NULL,
    message                   jsonb       NOT NULL,
    deadline                  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_rebalances_by_microgrid ON pending_rebalances (microgrid_id);
