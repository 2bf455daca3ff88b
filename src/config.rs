//! Configuration: flags, then `PDX_*` environment variables (clap reads both), then an
//! optional TOML file, then defaults. With nothing set, pdx uses `./pdx-data` and a
//! SQLite file inside it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Flags shared by every command (each also readable from the environment).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ConfigArgs {
    /// TOML configuration file.
    #[arg(long, env = "PDX_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Data directory (SQLite file, keys, datasets).
    #[arg(long, env = "PDX_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://… or postgres://… (default: SQLite in the data directory).
    #[arg(long, env = "PDX_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Log format.
    #[arg(long, env = "PDX_LOG_FORMAT", global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// For crash tests: every job waits this long after it starts, so that a test can
    /// kill the server while jobs are certainly running (default 0).
    #[arg(long, env = "PDX_JOB_START_PAUSE_MS", global = true, hide = true)]
    pub job_start_pause_ms: Option<u64>,
    /// This server's name among several sharing one database (default the host name);
    /// each server needs its own.
    #[arg(long, env = "PDX_INSTANCE", global = true)]
    pub instance: Option<String>,
}

/// The TOML file's keys (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Listen address.
    pub addr: Option<String>,
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Database URL.
    pub database_url: Option<String>,
    /// Log format.
    pub log_format: Option<LogFormat>,
    /// Largest accepted request body, bytes.
    pub body_limit_bytes: Option<usize>,
    /// Request timeout, seconds.
    pub request_timeout_secs: Option<u64>,
    /// Checkpoint origin (the signing key's name).
    pub ledger_origin: Option<String>,
    /// Ledger signing key file (default `<data-dir>/ledger.key`, created if absent).
    pub ledger_key_file: Option<PathBuf>,
    /// Sign a checkpoint every this many entries.
    pub checkpoint_every: Option<u64>,
    /// Sign a checkpoint when the newest is older than this, seconds.
    pub checkpoint_interval_secs: Option<u64>,
    /// Largest dataset upload, in bytes (default 1 GiB).
    pub upload_limit_bytes: Option<u64>,
    /// Keep raw uploads after de-identification (default false: delete them).
    pub retain_raw: Option<bool>,
    /// The key-encryption key that wraps the zones' data keys (default
    /// `<data-dir>/zones-kek.key`, created if absent). Keep it off the data disk in
    /// production: a stolen data directory without it shows no plaintext.
    pub zones_kek_file: Option<PathBuf>,
    /// Validity of data asset certificates, in days (default 365).
    pub certificate_validity_days: Option<u32>,
    /// Working days a provider has to answer a grant application (default 5).
    pub grant_answer_working_days: Option<u32>,
    /// Working days a provider has to answer an objection to a dataset version
    /// (default 5).
    pub objection_answer_working_days: Option<u32>,
    /// Working days the data authority has to review a submitted catalog entry
    /// (default 5).
    pub catalog_review_working_days: Option<u32>,
    /// Working days a provider has to update a catalog entry after a legal change
    /// (default 15).
    pub catalog_update_working_days: Option<u32>,
    /// Public holidays (`YYYY-MM-DD`) skipped when counting working days.
    pub holidays: Option<Vec<String>>,
    /// Model runs one organisation may have in progress at once (default 2).
    pub org_run_concurrency: Option<u32>,
    /// The least share of each sale of a paid product remitted to public finance, in
    /// basis points (default 1,000, i.e. 10 %; at most 10,000; GY ch.6). A product whose
    /// split gives public finance less is refused.
    pub public_finance_min_bp: Option<u32>,
    /// Memory pool of one SQL run, bytes (default 512 MiB; exceeding it fails the run).
    pub run_memory_bytes: Option<usize>,
    /// Wall-clock limit of one run, seconds (default 120).
    pub run_timeout_secs: Option<u64>,
    /// Most rows one output may have (default 100,000).
    pub max_output_rows: Option<usize>,
    /// Most bytes one output may have (default 64 MiB).
    pub max_output_bytes: Option<usize>,
    /// Requests per second one API key may make on average (default 100; 0 turns the
    /// rate limit off). Over it: 429 with `Retry-After`.
    pub rate_limit_per_sec: Option<u32>,
    /// Requests one API key may make at once above that rate (default 500).
    pub rate_limit_burst: Option<u32>,
    /// Failed authentications from one client address that lock it out (default 20; 0
    /// turns the lock-out off, as behind a reverse proxy every client shares its address).
    pub auth_failure_limit: Option<u32>,
    /// The window those failures are counted in, seconds (default 300).
    pub auth_failure_window_secs: Option<u64>,
    /// How long a locked-out address gets 429 on every request with a key, seconds
    /// (default 900).
    pub auth_lockout_secs: Option<u64>,
    /// Uploads of one kind (dataset versions; FHE server keys) in progress at once; one
    /// more gets 429 (default 4).
    pub upload_concurrency: Option<u32>,
    /// Writes without a key (requests to open data) one client address may make in an
    /// hour (default 20; 0 turns this limit off). Over it: 429 with `Retry-After`.
    pub anonymous_writes_per_hour: Option<u32>,
    /// This server's name among several sharing one database (default the host name).
    pub instance: Option<String>,
    /// How long a server's heartbeat and a leader's lease stay valid, seconds (default
    /// 10): a stopped server's jobs are taken over this long after its last heartbeat.
    pub instance_lease_secs: Option<u64>,
    /// How often a server looks for jobs of servers that stopped, seconds (default 2).
    pub job_poll_interval_secs: Option<u64>,
    /// The web portal signs a browser out after this long without a request, seconds
    /// (default 1,800: 30 minutes).
    pub portal_session_idle_secs: Option<u64>,
    /// The web portal signs a browser out this long after sign-in whatever it does,
    /// seconds (default 43,200: 12 hours).
    pub portal_session_max_secs: Option<u64>,
}

