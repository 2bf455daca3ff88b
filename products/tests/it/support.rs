//! Test databases (a temporary SQLite file; a fresh PostgreSQL schema per test when
//! `PDX_TEST_POSTGRES_URL` is set, required under `CI=true`) and product fixtures.

use std::path::Path;

use pdx_ids::{KeyId, OrgId};
use pdx_ledger::db::{Db, sqlite_url};
use pdx_ledger::note::NoteSigner;
use pdx_ledger::{Actor, Hash32, Ledger, LedgerConfig};
use pdx_products::{
    Clock, Licence, LicenceKind, NewProduct, Period, Product, Products, ReleasedSource,
    RevenueSplit, SourceDataset,
};

/// One test database with the ledger and products opened on it.
pub struct Env {
    pub name: &'static str,
    pub products: Products,
    pub ledger: Ledger,
    pub clock: Clock,
    pub dir: tempfile::TempDir,
    db: Db,
    schema: Option<(String, String)>,
}

/// 2026-11-05T10:00:00Z.
pub fn start_ms() -> i64 {
    Period::parse("2026-11").unwrap().from_ms + 4 * 86_400_000 + 10 * 3_600_000
}

fn signer() -> NoteSigner {
    NoteSigner::new(
        "test.pdx/products",
        ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
    )
    .unwrap()
}

impl Env {
    async fn open(name: &'static str, url: &str, schema: Option<(String, String)>) -> Env {
        let db = Db::connect(url).await.unwrap();
        Ledger::migrate(&db).await.unwrap();
        let ledger = Ledger::new(
            db.clone(),
            signer(),
            LedgerConfig {
                checkpoint_every: 0,
                ..LedgerConfig::default()
            },
        );
        let clock = Clock::manual(start_ms());
        let products = Products::open(db.clone(), ledger.clone())
            .await
            .unwrap()
            .with_clock(clock.clone());
        Env {
            name,
            products,
            ledger,
            clock,
            dir: tempfile::tempdir().unwrap(),
            db,
            schema,
        }
    }

    pub async fn sqlite() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let url = sqlite_url(&dir.path().join("pdx.db"));
        let mut env = Env::open("sqlite", &url, None).await;
        // Keep the database file's directory alive with the environment.
        env.dir = dir;
        env
    }

    pub async fn postgres() -> Option<Env> {
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
        Some(Env::open("postgres", &url, Some((base, schema))).await)
    }

    /// SQLite always, PostgreSQL when configured.
    pub async fn all() -> Vec<Env> {
        let mut out = vec![Env::sqlite().await];
        out.extend(Env::postgres().await);
        out
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

    /// A released output of `dev` with its Parquet file written under the temp dir.
    pub fn source(
        &self,
        dev: &str,
        release_id: &str,
        datasets: Vec<SourceDataset>,
    ) -> ReleasedSource {
        source_in(self.dir.path(), dev, release_id, datasets)
    }

    /// Creates and lists a product of `dev` over one release of one region.
    pub async fn listed(&self, dev: &str, region: &str, price: i64) -> Product {
        let rid = format!("rel_{}", hex::encode(rand::random::<[u8; 4]>()));
        let src = self.source(
            dev,
            &rid,
            vec![dataset(&format!("ds_{rid}"), region, false)],
        );
        let p = self
            .products
            .create_product(
                &actor(dev),
                new_product(LicenceKind::CommercialInternal, price, split(1500, 1000)),
                vec![src],
            )
            .await
            .unwrap();
        self.products.list(&exchange(), &p.id).await.unwrap()
    }
}

/// An organisation id (the fixtures are valid ones).
pub fn org(id: &str) -> OrgId {
    OrgId::parse(id).unwrap()
}

/// The API key id of `org`'s caller: 16 hex digits derived from the organisation.
pub fn key_of(org: &str) -> KeyId {
    KeyId::parse(&hex::encode(&blake3::hash(org.as_bytes()).as_bytes()[..8])).unwrap()
}

pub fn actor(org: &str) -> Actor {
    Actor {
        org: org.into(),
        key_id: key_of(org).into_string(),
    }
}

pub fn exchange() -> Actor {
    actor("org-exchange")
}

pub fn hash(text: &str) -> Hash32 {
    Hash32(*blake3::hash(text.as_bytes()).as_bytes())
}

pub fn dataset(id: &str, region: &str, research_only: bool) -> SourceDataset {
    SourceDataset {
        dataset_id: id.parse().unwrap(),
        title: format!("Dataset {id}"),
        source_department: "Municipal Bureau of Statistics".into(),
        provider_org: org(&format!("org-provider-{}", region.to_lowercase())),
        provider_region: region.into(),
        certificate_no: format!(
            "PDX-CERT-2026-{}",
            &hex::encode(blake3::hash(id.as_bytes()).as_bytes())[..6]
        ),
        content_hash: hash(id),
        acquired: "2026-10-01".into(),
        research_only,
    }
}

/// The bytes written as a release's "Parquet" file.
pub fn parquet_bytes(release_id: &str) -> Vec<u8> {
    let mut b = b"PAR1".to_vec();
    b.extend(release_id.as_bytes().iter().cycle().take(700));
    b.extend_from_slice(b"PAR1");
    b
}

pub fn source_in(
    dir: &Path,
    dev: &str,
    release_id: &str,
    datasets: Vec<SourceDataset>,
) -> ReleasedSource {
    let path = dir.join(format!("{release_id}.parquet"));
    std::fs::write(&path, parquet_bytes(release_id)).unwrap();
    ReleasedSource {
        release_id: release_id.parse().unwrap(),
        developer_org: org(dev),
        output_hash: Hash32(*blake3::hash(&parquet_bytes(release_id)).as_bytes()),
        output_path: path,
        model_hash: hash(&format!("model of {release_id}")),
        reviewers: vec![key_of("org-reviewer-1"), key_of("org-reviewer-2")],
        research_only_grant: false,
        grant_purpose: None,
        datasets,
    }
}

/// A split with the given public-finance and platform shares; the developer gets the rest.
pub fn split(public_finance_bp: u32, platform_bp: u32) -> RevenueSplit {
    RevenueSplit {
        public_finance_bp,
        platform_bp,
        developer_bp: 10_000 - public_finance_bp - platform_bp,
    }
}

pub fn new_product(kind: LicenceKind, price_minor: i64, split: RevenueSplit) -> NewProduct {
    NewProduct {
        title: "Commuting flows by district, 2026 Q3".into(),
        description: "Monthly origin-destination counts, DP-protected.".into(),
        licence: Licence {
            kind,
            term_days: 365,
            permitted_use: String::new(),
        },
        price_minor,
        currency: "CNY".into(),
        split,
    }
}
