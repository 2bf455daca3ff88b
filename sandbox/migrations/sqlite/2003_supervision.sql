-- Objections (异议) to dataset versions, for errors or omissions (SD22 Art.13; XT
-- Art.21). Anyone authenticated files one; the dataset's provider answers it before a
-- deadline counted in working days. Both the objection and the answer are ledger
-- entries; the seqs are kept here so the row and the entry can be matched.
CREATE TABLE objections (
    id              TEXT   PRIMARY KEY,
    dataset_id      TEXT   NOT NULL REFERENCES datasets (id),
    version         BIGINT NOT NULL,
    provider_org    TEXT   NOT NULL,
    objector_org    TEXT   NOT NULL,
    objector_key    TEXT   NOT NULL,
    ground          TEXT   NOT NULL,          -- error | omission
    detail          TEXT   NOT NULL,
    status          TEXT   NOT NULL,          -- open | answered
    answer_deadline TEXT   NOT NULL,          -- YYYY-MM-DD, working days from filing
    filed_ms        BIGINT NOT NULL,
    objection_seq   BIGINT NOT NULL,
    outcome         TEXT,                     -- accepted | rejected
    answer          TEXT,
    answered_ms     BIGINT,
    answered_late   BIGINT NOT NULL DEFAULT 0,
    answer_seq      BIGINT
);
CREATE INDEX objections_provider ON objections (provider_org, status);
CREATE INDEX objections_objector ON objections (objector_org);
CREATE INDEX objections_deadline ON objections (status, answer_deadline);