/// Resolved configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Listen address.
    pub addr: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Database URL.
    pub database_url: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Largest accepted request body, bytes.
    pub body_limit: usize,
    /// Request timeout.
    pub request_timeout: Duration,
    /// Checkpoint origin.
    pub ledger_origin: String,
    /// Ledger signing key file.
    pub ledger_key_file: PathBuf,
    /// Ledger checkpoint cadence.
    pub ledger: pdx_ledger::LedgerConfig,
    /// Catalog and sandbox settings.
    pub sandbox: pdx_sandbox::SandboxConfig,
    /// The least public-finance share of a paid product's sales, basis points (GY ch.6;
    /// default [`pdx_products::DEFAULT_PUBLIC_FINANCE_MIN_BP`]).
    pub public_finance_min_bp: u32,
    /// Admission limits: rate per key, lock-out after failed keys, concurrent uploads.
    pub limits: crate::http::limits::LimitsConfig,
    /// TLS certificate and key files (`pdx serve --tls-cert/--tls-key`); None: plain
    /// HTTP. Read [`Config::tls_enabled`] rather than this field.
    pub tls: Option<crate::tls::TlsFiles>,
    /// A portal session without a request for this long ends (`portal_session_idle_secs`,
    /// default [`DEFAULT_PORTAL_SESSION_IDLE`]).
    pub portal_session_idle: Duration,
    /// A portal session ends this long after sign-in (`portal_session_max_secs`, default
    /// [`DEFAULT_PORTAL_SESSION_MAX`]); its cookie expires then too.
    pub portal_session_max: Duration,
}

/// Default idle time after which a portal session ends.
pub const DEFAULT_PORTAL_SESSION_IDLE: Duration = Duration::from_secs(30 * 60);

/// Default longest life of a portal session.
pub const DEFAULT_PORTAL_SESSION_MAX: Duration = Duration::from_secs(12 * 60 * 60);

/// Default listen address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

