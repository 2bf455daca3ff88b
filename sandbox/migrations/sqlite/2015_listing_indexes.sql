-- Indexes for the listings that pages and the API read a page at a time (issue #21's
-- speed goal, measured by `pdx bench portal`). No table changes. Owners: catalog.rs
-- (the catalog search) and review.rs (the review queue).
--
-- The catalog search lists entries newest first (`ORDER BY created_ms DESC, id`),
-- published ones for the public: in these orders a page is read by walking the index
-- and stopping at the page, instead of sorting every match.
CREATE INDEX datasets_newest ON datasets (status, created_ms DESC, id);
CREATE INDEX datasets_newest_all ON datasets (created_ms DESC, id);

-- Each review queue item names the previous release of the same model (else of the same
-- grant): one lookup per item, which read every released output without these.
CREATE INDEX outputs_by_model ON outputs (org_id, model_id, status, created_ms);
CREATE INDEX model_runs_grant ON model_runs (grant_id);

-- The decided part of the queue, most recently decided first.
CREATE INDEX outputs_decided ON outputs (decided_ms);
