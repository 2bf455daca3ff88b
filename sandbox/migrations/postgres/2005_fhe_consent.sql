-- Auditable consent for private lookups (GD21 Art.41).
--
-- (PostgreSQL copy of the SQLite file; same columns.)
--
-- A subject organisation (the enterprise a bank looks up) registers Ed25519 consent
-- keys; a new key supersedes the previous one from its registration on, and every key
-- is kept so that a query is checked under the key valid when it was made. Each FHE
-- query on conditionally open data carries a commitment to the subject's signed
-- authorisation (never the authorisation). A supervisor asks the bank to open it; the
-- bank's answer (verified, invalid with the failed check, or refused) is kept with the
-- opening as sent, and both acts are fhe_query ledger entries.
ALTER TABLE fhe_queries ADD COLUMN consent_commitment TEXT;  -- 64 hex digits
-- A commitment is used by one query only (a repeated nonce would link queries).
CREATE UNIQUE INDEX fhe_queries_consent ON fhe_queries (consent_commitment);

CREATE TABLE consent_keys (
    id            TEXT   PRIMARY KEY,
    org_id        TEXT   NOT NULL,
    public_key    TEXT   NOT NULL,     -- Ed25519, 64 hex digits
    registered_ms BIGINT NOT NULL,     -- valid from (inclusive)
    superseded_ms BIGINT,              -- valid until (exclusive); NULL while current
    ledger_seq    BIGINT NOT NULL
);
CREATE INDEX consent_keys_org ON consent_keys (org_id, registered_ms);
CREATE INDEX consent_keys_public ON consent_keys (public_key);

CREATE TABLE fhe_consent_requests (
    id              TEXT   PRIMARY KEY,
    query_id        TEXT   NOT NULL REFERENCES fhe_queries (id),
    bank_org        TEXT   NOT NULL,
    requester_org   TEXT   NOT NULL,
    requester_key   TEXT   NOT NULL,
    reason          TEXT   NOT NULL,
    status          TEXT   NOT NULL,   -- open, verified, invalid, refused
    requested_ms    BIGINT NOT NULL,
    answer_deadline TEXT   NOT NULL,   -- YYYY-MM-DD, working days from the request
    request_seq     BIGINT NOT NULL,
    answered_ms     BIGINT,
    answered_late   BIGINT NOT NULL DEFAULT 0,
    failed_check    TEXT,
    refusal         TEXT,
    subject_org     TEXT,
    subject_key     TEXT,
    opening_json    TEXT,              -- authorisation, signature and nonce as sent
    answer_seq      BIGINT
);
CREATE INDEX fhe_consent_requests_query ON fhe_consent_requests (query_id, requested_ms);
-- At most one open request per query.
CREATE UNIQUE INDEX fhe_consent_requests_open ON fhe_consent_requests (query_id) WHERE status = 'open';
