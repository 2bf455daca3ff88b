-- Several pdx servers on one database (issue #23). Owners: cluster.rs (`instances`,
-- `leader_leases`, `leader_terms`) and jobs.rs (`jobs.instance_id`).
-- (PostgreSQL copy of the SQLite file; same tables.)

-- The instance (server name) that claimed a job; NULL while queued and for jobs from
-- before this migration.
ALTER TABLE jobs ADD COLUMN instance_id TEXT;
-- Claiming reads unfinished jobs oldest first.
CREATE INDEX jobs_unfinished ON jobs (status, created_ms);

-- One row per instance name: the process now using it (`nonce`, fresh at each start),
-- its heartbeat and its own lease. An instance is live while `heartbeat_ms + lease_ms`
-- is not past (each server's lease is its own setting).
CREATE TABLE instances (
    name         TEXT   PRIMARY KEY,
    nonce        TEXT   NOT NULL,
    addr         TEXT   NOT NULL,
    started_ms   BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL,
    lease_ms     BIGINT NOT NULL
);

-- One lease per leader role (`ledger`: the periodic checkpoints and timers): who holds
-- it, until when, and the term (incremented whenever the holder changes).
CREATE TABLE leader_leases (
    role     TEXT   PRIMARY KEY,
    holder   TEXT   NOT NULL,
    term     BIGINT NOT NULL,
    until_ms BIGINT NOT NULL
);

-- Every term of every role, kept: who led from when (audit, and the multi-server test).
CREATE TABLE leader_terms (
    role     TEXT   NOT NULL,
    term     BIGINT NOT NULL,
    holder   TEXT   NOT NULL,
    since_ms BIGINT NOT NULL,
    PRIMARY KEY (role, term)
);
