-- The ledger: entries, the Merkle tree's complete subtrees, signed checkpoints.
-- Rows are never updated or deleted; the triggers below make the database refuse it.

CREATE TABLE ledger_entries (
    seq          INTEGER PRIMARY KEY,      -- contiguous from 0 (rowid alias: cheap appends)
    timestamp_ms BIGINT  NOT NULL,
    kind         TEXT    NOT NULL,
    actor_org    TEXT    NOT NULL,
    actor_key    TEXT    NOT NULL,
    payload      TEXT    NOT NULL,         -- RFC 8785 canonical JSON: the hashed bytes
    payload_hash BLOB    NOT NULL,
    prev_hash    BLOB    NOT NULL,
    entry_hash   BLOB    NOT NULL
);
CREATE INDEX ledger_entries_kind ON ledger_entries (kind, seq);
CREATE INDEX ledger_entries_actor ON ledger_entries (actor_org, seq);

-- Organisations an entry concerns besides its actor (read access, not hashed).
CREATE TABLE ledger_parties (
    org TEXT   NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (org, seq)
) WITHOUT ROWID;

-- Every complete, aligned subtree: leaves [idx << level, (idx + 1) << level).
CREATE TABLE ledger_nodes (
    level INTEGER NOT NULL,
    idx   BIGINT  NOT NULL,
    hash  BLOB    NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

CREATE TABLE ledger_checkpoints (
    size         INTEGER PRIMARY KEY,
    timestamp_ms BIGINT  NOT NULL,
    root         BLOB    NOT NULL,
    note         TEXT    NOT NULL         -- C2SP signed note, as served
);

-- The append lock and a cache of the tree head. Writers lock this row first, which
-- serialises appends across processes. The verifier never trusts it.
CREATE TABLE ledger_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    size      BIGINT NOT NULL,
    head_hash BLOB   NOT NULL,
    frontier  BLOB   NOT NULL             -- hashes of complete_subtrees(0..size), concatenated
);
INSERT INTO ledger_head (id, size, head_hash, frontier)
VALUES (1, 0, zeroblob(32), X'');

CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TRIGGER ledger_parties_no_update BEFORE UPDATE ON ledger_parties
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TRIGGER ledger_parties_no_delete BEFORE DELETE ON ledger_parties
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TRIGGER ledger_nodes_no_update BEFORE UPDATE ON ledger_nodes
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TRIGGER ledger_nodes_no_delete BEFORE DELETE ON ledger_nodes
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TRIGGER ledger_checkpoints_no_update BEFORE UPDATE ON ledger_checkpoints
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TRIGGER ledger_checkpoints_no_delete BEFORE DELETE ON ledger_checkpoints
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TRIGGER ledger_head_no_delete BEFORE DELETE ON ledger_head
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
