-- The ledger: entries, the Merkle tree's complete subtrees, signed checkpoints.
-- Rows are never updated or deleted; the triggers below make the database refuse it.

CREATE TABLE ledger_entries (
    seq          BIGINT PRIMARY KEY,      -- contiguous from 0
    timestamp_ms BIGINT NOT NULL,
    kind         TEXT   NOT NULL,
    actor_org    TEXT   NOT NULL,
    actor_key    TEXT   NOT NULL,
    payload      TEXT   NOT NULL,         -- RFC 8785 canonical JSON: the hashed bytes
    payload_hash BYTEA  NOT NULL,
    prev_hash    BYTEA  NOT NULL,
    entry_hash   BYTEA  NOT NULL
);
CREATE INDEX ledger_entries_kind ON ledger_entries (kind, seq);
CREATE INDEX ledger_entries_actor ON ledger_entries (actor_org, seq);

-- Organisations an entry concerns besides its actor (read access, not hashed).
CREATE TABLE ledger_parties (
    org TEXT   NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (org, seq)
);

-- Every complete, aligned subtree: leaves [idx << level, (idx + 1) << level).
CREATE TABLE ledger_nodes (
    level BIGINT NOT NULL,
    idx   BIGINT NOT NULL,
    hash  BYTEA  NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TABLE ledger_checkpoints (
    size         BIGINT PRIMARY KEY,
    timestamp_ms BIGINT NOT NULL,
    root         BYTEA  NOT NULL,
    note         TEXT   NOT NULL          -- C2SP signed note, as served
);

-- The append lock and a cache of the tree head. Writers lock this row first (a row
-- lock held to commit), which serialises appends across processes. The verifier
-- never trusts it.
CREATE TABLE ledger_head (
    id        BIGINT PRIMARY KEY CHECK (id = 1),
    size      BIGINT NOT NULL,
    head_hash BYTEA  NOT NULL,
    frontier  BYTEA  NOT NULL             -- hashes of complete_subtrees(0..size), concatenated
);
INSERT INTO ledger_head (id, size, head_hash, frontier)
VALUES (1, 0, decode(repeat('00', 32), 'hex'), ''::bytea);

CREATE FUNCTION pdx_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger is append-only';
END
$$;

CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION pdx_ledger_append_only();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION pdx_ledger_append_only();
CREATE TRIGGER ledger_parties_append_only BEFORE UPDATE OR DELETE ON ledger_parties
    FOR EACH ROW EXECUTE FUNCTION pdx_ledger_append_only();
CREATE TRIGGER ledger_nodes_append_only BEFORE UPDATE OR DELETE ON ledger_nodes
    FOR EACH ROW EXECUTE FUNCTION pdx_ledger_append_only();
CREATE TRIGGER ledger_nodes_no_truncate BEFORE TRUNCATE ON ledger_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION pdx_ledger_append_only();
CREATE TRIGGER ledger_checkpoints_append_only BEFORE UPDATE OR DELETE ON ledger_checkpoints
    FOR EACH ROW EXECUTE FUNCTION pdx_ledger_append_only();
CREATE TRIGGER ledger_checkpoints_no_truncate BEFORE TRUNCATE ON ledger_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION pdx_ledger_append_only();
CREATE TRIGGER ledger_head_no_delete BEFORE DELETE ON ledger_head
    FOR EACH ROW EXECUTE FUNCTION pdx_ledger_append_only();
