-- Grants (open-use agreements), models, model runs, quarantined outputs and reviews.
--
-- (PostgreSQL copy of the SQLite file; same columns.)
-- Privacy budgets are kept in integer micro-units (1 ε = 1,000,000 µε) so that spends
-- add up exactly: a grant's budget is spent to the last unit and never over.
CREATE TABLE grants (
    id                  TEXT   PRIMARY KEY,
    dataset_id          TEXT   NOT NULL REFERENCES datasets (id),
    applicant_org       TEXT   NOT NULL,
    provider_org        TEXT   NOT NULL,
    purpose             TEXT   NOT NULL,
    columns_json        TEXT   NOT NULL,     -- requested, then as approved
    model_kinds_json    TEXT   NOT NULL,
    term_days           BIGINT NOT NULL,
    epsilon_micro       BIGINT NOT NULL,
    delta_pico          BIGINT NOT NULL,     -- δ in units of 1e-12
    query_budget        BIGINT NOT NULL,
    research_only       BIGINT NOT NULL DEFAULT 0, -- results for research use only
    status              TEXT   NOT NULL,     -- pending, approved, refused, revoked, suspended
    reason              TEXT,
    answer_deadline     TEXT   NOT NULL,     -- YYYY-MM-DD, working days from filing
    applied_ms          BIGINT NOT NULL,
    decided_ms          BIGINT,
    starts_ms           BIGINT,
    expires_ms          BIGINT,
    decision_seq        BIGINT,
    epsilon_spent_micro BIGINT NOT NULL DEFAULT 0,
    delta_spent_pico    BIGINT NOT NULL DEFAULT 0,
    queries_used        BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX grants_applicant ON grants (applicant_org);
CREATE INDEX grants_provider ON grants (provider_org);

CREATE TABLE models (
    id               TEXT   PRIMARY KEY,
    org_id           TEXT   NOT NULL,
    kind             TEXT   NOT NULL,        -- sql, dp
    name             TEXT   NOT NULL,
    body             TEXT   NOT NULL,
    params_json      TEXT   NOT NULL,
    model_hash       TEXT   NOT NULL,
    registration_seq BIGINT NOT NULL,
    created_ms       BIGINT NOT NULL
);
CREATE INDEX models_org ON models (org_id);

CREATE TABLE model_runs (
    job_id           TEXT   PRIMARY KEY,
    model_id         TEXT   NOT NULL REFERENCES models (id),
    org_id           TEXT   NOT NULL,
    grant_id         TEXT,
    dataset_versions TEXT   NOT NULL,        -- JSON list of "dataset_id@version"
    epsilon_micro    BIGINT NOT NULL DEFAULT 0,
    delta_pico       BIGINT NOT NULL DEFAULT 0,
    status           TEXT   NOT NULL,        -- running, finished, failed, cancelled
    created_ms       BIGINT NOT NULL
);
CREATE INDEX model_runs_org ON model_runs (org_id, status);

CREATE TABLE outputs (
    id                 TEXT   PRIMARY KEY,
    job_id             TEXT   NOT NULL UNIQUE,
    org_id             TEXT   NOT NULL,
    model_id           TEXT   NOT NULL,
    provider_org       TEXT   NOT NULL,
    file_path          TEXT   NOT NULL,      -- relative to the zones root
    output_hash        TEXT   NOT NULL,
    rows_count         BIGINT NOT NULL,
    bytes              BIGINT NOT NULL,
    check_report_json  TEXT   NOT NULL,
    preview_json       TEXT   NOT NULL,
    required_reviews   BIGINT NOT NULL,
    status             TEXT   NOT NULL,      -- quarantined, released, rejected
    reason             TEXT,
    release_id         TEXT   UNIQUE,
    release_seq        BIGINT,
    created_ms         BIGINT NOT NULL,
    decided_ms         BIGINT
);
CREATE INDEX outputs_status ON outputs (status);

CREATE TABLE output_reviews (
    output_id    TEXT   NOT NULL REFERENCES outputs (id),
    reviewer_org TEXT   NOT NULL,
    reviewer_key TEXT   NOT NULL,
    decision     TEXT   NOT NULL,            -- approve, reject
    reason       TEXT   NOT NULL,
    created_ms   BIGINT NOT NULL,
    PRIMARY KEY (output_id, reviewer_key)
);

-- Per-dataset output policy set by the provider: disclosure-control parameters, the
-- number of reviewers, and whether DP outputs within budget may skip review.
ALTER TABLE datasets ADD COLUMN output_policy_json TEXT NOT NULL DEFAULT '{}';
ALTER TABLE datasets ADD COLUMN research_only BIGINT NOT NULL DEFAULT 0;