impl Config {
    /// Resolves flags/env over the file over defaults. `addr` comes from `pdx serve`.
    pub fn resolve(args: &ConfigArgs, addr: Option<&str>) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        // Before any field is moved out of `file`.
        let limits = limits_from_file(&file)?;
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("pdx-data"));
        let database_url = args
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| pdx_ledger::db::sqlite_url(&data_dir.join("pdx.db")));
        let addr = addr
            .map(str::to_string)
            .or(file.addr)
            .unwrap_or_else(|| DEFAULT_ADDR.to_string());
        let defaults = pdx_ledger::LedgerConfig::default();
        let ledger_key_file = file
            .ledger_key_file
            .unwrap_or_else(|| data_dir.join("ledger.key"));
        let mut sandbox = pdx_sandbox::SandboxConfig::new(data_dir.clone());
        if let Some(limit) = file.upload_limit_bytes {
            sandbox.upload_limit = limit;
        }
        if let Some(retain) = file.retain_raw {
            sandbox.retain_raw = retain;
        }
        if let Some(kek) = &file.zones_kek_file {
            sandbox.zones_kek_file = kek.clone();
        }
        if let Some(days) = file.certificate_validity_days {
            sandbox.certificate_validity_days = days;
        }
        if let Some(days) = file.grant_answer_working_days {
            sandbox.grant_answer_working_days = days;
        }
        if let Some(days) = file.objection_answer_working_days {
            sandbox.objection_answer_working_days = days;
        }
        if let Some(days) = file.catalog_review_working_days {
            sandbox.catalog_review_working_days = days;
        }
        if let Some(days) = file.catalog_update_working_days {
            sandbox.catalog_update_working_days = days;
        }
        if let Some(holidays) = &file.holidays {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            sandbox.holidays = holidays
                .iter()
                .map(|d| {
                    time::Date::parse(d, format)
                        .with_context(|| format!("holiday {d:?} is not a YYYY-MM-DD date"))
                })
                .collect::<anyhow::Result<_>>()?;
        }
        if let Some(n) = file.org_run_concurrency {
            anyhow::ensure!(n >= 1, "org_run_concurrency must be at least 1");
            sandbox.org_run_concurrency = n;
        }
        if let Some(bytes) = file.run_memory_bytes {
            sandbox.run_memory_bytes = bytes;
        }
        if let Some(secs) = file.run_timeout_secs {
            anyhow::ensure!(secs >= 1, "run_timeout_secs must be at least 1");
            sandbox.run_timeout = Duration::from_secs(secs);
        }
        if let Some(rows) = file.max_output_rows {
            sandbox.max_output_rows = rows;
        }
        if let Some(bytes) = file.max_output_bytes {
            sandbox.max_output_bytes = bytes;
        }
        sandbox.job_start_pause = Duration::from_millis(args.job_start_pause_ms.unwrap_or(0));
        if let Some(instance) = args.instance.clone().or(file.instance.clone()) {
            anyhow::ensure!(
                pdx_sandbox::cluster::valid_instance_name(&instance),
                "instance {instance:?} must be 1 to 64 ASCII letters, digits, '.', '_', '-' or ':'"
            );
            sandbox.instance = instance;
        }
        if let Some(secs) = file.instance_lease_secs {
            anyhow::ensure!(secs >= 1, "instance_lease_secs must be at least 1");
            sandbox.instance_lease = Duration::from_secs(secs);
        }
        if let Some(secs) = file.job_poll_interval_secs {
            anyhow::ensure!(secs >= 1, "job_poll_interval_secs must be at least 1");
            sandbox.job_poll_interval = Duration::from_secs(secs);
        }
        let portal_session_idle = positive_secs(
            file.portal_session_idle_secs,
            "portal_session_idle_secs",
            DEFAULT_PORTAL_SESSION_IDLE,
        )?;
        let portal_session_max = positive_secs(
            file.portal_session_max_secs,
            "portal_session_max_secs",
            DEFAULT_PORTAL_SESSION_MAX,
        )?;
        let public_finance_min_bp = file
            .public_finance_min_bp
            .unwrap_or(pdx_products::DEFAULT_PUBLIC_FINANCE_MIN_BP);
        anyhow::ensure!(
            public_finance_min_bp <= 10_000,
            "public_finance_min_bp must be at most 10000 basis points"
        );
        Ok(Config {
            sandbox,
            public_finance_min_bp,
            limits,
            tls: None,
            portal_session_idle,
            portal_session_max,
            addr: addr
                .parse()
                .with_context(|| format!("--addr {addr:?} is not a socket address"))?,
            data_dir,
            database_url,
            log_format: args
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Human),
            body_limit: file.body_limit_bytes.unwrap_or(1024 * 1024),
            request_timeout: Duration::from_secs(file.request_timeout_secs.unwrap_or(30)),
            ledger_key_file,
            ledger_origin: file
                .ledger_origin
                .unwrap_or_else(|| "pdx.local/ledger".to_string()),
            ledger: pdx_ledger::LedgerConfig {
                checkpoint_every: file.checkpoint_every.unwrap_or(defaults.checkpoint_every),
                checkpoint_interval: file
                    .checkpoint_interval_secs
                    .map(Duration::from_secs)
                    .unwrap_or(defaults.checkpoint_interval),
            },
        })
    }

    /// Path of the ledger signing key.
    pub fn ledger_key_path(&self) -> PathBuf {
        self.ledger_key_file.clone()
    }

    /// Path of the bootstrap admin key.
    pub fn admin_key_path(&self) -> PathBuf {
        self.data_dir.join("admin.key")
    }

    /// Whether the server speaks HTTPS only. Cookies the server sets (the portal's
    /// session) must then carry `Secure`, so that a browser never sends them over plain
    /// HTTP; a cookie layer reads this flag rather than guessing from the request.
    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }
}

