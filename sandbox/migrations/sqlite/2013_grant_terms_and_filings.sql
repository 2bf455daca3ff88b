-- Grant terms (SD22 Art.14; XT Art.30; GD21 Art.26) and classification filings (GD21
-- Art.13). Owners: grants.rs (the grant columns, written through store/grants.rs) and
-- classification.rs (classification_filings, written through store/classification.rs).

-- The kind of a grant's purpose decides which product licences its results may carry
-- (research | public_interest | commercial). Grants filed before it existed keep what
-- they said: research-only grants are research, the others commercial.
ALTER TABLE grants ADD COLUMN purpose_kind TEXT NOT NULL DEFAULT 'commercial';
UPDATE grants SET purpose_kind = 'research' WHERE research_only = 1;
-- The open-use agreement text the developer accepted when filing, byte for byte, and
-- its BLAKE3 (hex), which the grant's GrantDecision entries carry. NULL for grants filed
-- before agreements were stored.
ALTER TABLE grants ADD COLUMN agreement_text TEXT;
ALTER TABLE grants ADD COLUMN agreement_hash TEXT;

-- A provider's filing (备案) of a not-shared classification with the data authority,
-- with its legal basis: one per registration or edit that makes an entry not shared or
-- changes its legal basis, each with a classification_filing ledger entry.
CREATE TABLE classification_filings (
    id            TEXT   PRIMARY KEY,
    dataset_id    TEXT   NOT NULL REFERENCES datasets (id),
    provider_org  TEXT   NOT NULL,
    actor_key     TEXT   NOT NULL,
    share_type    TEXT   NOT NULL,     -- not_shared
    legal_basis   TEXT   NOT NULL,
    level         TEXT   NOT NULL,     -- L1 | L2 | L3 | L4
    revision      BIGINT NOT NULL,     -- the catalog revision it was filed with
    metadata_hash TEXT   NOT NULL,     -- BLAKE3 of that revision's metadata, hex
    filed_ms      BIGINT NOT NULL,
    filing_seq    BIGINT NOT NULL      -- seq of its classification_filing entry
);
CREATE INDEX classification_filings_provider ON classification_filings (provider_org, filed_ms);
CREATE INDEX classification_filings_dataset ON classification_filings (dataset_id, filed_ms);
