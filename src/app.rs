//! The running instance: configuration, database, accounts and ledger, opened once and
//! shared by the server, the demo and the CLI.

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::Context;

use pdx_ids::OrgId;
use pdx_ledger::db::Db;
use pdx_ledger::{Ledger, signing};
use pdx_products::Products;
use pdx_sandbox::Sandbox;

use crate::accounts::{Accounts, IssuedKey};
use crate::auth::Role;
use crate::bridges::SandboxReleases;
use crate::config::Config;
use crate::http::metrics::Metrics;

/// Shared state of one pdx instance.
#[derive(Clone)]
pub struct App {
    /// Configuration.
    pub config: Arc<Config>,
    /// Database.
    pub db: Db,
    /// Organisations and keys.
    pub accounts: Accounts,
    /// The ledger.
    pub ledger: Ledger,
    /// The sandbox: catalog, zones, durable jobs, grants, runs, review, FHE lookups.
    pub sandbox: Sandbox,
    /// Data products, orders, settlement and reconciliation.
    pub products: Products,
    /// The products crate's view of the sandbox's released outputs and of the
    /// organisations (passed to the `Products` calls that need it).
    pub released_outputs: SandboxReleases,
    /// HTTP metrics.
    pub metrics: Arc<Metrics>,
}

impl App {
    /// Opens (and migrates) the database and loads or creates the ledger key. Jobs a
    /// restart cut off are resumed by the server ([`App::resume_jobs`]), not by every
    /// command that opens the data directory.
    pub async fn open(config: Config) -> anyhow::Result<App> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
        let db = Db::connect(&config.database_url)
            .await
            .context("connecting to the database")?;
        db.migrate(crate::accounts::migrations())
            .await
            .context("migrating accounts")?;
        Ledger::migrate(&db).await.context("migrating the ledger")?;
        let signer = signing::load_or_create(&config.ledger_key_path(), &config.ledger_origin)
            .context("loading the ledger signing key")?;
        let ledger = Ledger::new(db.clone(), signer, config.ledger.clone());
        let accounts = Accounts::new(db.clone());
        let sandbox = Sandbox::open(db.clone(), ledger.clone(), config.sandbox.clone())
            .await
            .context("opening the sandbox")?;
        let products = Products::open(db.clone(), ledger.clone())
            .await
            .context("opening products")?
            .with_public_finance_min_bp(config.public_finance_min_bp)
            .context("the minimum public-finance share")?
            .with_zone_files(sandbox.at_rest().clone());
        Ok(App {
            released_outputs: SandboxReleases::new(sandbox.clone(), accounts.clone()),
            sandbox,
            products,
            accounts,
            ledger,
            db,
            metrics: Arc::new(Metrics::default()),
            config: Arc::new(config),
        })
    }

    /// The suspended organisations (their model runs are cancelled, not resumed).
    async fn suspended_orgs(&self) -> pdx_sandbox::Result<BTreeSet<OrgId>> {
        let orgs = self.accounts.orgs().await.map_err(|e| {
            pdx_sandbox::SandboxError::Internal(format!("reading the organisations: {e}"))
        })?;
        Ok(orgs
            .into_iter()
            .filter(|org| org.suspended)
            .map(|org| org.id)
            .collect())
    }

    /// Registers this server among those sharing the database (`addr` is where it
    /// listens) and resumes the sandbox's jobs that a restart cut off; a suspended
    /// organisation's model runs are cancelled instead, as its suspension cancels them.
    /// Called once by `pdx serve` after it bound its address and before it serves.
    pub async fn resume_jobs(&self, addr: &str) -> anyhow::Result<()> {
        let suspended = self.suspended_orgs().await?;
        self.sandbox
            .resume_jobs(addr, &suspended)
            .await
            .context("resuming interrupted jobs")
    }

    /// Takes over the jobs of servers on the same database that stopped (see
    /// `pdx_sandbox::cluster`); how many. The server polls it.
    pub async fn take_over_jobs(&self) -> anyhow::Result<usize> {
        self.sandbox
            .take_over_jobs(|| self.suspended_orgs())
            .await
            .context("taking over jobs")
    }

    /// On first start (no organisations), creates the platform organisation and an admin
    /// key, writes it to `<data-dir>/admin.key` (0600) and returns it so the caller can
    /// print it once. Returns None when already bootstrapped.
    pub async fn bootstrap(&self) -> anyhow::Result<Option<IssuedKey>> {
        if !self.accounts.is_empty().await? {
            return Ok(None);
        }
        let org = self.accounts.ensure_org("pdx-platform", "national").await?;
        let key = self
            .accounts
            .issue_key(&org.id, Role::Admin, "bootstrap admin")
            .await?;
        let path = self.config.admin_key_path();
        // A key file left from an earlier database is stale: its key no longer exists.
        let _ = std::fs::remove_file(&path);
        signing::write_secret_file(&path, key.key.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Some(key))
    }
}
