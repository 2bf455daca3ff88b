-- Data sharing between government departments (GD18; GD21 Art.22-23); owner:
-- sharing.rs, written through store/sharing.rs.

-- A providing department's request to share another provider's dataset for its own
-- duty, and its outcome. Under an unconditional share type it is granted at once, under
-- a not-shared one refused at once (naming the dataset's legal basis); under a
-- conditional one the owning department approves or refuses it within 10 working days
-- (GD18 Art.19). Every request and decision is a department_share ledger entry.
CREATE TABLE share_requests (
    id                  TEXT   PRIMARY KEY,
    dataset_id          TEXT   NOT NULL REFERENCES datasets (id),
    owner_org           TEXT   NOT NULL,   -- the department providing the dataset
    requester_org       TEXT   NOT NULL,   -- the department asking for it
    requester_key       TEXT   NOT NULL,
    share_type          TEXT   NOT NULL,   -- unconditional | conditional | not_shared, when asked
    purpose             TEXT   NOT NULL,   -- the requester's duty and purpose
    duty_legal_basis    TEXT   NOT NULL,   -- the legal basis of that duty
    until_day           TEXT   NOT NULL,   -- YYYY-MM-DD, the last day of the term (UTC)
    ends_ms             BIGINT NOT NULL,   -- 00:00 UTC of the day after until_day
    requested_ms        BIGINT NOT NULL,
    request_seq         BIGINT NOT NULL,   -- seq of its `requested` entry
    status              TEXT   NOT NULL,   -- pending | granted | refused | revoked
    answer_deadline     TEXT,              -- YYYY-MM-DD, conditional shares only
    automatic           BIGINT NOT NULL DEFAULT 0,  -- 1: decided under the share type
    decided_ms          BIGINT,
    decider_org         TEXT,              -- the owner's organisation, for its decisions
    decider_key         TEXT,
    decision_reason     TEXT,              -- required for a refusal
    dataset_legal_basis TEXT,              -- a not-shared refusal's recorded legal basis
    decision_late       BIGINT NOT NULL DEFAULT 0,
    decision_seq        BIGINT,
    revoked_ms          BIGINT,
    revoker_key         TEXT,
    revoke_reason       TEXT,
    revoke_seq          BIGINT
);
-- One pending request per dataset and requesting department, also under a race.
CREATE UNIQUE INDEX share_requests_one_pending
    ON share_requests (dataset_id, requester_org) WHERE status = 'pending';
CREATE INDEX share_requests_requester ON share_requests (requester_org);
CREATE INDEX share_requests_owner ON share_requests (owner_org);

-- Every download of a de-identified version under a share, one row per
-- department_share `access` entry (GD18 Art.28).
CREATE TABLE share_accesses (
    access_seq    BIGINT PRIMARY KEY,      -- seq of the `access` entry
    share_id      TEXT   NOT NULL REFERENCES share_requests (id),
    dataset_id    TEXT   NOT NULL,
    version       BIGINT NOT NULL,
    bytes         BIGINT NOT NULL,
    content_hash  TEXT   NOT NULL,         -- hex BLAKE3 of the bytes served
    accessor_key  TEXT   NOT NULL,
    accessed_ms   BIGINT NOT NULL
);
CREATE INDEX share_accesses_share ON share_accesses (share_id);
