-- Organisations and their API keys. Keys are stored only as BLAKE3 hashes.
CREATE TABLE orgs (
    id         TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    region     TEXT    NOT NULL,          -- administrative region (public-finance account)
    suspended  BIGINT  NOT NULL DEFAULT 0,   -- 0 or 1 (sqlx Any has no SQLite BOOLEAN)
    created_ms BIGINT  NOT NULL
);

CREATE TABLE api_keys (
    key_id     TEXT   PRIMARY KEY,         -- public id, shown in logs and on the ledger
    org_id     TEXT   NOT NULL REFERENCES orgs (id),
    role       TEXT   NOT NULL,
    key_hash   BLOB   NOT NULL,            -- BLAKE3 of the secret part
    label      TEXT   NOT NULL,
    created_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);
CREATE INDEX api_keys_org ON api_keys (org_id);
