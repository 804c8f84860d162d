-- The topology service's write model (Microgrid aggregate) and its read models of other contexts.

-- One depot = one microgrid, forever (ARCHITECTURE.md section 9): depot_id is unique.
CREATE TABLE microgrid (
    microgrid_id uuid PRIMARY KEY,
    depot_id     uuid NOT NULL UNIQUE,
    version      integer NOT NULL DEFAULT 0 CHECK (version >= 0)
);

CREATE TABLE microgrid_node (
    node_id             uuid PRIMARY KEY,  -- global: a node belongs to exactly one microgrid
    microgrid_id        uuid NOT NULL REFERENCES microgrid (microgrid_id),
    parent_node_id      uuid,
    name                text NOT NULL,
    node_type           text NOT NULL,
    attached_asset_type text,
    attached_asset_id   uuid,
    status              text NOT NULL,
    display_order       integer NOT NULL DEFAULT 0,
    managed             boolean NOT NULL DEFAULT false
);
CREATE INDEX microgrid_node_by_microgrid ON microgrid_node (microgrid_id);
-- A source asset is referenced by at most one node of a microgrid (the domain checks it first).
CREATE UNIQUE INDEX microgrid_node_asset_once
    ON microgrid_node (microgrid_id, attached_asset_type, attached_asset_id)
    WHERE attached_asset_id IS NOT NULL;

CREATE TABLE fallback_rule (
    node_id               uuid PRIMARY KEY,
    microgrid_id          uuid NOT NULL REFERENCES microgrid (microgrid_id),
    fallback_demand_watts bigint,
    assume_requested      boolean NOT NULL
);
CREATE INDEX fallback_rule_by_microgrid ON fallback_rule (microgrid_id);

-- Limits outlive their node (history): no foreign key to microgrid_node.
CREATE TABLE node_limit (
    node_limit_id   uuid PRIMARY KEY,
    microgrid_id    uuid NOT NULL REFERENCES microgrid (microgrid_id),
    node_id         uuid NOT NULL,
    constraint_type text NOT NULL,
    limit_watts     bigint NOT NULL CHECK (limit_watts >= 0),
    source_type     text NOT NULL,
    status          text NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX node_limit_by_microgrid ON node_limit (microgrid_id, node_id);
CREATE UNIQUE INDEX node_limit_one_active
    ON node_limit (node_id, constraint_type) WHERE status = 'ACTIVE';

CREATE TABLE capability_control_point (
    control_point_id     uuid PRIMARY KEY,
    microgrid_id         uuid NOT NULL REFERENCES microgrid (microgrid_id),
    node_id              uuid,
    capability_type      text NOT NULL,
    state                text NOT NULL,
    control_source       text NOT NULL,
    description          text NOT NULL DEFAULT '',
    local_config         jsonb,
    external_config_type text,
    external_config_ref  text,
    schedule_ref         text,
    active               boolean NOT NULL DEFAULT true,
    CONSTRAINT schedule_ref_only_local CHECK (schedule_ref IS NULL OR control_source = 'LOCAL')
);
CREATE INDEX control_point_by_microgrid ON capability_control_point (microgrid_id);
-- At most one active control point per microgrid_id + node_id + capability_type (node_id null = whole microgrid).
CREATE UNIQUE INDEX control_point_one_active
    ON capability_control_point (microgrid_id, COALESCE(node_id, '00000000-0000-0000-0000-000000000000'::uuid),
                                 capability_type)
    WHERE active;

-- Append-only history (D-017, FR-024); `seq` is the arrival order used to break ties.
CREATE TABLE capability_status_event (
    seq                bigserial UNIQUE,
    status_event_id    uuid PRIMARY KEY,
    microgrid_id       uuid NOT NULL REFERENCES microgrid (microgrid_id),
    control_point_id   uuid NOT NULL REFERENCES capability_control_point (control_point_id),
    node_id            uuid,
    capability_type    text NOT NULL,
    operational_status text NOT NULL,
    reported_by        text NOT NULL,
    observed_at        timestamptz NOT NULL,
    ingested_at        timestamptz NOT NULL,
    source_event_ref   text,
    status_detail      jsonb
);
CREATE INDEX status_event_history ON capability_status_event (control_point_id, observed_at, seq);
-- Idempotent ingest (NFR-009): a source_event_ref is accepted once per microgrid.
CREATE UNIQUE INDEX status_event_source_ref
    ON capability_status_event (microgrid_id, source_event_ref) WHERE source_event_ref IS NOT NULL;

CREATE FUNCTION capability_status_event_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'capability_status_event is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;
CREATE TRIGGER capability_status_event_no_update_delete
    BEFORE UPDATE OR DELETE ON capability_status_event
    FOR EACH ROW EXECUTE FUNCTION capability_status_event_is_append_only();
CREATE TRIGGER capability_status_event_no_truncate
    BEFORE TRUNCATE ON capability_status_event
    FOR EACH STATEMENT EXECUTE FUNCTION capability_status_event_is_append_only();

-- Latest status per control point (FR-025); derived, rebuildable from capability_status_event.
CREATE TABLE capability_status_projection (
    control_point_id          uuid PRIMARY KEY,
    microgrid_id              uuid NOT NULL,
    node_id                   uuid,
    capability_type           text NOT NULL,
    latest_operational_status text NOT NULL,
    reported_by               text NOT NULL,
    last_observed_at          timestamptz NOT NULL,
    last_ingested_at          timestamptz NOT NULL,
    status_detail             jsonb,
    status_event_id           uuid NOT NULL,
    seq                       bigint NOT NULL
);
CREATE INDEX status_projection_by_microgrid ON capability_status_projection (microgrid_id);

-- Read models of other contexts, fed by their events only.

-- legacy_circuit.circuit_updated: the depot's circuits, to know its top-level feeders for resync.
CREATE TABLE legacy_circuit (
    circuit_id                uuid PRIMARY KEY,
    depot_id                  uuid NOT NULL,
    parent_circuit_id         uuid,
    name                      text NOT NULL,
    default_capacity_watts    bigint NOT NULL,
    fail_safe_capacity_watts  bigint NOT NULL,
    removed                   boolean NOT NULL,
    as_of                     timestamptz NOT NULL
);
CREATE INDEX legacy_circuit_by_depot ON legacy_circuit (depot_id);

-- Operating envelopes (received / lifecycle evaluated): latest known record and status.
CREATE TABLE envelope_view (
    envelope_id  uuid PRIMARY KEY,
    microgrid_id uuid NOT NULL,
    node_id      uuid NOT NULL,
    status       text NOT NULL,
    record       jsonb NOT NULL,
    as_of        timestamptz NOT NULL
);
CREATE INDEX envelope_view_by_microgrid ON envelope_view (microgrid_id, status);

-- Effective feeder-circuit capacity (changed / reconciled): latest value per circuit.
CREATE TABLE effective_circuit_capacity_view (
    microgrid_id uuid NOT NULL,
    circuit_id   uuid NOT NULL,
    node_id      uuid NOT NULL,
    record       jsonb NOT NULL,
    as_of        timestamptz NOT NULL,
    PRIMARY KEY (microgrid_id, circuit_id)
);
