-- Durable jobs (owner: jobs.rs). A job keeps what it needs to run again after a restart;
-- a version keeps the ingest job that certified it, so a resumed ingest whose version
-- was already certified does not certify a second one.
ALTER TABLE jobs ADD COLUMN inputs_json TEXT;
ALTER TABLE dataset_versions ADD COLUMN ingest_job_id TEXT;
CREATE UNIQUE INDEX dataset_versions_ingest_job ON dataset_versions (ingest_job_id);
