//! The sandbox's settings ([`SandboxConfig`]), with the defaults a fresh data directory
//! gets.

use std::path::PathBuf;

/// The default name of the zones' key-encryption key file in the data directory.
pub const ZONES_KEK_FILE_NAME: &str = "zones-kek.key";

/// Settings of the sandbox.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Root of the zones (usually the pdx data directory).
    pub data_dir: PathBuf,
    /// Largest accepted upload, in bytes.
    pub upload_limit: u64,
    /// Keep raw uploads after de-identification (default: delete them).
    pub retain_raw: bool,
    /// The key-encryption key file wrapping the zones' data keys (XT Art.35: encryption
    /// at rest; default `<data-dir>/zones-kek.key`, created if absent).
    pub zones_kek_file: PathBuf,
    /// Validity of a data asset certificate, in days.
    pub certificate_validity_days: u32,
    /// Working days a provider has to answer a grant application.
    pub grant_answer_working_days: u32,
    /// Working days a provider has to answer an objection (异议) to a dataset version.
    pub objection_answer_working_days: u32,
    /// Working days the data authority has to approve or return a catalog entry
    /// submitted for publication (GD21 Art.10–11; XT Art.12).
    pub catalog_review_working_days: u32,
    /// Working days a provider has to update a catalog entry after a legal change
    /// (GD21 Art.11; XT Art.14).
    pub catalog_update_working_days: u32,
    /// Public holidays skipped when counting working days.
    pub holidays: Vec<time::Date>,
    /// Model runs one organisation may have in progress.
    pub org_run_concurrency: u32,
    /// Memory pool of one SQL run, in bytes (no spilling).
    pub run_memory_bytes: usize,
    /// Wall-clock limit of one run.
    pub run_timeout: std::time::Duration,
    /// Most rows in one output.
    pub max_output_rows: usize,
    /// Most bytes in one output.
    pub max_output_bytes: usize,
    /// Largest accepted FHE server key, in bytes.
    pub fhe_server_key_limit: u64,
    /// Most table rows one FHE lookup may scan (beyond, the client must reveal a bucket).
    pub fhe_max_rows: usize,
    /// Threads of the FHE evaluator (0: every core).
    pub fhe_threads: usize,
    /// How long every job waits after it is marked started and before its work (zero
    /// in service; crash tests set it, through `PDX_JOB_START_PAUSE_MS`, to kill the
    /// server while jobs are certainly running).
    pub job_start_pause: std::time::Duration,
    /// This server's name among the servers sharing the database (`cluster.rs`;
    /// default the host name). Each server needs its own.
    pub instance: String,
    /// How long an instance's heartbeat, and a leader's lease, stays valid: a dead
    /// server's jobs are taken over this long after its last heartbeat (default 10 s).
    pub instance_lease: std::time::Duration,
    /// How often a server looks for jobs a dead server left (default 2 s).
    pub job_poll_interval: std::time::Duration,
}

impl SandboxConfig {
    /// Defaults for a data directory: 1 GiB uploads, raw files deleted, one-year
    /// certificates.
    pub fn new(data_dir: impl Into<PathBuf>) -> SandboxConfig {
        let data_dir: PathBuf = data_dir.into();
        SandboxConfig {
            zones_kek_file: data_dir.join(ZONES_KEK_FILE_NAME),
            data_dir,
            upload_limit: 1 << 30,
            retain_raw: false,
            certificate_validity_days: 365,
            grant_answer_working_days: 5,
            objection_answer_working_days: 5,
            catalog_review_working_days: 5,
            catalog_update_working_days: 15,
            holidays: Vec::new(),
            org_run_concurrency: 2,
            run_memory_bytes: 512 << 20,
            run_timeout: std::time::Duration::from_secs(120),
            max_output_rows: 100_000,
            max_output_bytes: 64 << 20,
            fhe_server_key_limit: pdx_algorithms::fhe::DEFAULT_SERVER_KEY_LIMIT,
            fhe_max_rows: 4096,
            fhe_threads: 0,
            job_start_pause: std::time::Duration::ZERO,
            instance: crate::cluster::default_instance_name(),
            instance_lease: std::time::Duration::from_secs(10),
            job_poll_interval: std::time::Duration::from_secs(2),
        }
    }
}
