//! # pdx-sandbox: where models run and what may leave
//!
//! Catalog, storage zones (raw, de-identified, quarantine, released), grants
//! (open-use agreements), jobs and their limits, the vetting workflow and privacy
//! budgets. It uses `pdx-algorithms` for the compute, persists with sqlx through
//! [`pdx_ledger::db::Db`], and writes certificates, grants, releases and privacy spends
//! to the ledger inside the same transaction as its own rows.
//!
//! Filled by the catalog and sandbox issues.
