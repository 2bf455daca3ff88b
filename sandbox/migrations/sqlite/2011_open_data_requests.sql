-- Requests to open data (SD22 Art.9, 12; GD21 Art.34); owner: open_data_requests.rs,
-- written through store/open_data_requests.rs.

-- Anyone's request (the public's without a key too) to open a catalogued dataset
-- further or to publish a new one; the data authority routes it to a provider, which
-- answers by a deadline in working days. Each step is an open_data_request ledger
-- entry, written in the same transaction as the row. `contact` is never shown to the
-- public, nor written to the ledger.
CREATE TABLE open_data_requests (
    id              TEXT   PRIMARY KEY,
    request         TEXT   NOT NULL,   -- open_dataset | new_dataset
    dataset_id      TEXT   REFERENCES datasets (id),  -- for open_dataset
    subject         TEXT   NOT NULL,
    description     TEXT   NOT NULL,
    contact         TEXT,
    requester_org   TEXT,              -- NULL: the public, without a key
    requester_key   TEXT,
    filed_ms        BIGINT NOT NULL,
    filed_seq       BIGINT NOT NULL,
    status          TEXT   NOT NULL,   -- filed | routed | accepted | refused
    provider_org    TEXT,              -- the provider it is routed to
    routed_by_org   TEXT,              -- the data authority that routed it
    routed_by_key   TEXT,
    routed_ms       BIGINT,
    answer_due      TEXT,              -- YYYY-MM-DD, working days from the routing
    routed_seq      BIGINT,
    reason          TEXT,              -- the provider's reason (required to refuse)
    answered_key    TEXT,
    answered_ms     BIGINT,
    answered_late   BIGINT NOT NULL DEFAULT 0,
    answered_seq    BIGINT
);
CREATE INDEX open_data_requests_status ON open_data_requests (status);
CREATE INDEX open_data_requests_filed ON open_data_requests (filed_ms);
