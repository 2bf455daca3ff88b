-- Record sets of released values (differencing across outputs; owner: record_sets.rs).
-- Each distinct set (and selection) is stored once per organisation and version; an output
-- lists the sets of the values it holds. Sets of rejected outputs are not compared.
CREATE TABLE record_sets (
    org_id          TEXT   NOT NULL,
    dataset_version TEXT   NOT NULL,        -- dataset_id@version
    set_hash        TEXT   NOT NULL,        -- BLAKE3 of the bitmap, hex
    selection       TEXT   NOT NULL,        -- fingerprint of how the set was selected
    records         BIGINT NOT NULL,
    summary         BLOB   NOT NULL,        -- per-block cardinalities
    bitmap          BLOB   NOT NULL,        -- portable roaring bitmap of row ordinals
    PRIMARY KEY (org_id, dataset_version, set_hash, selection)
);

CREATE TABLE output_record_sets (
    output_id       TEXT   NOT NULL,
    org_id          TEXT   NOT NULL,
    dataset_version TEXT   NOT NULL,
    set_hash        TEXT   NOT NULL,
    selection       TEXT   NOT NULL,
    PRIMARY KEY (output_id, set_hash, selection)
);
CREATE INDEX output_record_sets_version ON output_record_sets (org_id, dataset_version);

-- Pairs of stored sets where the inner lies strictly inside the outer: the difference
-- of their values is a sum over the records between them, checked like a set.
CREATE TABLE record_set_nestings (
    org_id          TEXT   NOT NULL,
    dataset_version TEXT   NOT NULL,
    outer_hash      TEXT   NOT NULL,
    outer_selection TEXT   NOT NULL,
    inner_hash      TEXT   NOT NULL,
    inner_selection TEXT   NOT NULL,
    output_id       TEXT   NOT NULL,       -- the output whose storing found it
    PRIMARY KEY (org_id, dataset_version, outer_hash, outer_selection, inner_hash, inner_selection)
);
