-- Supervision: the public history of suspensions, and witness cosignatures.
-- (PostgreSQL copy of the SQLite file; same columns.)
--
-- `orgs.suspended` is the current state (read on every request); this table is the
-- history, one row per `Suspension` ledger entry, which the public list is read from.
CREATE TABLE suspensions (
    seq          BIGINT PRIMARY KEY,       -- the ledger seq of the Suspension entry
    org_id       TEXT   NOT NULL REFERENCES orgs (id),
    action       TEXT   NOT NULL,          -- suspended | reinstated
    reason       TEXT   NOT NULL,
    actor_org    TEXT   NOT NULL,
    actor_key    TEXT   NOT NULL,
    created_ms   BIGINT NOT NULL,
    runs_cancelled    BIGINT NOT NULL DEFAULT 0,
    listings_delisted BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX suspensions_org ON suspensions (org_id, seq);

-- C2SP tlog-cosignature/v1 lines that witnesses sent for a checkpoint this server
-- signed; served appended to that checkpoint. One line per witness key and size.
CREATE TABLE ledger_cosignatures (
    size        BIGINT NOT NULL,
    witness_key TEXT   NOT NULL,           -- the witness's verifier key (vkey)
    line        TEXT   NOT NULL,           -- "— <name> <base64>\n"
    cosigned_s  BIGINT NOT NULL,           -- the cosignature's own timestamp, seconds
    received_ms BIGINT NOT NULL,
    PRIMARY KEY (size, witness_key)
);
