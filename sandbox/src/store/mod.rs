//! The store layer: the only code that writes the sandbox's tables.
//!
//! One module per table group, each the single owner of its tables' `INSERT`,
//! `UPDATE` and `DELETE` statements, with typed rows for what it writes. Every function
//! takes an executor (a pool, a connection or an open transaction), so the callers keep
//! deciding what commits together — a row and its ledger entry, a budget spend and the
//! run it pays for — while the SQL for each table lives in one place.
//!
//! | module | tables |
//! |---|---|
//! | [`catalog`] | `datasets`, `data_elements`, `catalog_reviews`, `catalog_revisions` |
//! | [`versions`] | `dataset_versions` |
//! | [`jobs`] | `jobs` |
//! | [`models`] | `models` |
//! | [`grants`] | `grants` |
//! | [`classification`] | `classification_filings` |
//! | [`runs`] | `model_runs` |
//! | [`outputs`] | `outputs`, `output_reviews` |
//! | [`record_sets`] | `record_sets`, `output_record_sets`, `record_set_nestings` |
//! | [`objections`] | `objections` |
//! | [`quality`] | `correction_duties`, `correction_uploads` |
//! | [`evaluation`] | `evaluations` |
//! | [`rectification`] | `rectification_orders` |
//! | [`open_attributes`] | `open_attribute_changes`, `emergency_relaxations` |
//! | [`open_data_requests`] | `open_data_requests` |
//! | [`fhe`] | `fhe_templates`, `fhe_server_keys`, `fhe_queries` |
//! | [`consent`] | `consent_keys`, `fhe_consent_requests` |
//! | [`sharing`] | `share_requests`, `share_accesses` |
//! | [`destruction`] | `dataset_destructions` |

pub(crate) mod catalog;
pub(crate) mod classification;
pub(crate) mod consent;
pub(crate) mod destruction;
pub(crate) mod evaluation;
pub(crate) mod fhe;
pub(crate) mod grants;
pub(crate) mod jobs;
pub(crate) mod models;
pub(crate) mod objections;
pub(crate) mod open_attributes;
pub(crate) mod open_data_requests;
pub(crate) mod outputs;
pub(crate) mod quality;
pub(crate) mod record_sets;
pub(crate) mod rectification;
pub(crate) mod runs;
pub(crate) mod sharing;
pub(crate) mod versions;
