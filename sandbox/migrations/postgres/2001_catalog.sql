-- The public-data catalog: datasets, data elements (one data, one source), versions
-- and the jobs that ingest them.
CREATE TABLE datasets (
    id                    TEXT   PRIMARY KEY,
    provider_org          TEXT   NOT NULL,
    title                 TEXT   NOT NULL,
    description           TEXT   NOT NULL,
    theme                 TEXT   NOT NULL,
    source_department     TEXT   NOT NULL,
    collecting_department TEXT   NOT NULL,
    approving_department  TEXT   NOT NULL,
    providing_department  TEXT   NOT NULL,
    data_form             TEXT   NOT NULL,
    update_frequency      TEXT   NOT NULL,
    level                 TEXT   NOT NULL,
    share_type            TEXT   NOT NULL,
    share_conditions      TEXT   NOT NULL,
    legal_basis           TEXT   NOT NULL,
    open_attribute        TEXT   NOT NULL,
    schema_json           TEXT   NOT NULL,
    elements_json         TEXT   NOT NULL,
    search_text           TEXT   NOT NULL,   -- lower-cased title, description, theme
    created_ms            BIGINT NOT NULL,
    updated_ms            BIGINT NOT NULL
);
CREATE INDEX datasets_theme ON datasets (theme);
CREATE INDEX datasets_provider ON datasets (provider_org);

CREATE TABLE data_elements (
    code              TEXT   PRIMARY KEY,     -- e.g. enterprise.registration
    source_department TEXT   NOT NULL,        -- exactly one per element (GD21 Art.14)
    description       TEXT   NOT NULL,
    org_id            TEXT   NOT NULL,        -- the registering provider
    dataset_id        TEXT   REFERENCES datasets (id),  -- first dataset that carries it
    created_ms        BIGINT NOT NULL
);

CREATE TABLE dataset_versions (
    dataset_id      TEXT   NOT NULL REFERENCES datasets (id),
    version         BIGINT NOT NULL,
    rows_count      BIGINT NOT NULL,
    bytes           BIGINT NOT NULL,
    content_hash    TEXT   NOT NULL,
    schema_hash     TEXT   NOT NULL,
    file_path       TEXT   NOT NULL,         -- relative to the zones root
    report_json     TEXT   NOT NULL,
    certificate_no  TEXT   NOT NULL UNIQUE,
    certificate_seq BIGINT NOT NULL,
    valid_from      TEXT   NOT NULL,
    valid_until     TEXT   NOT NULL,
    created_ms      BIGINT NOT NULL,
    PRIMARY KEY (dataset_id, version)
);

CREATE TABLE jobs (
    id          TEXT   PRIMARY KEY,
    kind        TEXT   NOT NULL,
    org_id      TEXT   NOT NULL,
    subject     TEXT   NOT NULL,             -- what the job works on (dataset id...)
    status      TEXT   NOT NULL,             -- queued, running, succeeded, failed
    stage       TEXT   NOT NULL,
    progress    DOUBLE PRECISION NOT NULL,
    result_json TEXT,
    error_json  TEXT,
    created_ms  BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL
);
CREATE INDEX jobs_org ON jobs (org_id);
