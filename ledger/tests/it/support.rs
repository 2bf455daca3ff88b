//! Test databases: a temporary SQLite file, and (when `PDX_TEST_POSTGRES_URL` is set) a
//! fresh PostgreSQL schema per test. Under `CI=true` a missing PostgreSQL URL fails the
//! test instead of skipping it.

use pdx_ledger::db::{Db, sqlite_url};
use pdx_ledger::note::NoteSigner;
use pdx_ledger::{Actor, Ledger, LedgerConfig};

/// One test database.
pub struct TestDb {
    pub name: &'static str,
    pub url: String,
    pub db: Db,
    pub dir: tempfile::TempDir,
    schema: Option<(String, String)>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = sqlite_url(&dir.path().join("ledger.db"));
        let db = Db::connect(&url).await.unwrap();
        Ledger::migrate(&db).await.unwrap();
        TestDb {
            name: "sqlite",
            url,
            db,
            dir,
            schema: None,
        }
    }

    pub async fn postgres() -> Option<TestDb> {
        let Ok(base) = std::env::var("PDX_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but PDX_TEST_POSTGRES_URL is not set: PostgreSQL tests must run"
            );
            eprintln!("PDX_TEST_POSTGRES_URL not set: skipping the PostgreSQL half");
            return None;
        };
        let schema = format!("t_{}", hex::encode(rand::random::<[u8; 6]>()));
        let admin = Db::connect_with(&base, 1).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(admin.pool())
            .await
            .unwrap();
        admin.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options[search_path]={schema}");
        let db = Db::connect(&url).await.unwrap();
        Ledger::migrate(&db).await.unwrap();
        Some(TestDb {
            name: "postgres",
            url,
            db,
            dir: tempfile::tempdir().unwrap(),
            schema: Some((base, schema)),
        })
    }

    /// SQLite always, PostgreSQL when configured.
    pub async fn all() -> Vec<TestDb> {
        let mut out = vec![TestDb::sqlite().await];
        out.extend(TestDb::postgres().await);
        out
    }

    pub fn ledger(&self, signer: NoteSigner, checkpoint_every: u64) -> Ledger {
        Ledger::new(
            self.db.clone(),
            signer,
            LedgerConfig {
                checkpoint_every,
                ..LedgerConfig::default()
            },
        )
    }

    /// Drops the PostgreSQL schema (SQLite files go with the temp dir).
    pub async fn cleanup(self) {
        self.db.close().await;
        if let Some((base, schema)) = self.schema {
            let admin = Db::connect_with(&base, 1).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(admin.pool())
                .await
                .unwrap();
            admin.close().await;
        }
    }
}

pub fn signer(name: &str) -> NoteSigner {
    NoteSigner::new(
        name,
        ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
    )
    .unwrap()
}

/// An actor of `org` with the tests' key id.
pub fn actor(org: &str) -> Actor {
    Actor {
        org: org.into(),
        key_id: "k-test".into(),
    }
}
