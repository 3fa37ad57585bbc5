"""The audit schema, created by an idempotent migration (``streaming db migrate``).

``audit_log`` and ``audit_checkpoint`` are append-only: a trigger rejects UPDATE, DELETE
and TRUNCATE for everyone (superusers included, unless they disable the trigger), and
the writer role holds only INSERT and SELECT on them. ``chain_head`` is the sink's
mutable bookkeeping (its next offset); ``subject_key`` holds wrapped PII data keys, whose
deletion is crypto-shredding.
"""

from __future__ import annotations

SCHEMA_VERSION = 2

_DDL = """
SELECT pg_advisory_xact_lock(hashtext('tradesense.audit.migrate'));
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.audit_log (
    chain_id      text        NOT NULL,
    seq           bigint      NOT NULL CHECK (seq > 0),
    kafka_offset  bigint      NOT NULL,
    event_id      uuid        NOT NULL,
    event_type    text        NOT NULL,
    occurred_at   timestamptz,
    subject_id    text,
    key_id        text        NOT NULL,
    prev_hash     bytea       NOT NULL,
    hash          bytea       NOT NULL,
    payload       bytea       NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain_id, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS audit_log_event_id_key ON {s}.audit_log (event_id);
CREATE INDEX IF NOT EXISTS audit_log_recorded_at_idx ON {s}.audit_log (recorded_at);
CREATE TABLE IF NOT EXISTS {s}.chain_head (
    chain_id        text        PRIMARY KEY,
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    seq             bigint      NOT NULL,
    kafka_offset    bigint      NOT NULL,
    hash            bytea       NOT NULL,
    duplicates      bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {s}.audit_checkpoint (
    checkpoint_id bigint      PRIMARY KEY,
    created_at    timestamptz NOT NULL DEFAULT now(),
    body          bytea       NOT NULL,
    signature     bytea       NOT NULL,
    key_id        text        NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.subject_key (
    subject_id  text        PRIMARY KEY,
    kek_id      text        NOT NULL,
    wrapped_key bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {s}.verify_state (
    id            integer     PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    checkpoint_id bigint      NOT NULL,
    verified_at   timestamptz NOT NULL DEFAULT now()
);
-- version 2: the sink sets recorded_at (bound by the row MAC, never going back per
-- chain); verify_state is authenticated with the verifier's MAC key.
ALTER TABLE {s}.chain_head ADD COLUMN IF NOT EXISTS recorded_at timestamptz;
UPDATE {s}.chain_head h SET recorded_at = (
    SELECT max(l.recorded_at) FROM {s}.audit_log l WHERE l.chain_id = h.chain_id
) WHERE h.recorded_at IS NULL AND h.seq > 0;
ALTER TABLE {s}.verify_state ADD COLUMN IF NOT EXISTS key_id text;
ALTER TABLE {s}.verify_state ADD COLUMN IF NOT EXISTS mac bytea;
CREATE TABLE IF NOT EXISTS {s}.schema_version (
    version    integer     PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE FUNCTION {s}.reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit table %.% is append-only: % rejected',
        TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
DROP TRIGGER IF EXISTS append_only_rows ON {s}.audit_log;
CREATE TRIGGER append_only_rows BEFORE UPDATE OR DELETE ON {s}.audit_log
    FOR EACH ROW EXECUTE FUNCTION {s}.reject_change();
DROP TRIGGER IF EXISTS append_only_truncate ON {s}.audit_log;
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON {s}.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.reject_change();
DROP TRIGGER IF EXISTS append_only_rows ON {s}.audit_checkpoint;
CREATE TRIGGER append_only_rows BEFORE UPDATE OR DELETE ON {s}.audit_checkpoint
    FOR EACH ROW EXECUTE FUNCTION {s}.reject_change();
DROP TRIGGER IF EXISTS append_only_truncate ON {s}.audit_checkpoint;
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON {s}.audit_checkpoint
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.reject_change();
INSERT INTO {s}.schema_version (version) VALUES ({version}) ON CONFLICT DO NOTHING;
"""

_ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{r}') THEN
        CREATE ROLE {r} NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;
DO $$
BEGIN
    EXECUTE 'GRANT {r} TO ' || quote_ident(current_user);
EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation THEN NULL;
END
$$;
GRANT USAGE ON SCHEMA {s} TO {r};
REVOKE ALL ON {s}.audit_log, {s}.audit_checkpoint FROM {r};
GRANT SELECT, INSERT ON {s}.audit_log, {s}.audit_checkpoint TO {r};
GRANT SELECT, INSERT, UPDATE ON {s}.chain_head TO {r};
GRANT SELECT, INSERT ON {s}.subject_key TO {r};
GRANT SELECT ON {s}.verify_state, {s}.schema_version TO {r};
"""


def migration_sql(schema: str, writer_role: str | None) -> str:
    """The whole migration as one script (identifiers are validated by the settings)."""
    sql = _DDL.format(s=schema, version=SCHEMA_VERSION)
    if writer_role:
        sql += _ROLE.format(s=schema, r=writer_role)
    return sql


__all__ = ["SCHEMA_VERSION", "migration_sql"]
