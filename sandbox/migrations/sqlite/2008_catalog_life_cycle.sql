-- The catalog life cycle (GD21 Art.10-11; XT Art.12, 14); owner: lifecycle.rs, written
-- through store/catalog.rs. An entry is drafted by its provider, submitted, and published
-- only when the data authority approves it; it may be returned with a reason, edited and
-- submitted again. Entries registered before this migration were published at once, so
-- they stay `published` and reachable as before.
ALTER TABLE datasets ADD COLUMN status TEXT NOT NULL DEFAULT 'published';  -- draft | submitted | published | returned
ALTER TABLE datasets ADD COLUMN revision BIGINT NOT NULL DEFAULT 1;        -- the current catalog revision
CREATE INDEX datasets_status ON datasets (status);

-- One row per submission: the authority answers by `review_due`, counted in working
-- days; the submission and the decision are ledger entries (catalog_decision).
CREATE TABLE catalog_reviews (
    dataset_id     TEXT   NOT NULL REFERENCES datasets (id),
    round          BIGINT NOT NULL,           -- 1 for the first submission, then 2, ...
    revision       BIGINT NOT NULL,           -- the catalog revision submitted
    metadata_hash  TEXT   NOT NULL,           -- hex BLAKE3 of its canonical metadata
    provider_org   TEXT   NOT NULL,
    submitted_key  TEXT   NOT NULL,
    submitted_ms   BIGINT NOT NULL,
    review_due     TEXT   NOT NULL,           -- YYYY-MM-DD
    submission_seq BIGINT NOT NULL,
    decision       TEXT,                      -- approved | returned; NULL while pending
    reason         TEXT,                      -- why it was returned
    reviewer_org   TEXT,
    reviewer_key   TEXT,
    reviewed_ms    BIGINT,
    reviewed_late  BIGINT NOT NULL DEFAULT 0,
    decision_seq   BIGINT,
    PRIMARY KEY (dataset_id, round)
);
CREATE INDEX catalog_reviews_due ON catalog_reviews (review_due);

-- The history of an entry's metadata: revision 1 is the registration, each edit adds
-- one (its ledger entry is a catalog_revision). An edit that follows a legal change
-- names its date and is late after `update_due` (15 working days by default).
CREATE TABLE catalog_revisions (
    dataset_id        TEXT   NOT NULL REFERENCES datasets (id),
    revision          BIGINT NOT NULL,
    metadata_hash     TEXT   NOT NULL,        -- hex BLAKE3 of the canonical metadata
    metadata_json     TEXT   NOT NULL,        -- the metadata as of this revision
    provider_org      TEXT   NOT NULL,
    actor_key         TEXT   NOT NULL,
    created_ms        BIGINT NOT NULL,
    reason            TEXT   NOT NULL,
    legal_change_date TEXT,                   -- YYYY-MM-DD
    update_due        TEXT,                   -- YYYY-MM-DD
    late              BIGINT NOT NULL DEFAULT 0,
    revision_seq      BIGINT,                 -- NULL for the registration
    PRIMARY KEY (dataset_id, revision)
);
CREATE INDEX catalog_revisions_late ON catalog_revisions (late);