/// The admission limits of the file over their defaults.
fn limits_from_file(file: &FileConfig) -> anyhow::Result<crate::http::limits::LimitsConfig> {
    let mut limits = crate::http::limits::LimitsConfig::default();
    if let Some(rate) = file.rate_limit_per_sec {
        limits.rate_per_sec = rate;
    }
    if let Some(burst) = file.rate_limit_burst {
        anyhow::ensure!(burst >= 1, "rate_limit_burst must be at least 1");
        limits.rate_burst = burst;
    }
    if let Some(n) = file.auth_failure_limit {
        limits.auth_failure_limit = n;
    }
    if let Some(secs) = file.auth_failure_window_secs {
        anyhow::ensure!(secs >= 1, "auth_failure_window_secs must be at least 1");
        limits.auth_failure_window = Duration::from_secs(secs);
    }
    if let Some(secs) = file.auth_lockout_secs {
        anyhow::ensure!(secs >= 1, "auth_lockout_secs must be at least 1");
        limits.auth_lockout = Duration::from_secs(secs);
    }
    if let Some(n) = file.upload_concurrency {
        anyhow::ensure!(n >= 1, "upload_concurrency must be at least 1");
        limits.upload_concurrency = n;
    }
    if let Some(n) = file.anonymous_writes_per_hour {
        limits.anonymous_writes_per_hour = n;
    }
    Ok(limits)
}

/// `secs` as a duration (at least one second), or `default` when unset.
fn positive_secs(secs: Option<u64>, key: &str, default: Duration) -> anyhow::Result<Duration> {
    match secs {
        None => Ok(default),
        Some(0) => anyhow::bail!("{key} must be at least 1"),
        Some(secs) => Ok(Duration::from_secs(secs)),
    }
}

