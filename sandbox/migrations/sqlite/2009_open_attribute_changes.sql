-- Open-attribute changes (SD22 Art.8, 10, 20) and emergency relaxations (XT Art.23(7));
-- owner: open_attributes.rs, written through store/open_attributes.rs (and the grants
-- they suspend through store/grants.rs).

-- A provider's request to change its published dataset's open attribute, and the data
-- authority's decision. An approval changes `datasets.open_attribute` as a new catalog
-- revision and writes an open_attribute_change ledger entry; a refusal changes nothing.
CREATE TABLE open_attribute_changes (
    id                    TEXT   PRIMARY KEY,
    dataset_id            TEXT   NOT NULL REFERENCES datasets (id),
    provider_org          TEXT   NOT NULL,
    from_attribute        TEXT   NOT NULL,   -- unconditional | conditional | not_open
    to_attribute          TEXT   NOT NULL,
    reason                TEXT   NOT NULL,
    legal_basis           TEXT   NOT NULL,
    requester_org         TEXT   NOT NULL,
    requester_key         TEXT   NOT NULL,
    requested_ms          BIGINT NOT NULL,
    status                TEXT   NOT NULL,   -- pending | approved | refused
    decider_org           TEXT,              -- the data authority that decided
    decider_key           TEXT,
    decided_ms            BIGINT,
    decision_reason       TEXT,              -- required for a refusal
    revision              BIGINT,            -- the catalog revision an approval made
    change_seq            BIGINT,            -- seq of its open_attribute_change entry
    suspended_grants_json TEXT   NOT NULL DEFAULT '[]'
);
-- One pending request per dataset: a second one is a conflict, also under a race.
CREATE UNIQUE INDEX open_attribute_changes_one_pending
    ON open_attribute_changes (dataset_id) WHERE status = 'pending';
CREATE INDEX open_attribute_changes_status ON open_attribute_changes (status);

-- The data authority's time-bounded relaxation of a dataset's open attribute. It is in
-- force while `ended_ms` is NULL and the clock is before `ends_ms` (00:00 UTC of the day
-- after `until_day`); every read computes that, and a periodic check then records the
-- end (`ended_ms`, an emergency_relaxation `ended` entry) and suspends the grants on a
-- dataset that is not open again.
CREATE TABLE emergency_relaxations (
    id                    TEXT   PRIMARY KEY,
    dataset_id            TEXT   NOT NULL REFERENCES datasets (id),
    provider_org          TEXT   NOT NULL,
    open_attribute        TEXT   NOT NULL,   -- the catalog's attribute when it started
    relaxed_to            TEXT   NOT NULL,
    emergency             TEXT   NOT NULL,
    until_day             TEXT   NOT NULL,   -- YYYY-MM-DD, the last day in force (UTC)
    ends_ms               BIGINT NOT NULL,
    authority_org         TEXT   NOT NULL,
    authority_key         TEXT   NOT NULL,
    started_ms            BIGINT NOT NULL,
    started_seq           BIGINT NOT NULL,
    ended_ms              BIGINT,
    ended_seq             BIGINT,
    suspended_grants_json TEXT   NOT NULL DEFAULT '[]'
);
-- One relaxation not yet ended per dataset.
CREATE UNIQUE INDEX emergency_relaxations_one_open
    ON emergency_relaxations (dataset_id) WHERE ended_ms IS NULL;
CREATE INDEX emergency_relaxations_ends ON emergency_relaxations (ends_ms);
