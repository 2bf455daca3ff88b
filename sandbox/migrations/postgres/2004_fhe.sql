-- Private lookups: FHE query templates, uploaded server keys and encrypted queries.
--
-- (PostgreSQL copy of the SQLite file; same columns.)
--
-- A template is vetted once by the dataset's provider, because its answers are
-- encrypted and cannot be vetted one by one. Server keys are public evaluation
-- material (never client keys), stored as files under the zones root. A query row
-- keeps hashes of its ciphertexts; the answer ciphertexts are files, and the key the
-- client asked about is never known to the platform.
CREATE TABLE fhe_templates (
    id            TEXT   PRIMARY KEY,
    dataset_id    TEXT   NOT NULL REFERENCES datasets (id),
    provider_org  TEXT   NOT NULL,
    proposer_org  TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    purpose       TEXT   NOT NULL,
    spec_json     TEXT   NOT NULL,     -- canonical JSON of the template
    template_hash TEXT   NOT NULL,     -- BLAKE3("pdx fhe template v1" || 0x00 || spec_json)
    status        TEXT   NOT NULL,     -- pending, approved, refused, retired
    reason        TEXT,
    created_ms    BIGINT NOT NULL,
    decided_ms    BIGINT,
    decision_seq  BIGINT
);
CREATE INDEX fhe_templates_dataset ON fhe_templates (dataset_id);

CREATE TABLE fhe_server_keys (
    id          TEXT   PRIMARY KEY,
    org_id      TEXT   NOT NULL,
    key_hash    TEXT   NOT NULL,       -- BLAKE3("pdx fhe server key v1" || 0x00 || bytes)
    bytes       BIGINT NOT NULL,
    parameters  TEXT   NOT NULL,
    file_path   TEXT   NOT NULL,       -- relative to the zones root
    created_ms  BIGINT NOT NULL,
    UNIQUE (org_id, key_hash)
);

CREATE TABLE fhe_queries (
    id            TEXT   PRIMARY KEY,
    job_id        TEXT   NOT NULL,
    org_id        TEXT   NOT NULL,
    template_id   TEXT   NOT NULL REFERENCES fhe_templates (id),
    grant_id      TEXT,
    server_key_id TEXT   NOT NULL,
    dataset_id    TEXT   NOT NULL,
    version       BIGINT NOT NULL,
    input_hash    TEXT   NOT NULL,     -- BLAKE3("pdx fhe ciphertext v1" || 0x00 || bytes)
    bucket_bits   BIGINT,
    bucket        BIGINT,
    rows_scanned  BIGINT NOT NULL,
    status        TEXT   NOT NULL,     -- queued, running, done, failed
    value_hash    TEXT,
    found_hash    TEXT,
    ledger_seq    BIGINT,
    created_ms    BIGINT NOT NULL,
    finished_ms   BIGINT
);
CREATE INDEX fhe_queries_org ON fhe_queries (org_id, status);
