//! The database handle every pdx crate shares: SQLite or PostgreSQL, chosen by URL.
//!
//! All SQL in pdx is written once, with `$1`-style placeholders, which both backends
//! accept through sqlx's `Any` driver (sqlx-sqlite binds `$N` by number). Types are
//! kept to what `Any` carries: `BIGINT`/`INTEGER`, `TEXT`, `BLOB`/`BYTEA`, `BOOLEAN`,
//! `DOUBLE`. Schema differences (triggers, binary types) live in per-backend migration
//! folders with identical table shapes.
//!
//! Writers that must serialise (the ledger) open their transaction with
//! [`Db::begin_write`]. On SQLite that is `BEGIN IMMEDIATE`, which takes the database
//! write lock up front instead of failing a read→write upgrade with `SQLITE_BUSY`; and
//! because SQLite's busy handler polls rather than queues (one of many waiting
//! connections can starve past any timeout), writers within a process first queue on an
//! async mutex held until commit, so each process has one contender for the file lock.
//! PostgreSQL queues row-lock waiters fairly and needs neither.
//!
//! Frequent small writes go through [`Db::write_grouped`] instead, which shares one
//! transaction and one commit among concurrent writers ([`crate::group`]).

use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyConnection, AnyPool, Executor, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// Which database a URL selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Embedded default: one file plus WAL.
    Sqlite,
    /// Production.
    Postgres,
}

/// Database errors, without the URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL scheme is neither sqlite nor postgres.
    #[error("unsupported database URL scheme (use sqlite:// or postgres://)")]
    UnsupportedScheme,
    /// sqlx failed.
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The group-committed transaction this write ran in failed to start or commit, so
    /// nothing of it was written ([`crate::group`]).
    #[error("group commit failed: {0}")]
    Group(Arc<DbError>),
    /// The ledger entries a group staged could not be written, so nothing of the group
    /// was committed.
    #[error("writing the group's ledger entries failed: {0}")]
    GroupLedger(String),
    /// The group commit's flusher stopped before answering (nothing of the write's group
    /// was committed).
    #[error("group commit stopped before it answered; the write was not committed")]
    GroupLost,
    /// The SQLite C library failed (used directly by the ledger's fast scan).
    #[error("sqlite error {code}: {message}")]
    Sqlite {
        /// SQLite result code.
        code: i32,
        /// SQLite's message.
        message: String,
    },
}

/// How long a SQLite writer waits for the write lock before giving up.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// A pool plus the backend it talks to.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// Queue for SQLite writers in this process (see the module docs).
    writer: Arc<Mutex<()>>,
    /// Writes waiting for a group commit ([`crate::group`]).
    group: Arc<crate::group::Group>,
}

/// A write transaction; derefs to the connection, so `&mut *tx` is an executor.
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    _queue: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    /// Commits.
    pub async fn commit(self) -> Result<(), DbError> {
        Ok(self.tx.commit().await?)
    }

    /// Rolls back.
    pub async fn rollback(self) -> Result<(), DbError> {
        Ok(self.tx.rollback().await?)
    }
}

impl Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

impl Backend {
    /// The backend a URL names.
    pub fn from_url(url: &str) -> Result<Backend, DbError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(DbError::UnsupportedScheme)
        }
    }
}

/// The SQLite URL of a file, created if missing.
pub fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

impl Db {
    /// Connects with default pool settings.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        Self::connect_with(url, 16).await
    }

    /// Connects with at most `max_connections` connections.
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let options = AnyConnectOptions::from_str(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(60))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        let busy =
                            format!("PRAGMA busy_timeout = {}", SQLITE_BUSY_TIMEOUT.as_millis());
                        conn.execute(sqlx::AssertSqlSafe(busy)).await?;
                        // WAL is a property of the file; switching needs a moment with no
                        // other connection, so it is set once and kept thereafter.
                        let mode: (String,) = sqlx::query_as("PRAGMA journal_mode")
                            .fetch_one(&mut *conn)
                            .await?;
                        if !mode.0.eq_ignore_ascii_case("wal") {
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                        }
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA cache_size = -32768").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Db {
            pool,
            backend,
            writer: Arc::new(Mutex::new(())),
            group: Arc::default(),
        })
    }

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The group-commit queue shared by this handle's clones.
    pub(crate) fn group(&self) -> &crate::group::Group {
        &self.group
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a transaction that will write; see the module docs.
    pub async fn begin_write(&self) -> Result<WriteTx, DbError> {
        Ok(match self.backend {
            Backend::Sqlite => {
                let queue = self.writer.clone().lock_owned().await;
                WriteTx {
                    tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
                    _queue: Some(queue),
                }
            }
            Backend::Postgres => WriteTx {
                tx: self.pool.begin().await?,
                _queue: None,
            },
        })
    }

    /// The file of a SQLite database (`None` for PostgreSQL and in-memory databases).
    pub async fn sqlite_file(&self) -> Result<Option<std::path::PathBuf>, DbError> {
        if self.backend != Backend::Sqlite {
            return Ok(None);
        }
        let file: Option<String> =
            sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                .fetch_optional(&self.pool)
                .await?;
        Ok(file.filter(|f| !f.is_empty()).map(std::path::PathBuf::from))
    }

    /// True if the database answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Runs one crate's migrations, tracked in that crate's own table so that the
    /// crates' migration histories do not collide.
    pub async fn migrate(&self, set: MigrationSet) -> Result<(), DbError> {
        let mut migrator = match self.backend {
            Backend::Sqlite => set.sqlite,
            Backend::Postgres => set.postgres,
        };
        migrator.dangerous_set_table_name(set.table);
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// One crate's migrations for both backends.
pub struct MigrationSet {
    /// Name of the table recording which migrations ran.
    pub table: &'static str,
    /// SQLite migrations.
    pub sqlite: Migrator,
    /// PostgreSQL migrations (same tables, same columns).
    pub postgres: Migrator,
}

/// The ledger's own migrations.
pub fn ledger_migrations() -> MigrationSet {
    MigrationSet {
        table: "_pdx_ledger_migrations",
        sqlite: sqlx::migrate!("./migrations/sqlite"),
        postgres: sqlx::migrate!("./migrations/postgres"),
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}
