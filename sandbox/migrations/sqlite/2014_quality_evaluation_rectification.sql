-- The data quality loop (SD22 Art.13; XT Art.20-22; GD21 Art.16), the data authority's
-- yearly evaluations (GD21 Art.48-49; GD18 Art.30; XT Art.41) and rectification orders
-- (GD21 Art.52; GD18 Art.31). Owners: quality.rs (correction_duties, correction_uploads
-- and the update frequencies), evaluation.rs (evaluations) and rectification.rs
-- (rectification_orders), written through store/quality.rs, store/evaluation.rs and
-- store/rectification.rs.

-- The correction an accepted objection obliges: a corrected version within 10 working
-- days of the acceptance (XT Art.22). Written when the objection is accepted; the
-- corrected version, its certificate and the seq of the objection_answer entry that
-- links them (step `corrected`) are filled in when the version is certified.
CREATE TABLE correction_duties (
    objection_id    TEXT   PRIMARY KEY REFERENCES objections (id),
    dataset_id      TEXT   NOT NULL REFERENCES datasets (id),
    provider_org    TEXT   NOT NULL,
    accepted_ms     BIGINT NOT NULL,
    correction_due  TEXT   NOT NULL,          -- YYYY-MM-DD, working days from acceptance
    version         BIGINT,                   -- the corrected version, once certified
    certificate_no  TEXT,
    certificate_seq BIGINT,
    corrected_ms    BIGINT,
    corrected_late  BIGINT NOT NULL DEFAULT 0,
    correction_seq  BIGINT                    -- seq of the `corrected` entry
);
CREATE INDEX correction_duties_provider ON correction_duties (provider_org);
CREATE INDEX correction_duties_version ON correction_duties (dataset_id, version);

-- Uploads that name the objections they correct (`?corrects=` on the upload), one row
-- per ingest job and objection; the first of them to be certified is the correction.
CREATE TABLE correction_uploads (
    ingest_job_id TEXT   NOT NULL,
    objection_id  TEXT   NOT NULL REFERENCES correction_duties (objection_id),
    linked_ms     BIGINT NOT NULL,
    PRIMARY KEY (ingest_job_id, objection_id)
);

-- Update frequencies become one of six values (GD21 Art.16; XT Art.20). Known words
-- are kept (in lower case); any other text, which no period can be read from, becomes
-- `irregular`. The revision history keeps the text as it was registered.
UPDATE datasets SET update_frequency = LOWER(TRIM(update_frequency))
    WHERE LOWER(TRIM(update_frequency)) IN
        ('daily', 'weekly', 'monthly', 'quarterly', 'yearly', 'irregular');
UPDATE datasets SET update_frequency = 'irregular'
    WHERE update_frequency NOT IN
        ('daily', 'weekly', 'monthly', 'quarterly', 'yearly', 'irregular');

-- The data authority's yearly evaluation of a provider, one per provider and year; the
-- indicators (name, weight, numerator, denominator) as JSON, also on its evaluation
-- ledger entry.
CREATE TABLE evaluations (
    id              TEXT   PRIMARY KEY,
    provider_org    TEXT   NOT NULL,
    period_year     BIGINT NOT NULL,
    as_of_day       TEXT   NOT NULL,          -- YYYY-MM-DD, the day the counts were taken
    formula         TEXT   NOT NULL,
    indicators_json TEXT   NOT NULL,
    score           BIGINT,                   -- 0-100; NULL when no indicator applies
    authority_org   TEXT   NOT NULL,
    authority_key   TEXT   NOT NULL,
    evaluated_ms    BIGINT NOT NULL,
    evaluation_seq  BIGINT NOT NULL
);
CREATE UNIQUE INDEX evaluations_one_per_year ON evaluations (provider_org, period_year);

-- The data authority's rectification orders: issued with findings and a deadline,
-- answered by the organisation, closed by the authority; each step a rectification
-- ledger entry.
CREATE TABLE rectification_orders (
    id             TEXT   PRIMARY KEY,
    org_id         TEXT   NOT NULL,           -- the organisation ordered to rectify
    authority_org  TEXT   NOT NULL,
    authority_key  TEXT   NOT NULL,
    evaluation_id  TEXT,                      -- the evaluation it follows, if any
    findings       TEXT   NOT NULL,
    deadline       TEXT   NOT NULL,           -- YYYY-MM-DD
    status         TEXT   NOT NULL,           -- issued | responded | closed
    issued_ms      BIGINT NOT NULL,
    issued_seq     BIGINT NOT NULL,
    response       TEXT,
    responder_key  TEXT,
    responded_ms   BIGINT,
    responded_late BIGINT NOT NULL DEFAULT 0,
    response_seq   BIGINT,
    closing_note   TEXT,
    closer_org     TEXT,
    closer_key     TEXT,
    closed_ms      BIGINT,
    close_seq      BIGINT
);
CREATE INDEX rectification_orders_org ON rectification_orders (org_id);
CREATE INDEX rectification_orders_status ON rectification_orders (status);
