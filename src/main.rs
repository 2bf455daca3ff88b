//! The `pdx` command: server, demo, key management, ledger tools and benchmarks.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use pdx::auth::Role;
use pdx::config::{Config, ConfigArgs, LogFormat};
use pdx_ids::KeyId;

#[derive(Parser)]
#[command(
    name = "pdx",
    version,
    about = "Privacy-preserving public-data product and trading sandbox"
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (HTTPS only with --tls-cert and --tls-key).
    Serve {
        /// Listen address.
        #[arg(long, env = "PDX_ADDR")]
        addr: Option<String>,
        #[command(flatten)]
        tls: pdx::tls::TlsArgs,
    },
    /// Run the whole lifecycle against an in-process server and print a summary.
    Demo {
        /// Also write the summary as JSON to this file.
        #[arg(long)]
        summary_json: Option<PathBuf>,
    },
    /// Manage API keys directly in the database.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Ledger tools: verify, export, receipts.
    #[command(subcommand)]
    Ledger(pdx::cli::ledger::LedgerCommand),
    /// Benchmarks that print a table.
    #[command(subcommand)]
    Bench(pdx::cli::bench::BenchCommand),
    /// Private lookups (TFHE), client side: key generation and encrypted queries.
    #[command(subcommand)]
    Fhe(pdx::cli::fhe::FheCommand),
    /// Witness the ledger: check each new checkpoint's consistency with the last one
    /// seen, store it and cosign it. Exits 2 on a split view.
    Witness(pdx::cli::witness::WitnessArgs),
    /// Write an encrypted, consistent archive of the database and the data directory
    /// (zones and keys) while the server runs. Exits 2 if the archive was written but
    /// a file does not match its certificate or release hash (restore would refuse it).
    Backup(pdx::cli::backup::BackupArgs),
    /// Restore an archive into an empty or new --data-dir (a PostgreSQL archive into the
    /// empty database of --database-url), verifying the ledger and every file against
    /// its certificate or release hash; on any refusal nothing is left behind.
    Restore(pdx::cli::restore::RestoreArgs),
    /// Reconcile trading from the local database: paid − refunded = remitted +
    /// unsettled, to the fen. Exits 1 if it does not balance.
    Reconcile {
        /// Rows of the table.
        #[arg(long, value_enum, default_value = "total")]
        group_by: pdx::cli::reconcile::GroupBy,
    },
    /// The keys that seal the zone files: rotate the KEK, add a data key, verify every
    /// sealed file, seal an older data directory's files (with the server stopped).
    #[command(subcommand)]
    Zones(pdx::cli::zones::ZonesCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Issue a key (creating the organisation if needed) and print it once.
    Create {
        /// Organisation name.
        #[arg(long)]
        org: String,
        /// Role of the key.
        #[arg(long)]
        role: Role,
        /// Region of a newly created organisation.
        #[arg(long, default_value = "national")]
        region: String,
        /// Label.
        #[arg(long, default_value = "cli")]
        label: String,
    },
    /// Revoke a key by its public id. The last active admin key is refused: to rotate
    /// it, create the new admin key first, then revoke the old one.
    Revoke {
        /// Public key id.
        key_id: KeyId,
    },
    /// List keys (never secrets).
    List,
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PDX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { addr, tls } => {
            let mut config = Config::resolve(&cli.config, addr.as_deref())?;
            config.tls = tls.files();
            init_logging(config.log_format, "info");
            // A bad certificate or key stops the start here, before the database is opened.
            let tls = config
                .tls
                .as_ref()
                .map(pdx::tls::server_config)
                .transpose()?;
            let app = pdx::app::App::open(config).await?;
            pdx::server::serve(app, tls).await
        }
        Command::Demo { summary_json } => {
            let config = Config::resolve(&cli.config, None)?;
            init_logging(config.log_format, "warn");
            pdx::demo::run(&cli.config, summary_json.as_deref()).await
        }
        Command::Keys(cmd) => {
            let config = Config::resolve(&cli.config, None)?;
            init_logging(config.log_format, "warn");
            let app = pdx::app::App::open(config).await?;
            match cmd {
                KeysCommand::Create {
                    org,
                    role,
                    region,
                    label,
                } => {
                    let org = app.accounts.ensure_org(&org, &region).await?;
                    let key = app.accounts.issue_key(&org.id, role, &label).await?;
                    eprintln!(
                        "issued {} key {} for {} ({})",
                        key.role, key.key_id, org.name, org.id
                    );
                    println!("{}", key.key);
                }
                KeysCommand::Revoke { key_id } => {
                    let done = app.accounts.revoke_key(&key_id).await?;
                    anyhow::ensure!(done, "no active key with id {key_id}");
                    eprintln!("revoked {key_id}");
                }
                KeysCommand::List => {
                    for k in app.accounts.keys().await? {
                        let state = if k.revoked_ms.is_some() {
                            "revoked"
                        } else {
                            "active"
                        };
                        println!(
                            "{}\t{}\t{}\t{}\t{}",
                            k.key_id, k.org_id, k.role, state, k.label
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Ledger(cmd) => {
            let config = Config::resolve(&cli.config, None)?;
            init_logging(config.log_format, "warn");
            let code = pdx::cli::ledger::run(&config, cmd)
                .await
                .context("ledger")?;
            std::process::exit(code);
        }
        Command::Backup(args) => {
            let config = Config::resolve(&cli.config, None)?;
            init_logging(config.log_format, "warn");
            let code = pdx::cli::backup::run(&config, args)
                .await
                .context("backup")?;
            std::process::exit(code);
        }
        Command::Restore(args) => {
            let config = Config::resolve(&cli.config, None)?;
            init_logging(config.log_format, "warn");
            pdx::cli::restore::run(&config, args)
                .await
                .context("restore")
        }
        Command::Zones(command) => {
            let config = Config::resolve(&cli.config, None)?;
            init_logging(config.log_format, "warn");
            let code = pdx::cli::zones::run(&config, command).context("zones")?;
            std::process::exit(code);
        }
        Command::Reconcile { group_by } => {
            let config = Config::resolve(&cli.config, None)?;
            init_logging(config.log_format, "warn");
            let code = pdx::cli::reconcile::run(&config, group_by)
                .await
                .context("reconcile")?;
            std::process::exit(code);
        }
        Command::Witness(args) => {
            init_logging(LogFormat::Human, "warn");
            let code = pdx::cli::witness::run(args).await.context("witness")?;
            std::process::exit(code);
        }
        Command::Bench(cmd) => {
            init_logging(LogFormat::Human, "warn");
            pdx::cli::bench::run(cmd).await
        }
        Command::Fhe(cmd) => {
            init_logging(LogFormat::Human, "warn");
            pdx::cli::fhe::run(cmd).await
        }
    }
}