fn load_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_use_sqlite_in_pdx_data() {
        let c = Config::resolve(&ConfigArgs::default(), None).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("pdx-data"));
        assert!(c.database_url.starts_with("sqlite://pdx-data/pdx.db"));
        assert_eq!(c.addr.to_string(), DEFAULT_ADDR);
        assert_eq!(c.ledger_key_path(), PathBuf::from("pdx-data/ledger.key"));
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pdx.toml");
        std::fs::write(
            &path,
            "addr = \"127.0.0.1:9999\"\ndata_dir = \"/tmp/from-file\"\ncheckpoint_every = 7\n",
        )
        .unwrap();
        let args = ConfigArgs {
            config: Some(path),
            data_dir: Some(PathBuf::from("/tmp/from-flag")),
            ..ConfigArgs::default()
        };
        let c = Config::resolve(&args, None).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/tmp/from-flag"));
        assert_eq!(c.addr.to_string(), "127.0.0.1:9999");
        assert_eq!(c.ledger.checkpoint_every, 7);
    }

    #[test]
    fn limits_come_from_the_file_over_generous_defaults() {
        let c = Config::resolve(&ConfigArgs::default(), None).unwrap();
        assert_eq!(c.limits, crate::http::limits::LimitsConfig::default());
        assert_eq!(c.limits.rate_per_sec, 100);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pdx.toml");
        std::fs::write(
            &path,
            "rate_limit_per_sec = 5\nrate_limit_burst = 7\nauth_failure_limit = 0\n\
             auth_failure_window_secs = 10\nauth_lockout_secs = 20\nupload_concurrency = 1\n",
        )
        .unwrap();
        let args = ConfigArgs {
            config: Some(path.clone()),
            ..ConfigArgs::default()
        };
        let l = Config::resolve(&args, None).unwrap().limits;
        assert_eq!(
            (l.rate_per_sec, l.rate_burst, l.auth_failure_limit),
            (5, 7, 0)
        );
        assert_eq!(l.auth_failure_window, Duration::from_secs(10));
        assert_eq!(l.auth_lockout, Duration::from_secs(20));
        assert_eq!(l.upload_concurrency, 1);
        std::fs::write(&path, "upload_concurrency = 0\n").unwrap();
        assert!(Config::resolve(&args, None).is_err());
    }

    #[test]
    fn the_public_finance_minimum_defaults_to_ten_percent_and_is_bounded() {
        let c = Config::resolve(&ConfigArgs::default(), None).unwrap();
        assert_eq!(c.public_finance_min_bp, 1_000);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pdx.toml");
        std::fs::write(&path, "public_finance_min_bp = 2500\n").unwrap();
        let args = ConfigArgs {
            config: Some(path.clone()),
            ..ConfigArgs::default()
        };
        assert_eq!(
            Config::resolve(&args, None).unwrap().public_finance_min_bp,
            2_500
        );
        std::fs::write(&path, "public_finance_min_bp = 10001\n").unwrap();
        assert!(Config::resolve(&args, None).is_err());
    }

    #[test]
    fn portal_sessions_last_half_an_hour_idle_and_twelve_hours_at_most_by_default() {
        let c = Config::resolve(&ConfigArgs::default(), None).unwrap();
        assert_eq!(c.portal_session_idle, Duration::from_secs(1_800));
        assert_eq!(c.portal_session_max, Duration::from_secs(43_200));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pdx.toml");
        std::fs::write(
            &path,
            "portal_session_idle_secs = 60\nportal_session_max_secs = 600\n",
        )
        .unwrap();
        let args = ConfigArgs {
            config: Some(path.clone()),
            ..ConfigArgs::default()
        };
        let c = Config::resolve(&args, None).unwrap();
        assert_eq!(c.portal_session_idle, Duration::from_secs(60));
        assert_eq!(c.portal_session_max, Duration::from_secs(600));
        std::fs::write(&path, "portal_session_idle_secs = 0\n").unwrap();
        assert!(Config::resolve(&args, None).is_err());
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pdx.toml");
        std::fs::write(&path, "adr = \"x\"\n").unwrap();
        let args = ConfigArgs {
            config: Some(path),
            ..ConfigArgs::default()
        };
        assert!(Config::resolve(&args, None).is_err());
    }
}
