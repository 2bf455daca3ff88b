-- Destruction of dataset versions and whole datasets (GD21 Art.40; XT Art.34(4));
-- owner: destruction.rs, written through store/destruction.rs.
--
-- One row per destroyed version: the tombstone that the catalog keeps once the files are
-- gone (the version row in dataset_versions stays, with its hashes and certificate). A
-- whole-dataset destruction adds one row per version it destroyed and a row with
-- version 0, which retires the catalog entry itself. The primary key makes destroying
-- twice a conflict, also under a race. `files_json` lists the files removed (zone,
-- path relative to the zones root, BLAKE3, bytes, whether deleted), so that a file a
-- failed deletion left behind is removed again on the next attempt.
CREATE TABLE dataset_destructions (
    dataset_id   TEXT   NOT NULL REFERENCES datasets (id),
    version      BIGINT NOT NULL,            -- the version destroyed; 0: the catalog entry
    scope        TEXT   NOT NULL,            -- version | dataset: what the provider destroyed
    provider_org TEXT   NOT NULL,
    reason       TEXT   NOT NULL,
    legal_basis  TEXT,
    actor_org    TEXT   NOT NULL,
    actor_key    TEXT   NOT NULL,
    destroyed_ms BIGINT NOT NULL,
    files_json   TEXT   NOT NULL DEFAULT '[]',
    ledger_seq   BIGINT NOT NULL,            -- seq of its destruction entry
    PRIMARY KEY (dataset_id, version)
);
CREATE INDEX dataset_destructions_provider ON dataset_destructions (provider_org);
