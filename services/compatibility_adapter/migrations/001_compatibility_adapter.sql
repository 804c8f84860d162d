-- The compatibility adapter's own schema: read models built from events, and the translation audit.
-- Dropping this schema (and the service) removes the adapter without touching Microgrid state.

-- Alias read model: nodes with an attached CIRCUIT asset, replaced whole from each microgrid.topology_updated.
CREATE TABLE microgrid_topology (
    microgrid_id uuid PRIMARY KEY,
    depot_id     uuid        NOT NULL,
    version      integer     NOT NULL,
    updated_at   timestamptz NOT NULL
);

CREATE TABLE circuit_alias (
    microgrid_id uuid    NOT NULL REFERENCES microgrid_topology (microgrid_id) ON DELETE CASCADE,
    node_id      uuid    NOT NULL,
    circuit_id   uuid    NOT NULL,
    node_type    text    NOT NULL,
    managed      boolean NOT NULL,
    PRIMARY KEY (microgrid_id, node_id)
);
CREATE INDEX circuit_alias_by_circuit ON circuit_alias (circuit_id);

-- Legacy circuit registry records (legacy_circuit.circuit_updated): default/fail-safe capacity, depot, parent.
CREATE TABLE legacy_circuit (
    circuit_id               uuid PRIMARY KEY,
    depot_id                 uuid        NOT NULL,
    parent_circuit_id        uuid,
    name                     text        NOT NULL,
    default_capacity_watts   bigint      NOT NULL,
    fail_safe_capacity_watts bigint      NOT NULL,
    removed                  boolean     NOT NULL,
    updated_at               timestamptz NOT NULL
);

-- Every translation, for audit (FR-016) and counts (NFR-005).
CREATE TABLE translation_audit (
    audit_id       bigserial PRIMARY KEY,
    legacy_ref     text        NOT NULL,  -- legacy event id, HTTP request key, schedule occurrence, source_ref
    path           text        NOT NULL,  -- contracts.enums.AliasPath
    circuit_id     uuid,                  -- null for a microgrid-keyed periodic job passed through
    result         text        NOT NULL,  -- APPLIED | FAILED | PASSED_THROUGH
    reason_code    text,
    microgrid_id   uuid,
    node_id        uuid,
    request_key    text,                  -- the microgrid.rebalance_requested key it produced, if any
    correlation_id text        NOT NULL,
    details        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    recorded_at    timestamptz NOT NULL
);
-- One translation per legacy ref: a replay translates nothing twice. A refused HTTP call is recorded per
-- attempt instead (the caller may retry once the topology knows the circuit).
CREATE UNIQUE INDEX translation_audit_once ON translation_audit (path, legacy_ref)
    WHERE result <> 'FAILED' OR path NOT IN ('LEGACY_HTTP', 'TOU_LIMITS');
CREATE INDEX translation_audit_by_request_key ON translation_audit (request_key) WHERE request_key IS NOT NULL;

-- Results of the cycles the adapter requested (microgrid.cycle_completed), for the HTTP alias to answer with.
CREATE TABLE cycle_result (
    request_key    text PRIMARY KEY,
    correlation_id text        NOT NULL,
    cycle_id       uuid        NOT NULL,
    microgrid_id   uuid        NOT NULL,
    result         jsonb       NOT NULL,
    ended_at       timestamptz NOT NULL
);

-- Circuit-facing effective capacity (compatibility.effective_circuit_capacity_changed / _reconciled).
CREATE TABLE circuit_capacity (
    circuit_id               uuid PRIMARY KEY,
    microgrid_id             uuid        NOT NULL,
    node_id                  uuid        NOT NULL,
    effective_capacity_watts bigint      NOT NULL,
    projection_trigger       text        NOT NULL,
    basis                    text        NOT NULL,
    binding_envelope_id      uuid,
    evaluated_at             timestamptz NOT NULL,
    source_event_id          uuid        NOT NULL
);

-- TOU_LIMIT envelopes as the envelope service reports them (received / lifecycle evaluated).
CREATE TABLE tou_envelope (
    envelope_id  uuid PRIMARY KEY,
    microgrid_id uuid        NOT NULL,
    node_id      uuid        NOT NULL,
    source_ref   text        NOT NULL,
    status       text        NOT NULL,
    record       jsonb       NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX tou_envelope_by_node ON tou_envelope (microgrid_id, node_id);

-- The schedule the adapter last submitted per circuit (to replace it, and to make a replay a no-op).
CREATE TABLE tou_submission (
    circuit_id   uuid PRIMARY KEY,
    microgrid_id uuid        NOT NULL,
    node_id      uuid        NOT NULL,
    revision     integer     NOT NULL,
    source_ref   text,                   -- null once cleared
    periods      jsonb       NOT NULL,
    submitted_at timestamptz NOT NULL
);
