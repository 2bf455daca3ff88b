//! `pdx backup` and `pdx restore` (XT Art.35–36; GD18 Art.27), on SQLite and PostgreSQL.
//!
//! The round trip: a market (a certified dataset version, a model run, a released
//! output, a listed product and an order) is backed up by the real `pdx backup` while
//! the server runs and orders keep arriving; the archive holds no plaintext; it is
//! restored by `pdx restore` into a new directory (and, for PostgreSQL, a database
//! created for the test); `pdx serve` on the restored data serves the dataset, the
//! release and the order, and `pdx ledger verify` passes. Restoring into a database
//! that is no longer empty is refused.
//!
//! The refusals: a byte flipped in the middle of the archive, a truncated archive, a
//! wrong key, a target directory that is not empty, and a zone file altered before the
//! backup (its archive restores to a hash mismatch naming the dataset and the hashes).
//! After each refusal the target directory is as it was: absent, or empty, or holding
//! only what was there.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pdx_sandbox::catalog::OpenAttribute;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Executor;

use crate::products::{SPLIT, dataset, market, org_key, place, product_body};
use crate::restart::Serve;
use crate::support::{TestServer, post};

const PDX: &str = env!("CARGO_BIN_EXE_pdx");

fn text(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// Runs `pdx` with `args`, nothing from the environment pointing it elsewhere; returns
/// (exit code, stdout and stderr).
pub(crate) async fn pdx(args: Vec<String>) -> (Option<i32>, String) {
    let mut cmd = tokio::process::Command::new(PDX);
    cmd.args(args);
    for var in ["PDX_CONFIG", "PDX_DATA_DIR", "PDX_DATABASE_URL", "PDX_ADDR"] {
        cmd.env_remove(var);
    }
    let out = cmd.output().await.unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The `--data-dir` (and `--database-url`) flags of a data directory.
fn place_args(dir: &Path, url: Option<&str>) -> Vec<String> {
    let mut args = vec!["--data-dir".to_string(), text(dir)];
    if let Some(url) = url {
        args.extend(["--database-url".to_string(), url.to_string()]);
    }
    args
}

/// `pdx backup` of a running test server's data, with the default key unless `key`.
async fn backup(t: &TestServer, out: &Path, key: Option<&Path>) -> (Option<i32>, String) {
    let mut args = place_args(t.dir.path(), t.database_url.as_deref());
    args.extend(["backup".to_string(), "--out".to_string(), text(out)]);
    if let Some(key) = key {
        args.extend(["--key-file".to_string(), text(key)]);
    }
    pdx(args).await
}

/// `pdx restore` of `archive` into `dir` (and the database `url`).
async fn restore(
    archive: &Path,
    dir: &Path,
    url: Option<&str>,
    key: &Path,
) -> (Option<i32>, String) {
    let mut args = place_args(dir, url);
    args.extend([
        "restore".to_string(),
        text(archive),
        "--key-file".to_string(),
        text(key),
    ]);
    pdx(args).await
}

/// A new, empty PostgreSQL database on the test server; returns (name, URL).
async fn fresh_database() -> (String, String) {
    let base = std::env::var("PDX_TEST_POSTGRES_URL").unwrap();
    let name = format!("pdx_restore_{}", hex::encode(rand::random::<[u8; 6]>()));
    let db = pdx_ledger::db::Db::connect_with(&base, 1).await.unwrap();
    db.pool()
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    db.close().await;
    let mut url = reqwest::Url::parse(&base).unwrap();
    url.set_path(&format!("/{name}"));
    url.set_query(None);
    (name, url.to_string())
}

async fn drop_database(name: &str) {
    let base = std::env::var("PDX_TEST_POSTGRES_URL").unwrap();
    let db = pdx_ledger::db::Db::connect_with(&base, 1).await.unwrap();
    db.pool()
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .await
        .unwrap();
    db.close().await;
}

/// True if `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The names in a directory.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_backup_taken_while_the_server_writes_restores_and_verifies_on_both_backends() {
    for postgres in [false, true] {
        let Some(m) = market(postgres).await else {
            continue;
        };
        let t = &m.t;
        let b = t.backend;
        let release_id = m.release["release_id"].as_str().unwrap().to_string();
        let output_id = m.release["id"].as_str().unwrap().to_string();
        let (s, product) = post(
            t,
            &m.dev,
            "/v1/products",
            product_body(json!([release_id]), "commercial_internal", SPLIT),
        )
        .await;
        assert_eq!(s, 201, "{b}: {product}");
        let pid = product["id"].as_str().unwrap().to_string();
        let (s, listed) = t
            .call(
                Some(&m.exchange),
                Method::POST,
                &format!("/v1/products/{pid}/list"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{b}: {listed}");
        let resp = place(
            t,
            &m.buyer,
            Some("before-backup"),
            json!({"product_id": pid}),
        )
        .await;
        assert_eq!(resp.status().as_u16(), 201, "{b}");
        let order: Value = resp.json().await.unwrap();
        let oid = order["id"].as_str().unwrap().to_string();
        let (s, version) = t
            .get(
                &m.provider,
                &format!("/v1/datasets/{}/versions/1", m.dataset),
            )
            .await;
        assert_eq!(s, 200, "{b}: {version}");

        // Orders keep arriving, each a transaction and a ledger entry, while the backup
        // runs against the live server.
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (http, url, key, pid, stop) = (
                t.http.clone(),
                t.url("/v1/orders"),
                m.buyer.clone(),
                pid.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut placed = 0u32;
                while !stop.load(Ordering::Relaxed) && placed < 300 {
                    let r = http
                        .post(&url)
                        .bearer_auth(&key)
                        .header("Idempotency-Key", format!("during-backup-{placed}"))
                        .json(&json!({"product_id": pid}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status().as_u16(), 201);
                    placed += 1;
                }
                placed
            })
        };
        let scratch = tempfile::tempdir().unwrap();
        let archive = scratch.path().join("pdx.backup");
        let (code, out) = backup(t, &archive, None).await;
        stop.store(true, Ordering::Relaxed);
        let placed = writer.await.unwrap();
        assert_eq!(code, Some(0), "{b}: {out}");
        assert!(placed > 0, "{b}: no order was placed during the backup");

        // The key was made private in the data directory; the archive holds no plaintext.
        let key = t.dir.path().join("backup.key");
        assert!(key.is_file(), "{b}: {out}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{b}");
        }
        let bytes = std::fs::read(&archive).unwrap();
        assert!(bytes.starts_with(b"PDXBKUP\0"), "{b}");
        // (Long strings only: a short one could turn up in random bytes by chance.)
        let plaintexts: [&[u8]; 5] = [
            b"Enterprise electricity",
            b"PDX-CERT-",
            b"SQLite format 3",
            m.dataset.as_bytes(),
            oid.as_bytes(),
        ];
        for plain in plaintexts {
            assert!(
                !contains(&bytes, plain),
                "{b}: the archive shows {:?}",
                String::from_utf8_lossy(plain)
            );
        }

        // Restore into a new directory (and a new database).
        let target = scratch.path().join("restored");
        let database = if postgres {
            Some(fresh_database().await)
        } else {
            None
        };
        let url = database.as_ref().map(|(_, url)| url.clone());
        let (code, out) = restore(&archive, &target, url.as_deref(), &key).await;
        assert_eq!(code, Some(0), "{b}: {out}");
        assert!(out.contains("the ledger verifies"), "{b}: {out}");
        assert!(target.join("ledger.key").is_file(), "{b}");
        assert!(target.join("pseudonym.key").is_file(), "{b}");
        // The zones' KEK travels inside the encrypted archive, or nothing would open.
        assert!(target.join("zones-kek.key").is_file(), "{b}");
        assert!(target.join("zones/keyring.json").is_file(), "{b}");
        assert_eq!(target.join("pdx.db").is_file(), !postgres, "{b}");
        assert!(
            !target.join("backup.key").exists(),
            "{b}: the backup key is never archived"
        );

        // A server on the restored data serves what was there.
        let mut serve = Serve::start(
            b,
            &target,
            url.as_deref(),
            None,
            scratch.path().join("serve.log"),
        )
        .await;
        let ds = serve
            .get_ok(&m.provider, &format!("/v1/datasets/{}", m.dataset))
            .await;
        assert_eq!(ds["id"], m.dataset.as_str(), "{b}");
        let v = serve
            .get_ok(
                &m.provider,
                &format!("/v1/datasets/{}/versions/1", m.dataset),
            )
            .await;
        assert_eq!(v["content_hash"], version["content_hash"], "{b}");
        assert_eq!(v["certificate_no"], version["certificate_no"], "{b}");
        let output = serve
            .get_ok(&m.dev, &format!("/v1/outputs/{output_id}"))
            .await;
        assert_eq!(output["status"], "released", "{b}: {output}");
        assert_eq!(output["release_id"], release_id.as_str(), "{b}");
        assert_eq!(output["output_hash"], m.release["output_hash"], "{b}");
        let restored_order = serve.get_ok(&m.buyer, &format!("/v1/orders/{oid}")).await;
        assert_eq!(restored_order["id"], oid.as_str(), "{b}");
        assert_eq!(restored_order["status"], order["status"], "{b}");
        let p = serve.get_ok(&m.buyer, &format!("/v1/products/{pid}")).await;
        assert_eq!(p["status"], "listed", "{b}");
        serve.kill().await;

        let mut args = place_args(&target, url.as_deref());
        args.extend(["ledger".to_string(), "verify".to_string()]);
        let (code, out) = pdx(args).await;
        assert_eq!(code, Some(0), "{b}: {out}");
        assert!(out.starts_with("ok:"), "{b}: {out}");

        if let Some((name, url)) = &database {
            // The database is no longer empty: a second restore into it is refused and
            // leaves no directory behind.
            let again = scratch.path().join("again");
            let (code, out) = restore(&archive, &again, Some(url.as_str()), &key).await;
            assert_eq!(code, Some(1), "{b}: {out}");
            assert!(out.contains("not empty"), "{b}: {out}");
            assert!(!again.exists(), "{b}");
            drop_database(name).await;
        }
        m.t.stop().await;
    }
}

#[tokio::test]
async fn damaged_archives_wrong_keys_and_occupied_targets_are_refused_leaving_nothing() {
    let t = TestServer::start(false).await.unwrap();
    let (_, provider) = org_key(&t, "power-bureau", "provider", "guangzhou").await;
    let ds = dataset(
        &t,
        &provider,
        "Enterprise electricity",
        OpenAttribute::Unconditional,
        false,
    )
    .await;
    let scratch = tempfile::tempdir().unwrap();
    let archive = scratch.path().join("pdx.backup");
    let key = scratch.path().join("elsewhere.key");
    let (code, out) = backup(&t, &archive, Some(&key)).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(key.is_file());
    assert!(
        !t.dir.path().join("backup.key").exists(),
        "--key-file puts the key there, not in the data directory"
    );
    // The archive as written restores, so each refusal below is the damage's doing.
    let fine = scratch.path().join("fine");
    let (code, out) = restore(&archive, &fine, None, &key).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1 dataset version(s)"), "{out}");
    let good = std::fs::read(&archive).unwrap();

    let write = |name: &str, bytes: &[u8]| -> PathBuf {
        let p = scratch.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    // What each refusal says (a flip that lands on a chunk's length may read as a cut).
    let cases: Vec<(&str, PathBuf, PathBuf, &[&str])> = vec![
        (
            "a byte flipped in the middle",
            write("flipped.backup", &flipped[..]),
            key.clone(),
            &["damaged", "truncated"][..],
        ),
        (
            "the last 100 bytes cut",
            write("cut.backup", &good[..good.len() - 100]),
            key.clone(),
            &["truncated"][..],
        ),
        (
            "another key",
            archive.clone(),
            write("other.key", hex::encode([7u8; 32]).as_bytes()),
            &["wrong key"][..],
        ),
        (
            "not an archive",
            write("junk.backup", &[0u8; 4096][..]),
            key.clone(),
            &["not a pdx backup"][..],
        ),
    ];
    for (what, file, key, says) in &cases {
        // Into a new directory: it does not exist afterwards.
        let target = scratch
            .path()
            .join(format!("new-{}", what.replace(' ', "-")));
        let (code, out) = restore(file, &target, None, key).await;
        assert_eq!(code, Some(1), "{what}: {out}");
        assert!(says.iter().any(|s| out.contains(s)), "{what}: {out}");
        assert!(
            !target.exists(),
            "{what}: {} was left behind",
            target.display()
        );
        // Into an empty directory: it is still there, and still empty.
        let empty = scratch
            .path()
            .join(format!("empty-{}", what.replace(' ', "-")));
        std::fs::create_dir(&empty).unwrap();
        let (code, out) = restore(file, &empty, None, key).await;
        assert_eq!(code, Some(1), "{what}: {out}");
        assert!(listing(&empty).is_empty(), "{what}: {:?}", listing(&empty));
    }

    // A directory that is not empty is refused, and nothing in it changes.
    let occupied = scratch.path().join("occupied");
    std::fs::create_dir(&occupied).unwrap();
    std::fs::write(occupied.join("keep.txt"), b"mine").unwrap();
    let (code, out) = restore(&archive, &occupied, None, &key).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("not empty"), "{out}");
    assert_eq!(listing(&occupied), vec!["keep.txt".to_string()]);
    assert_eq!(std::fs::read(occupied.join("keep.txt")).unwrap(), b"mine");
    // A SQLite archive goes to <data dir>/pdx.db and nowhere else.
    let elsewhere = scratch.path().join("elsewhere");
    let other_sqlite = format!("sqlite://{}/x.db", scratch.path().display());
    let (code, out) = restore(&archive, &elsewhere, Some(other_sqlite.as_str()), &key).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("--database-url"), "{out}");
    assert!(!elsewhere.exists());
    assert!(ds.starts_with("ds_"));
    t.stop().await;
}

#[tokio::test]
async fn a_zone_file_altered_before_the_backup_is_refused_on_restore_by_its_certificate() {
    let t = TestServer::start(false).await.unwrap();
    let (_, provider) = org_key(&t, "power-bureau", "provider", "guangzhou").await;
    let ds = dataset(
        &t,
        &provider,
        "Enterprise electricity",
        OpenAttribute::Unconditional,
        false,
    )
    .await;
    let (s, version) = t
        .get(&provider, &format!("/v1/datasets/{ds}/versions/1"))
        .await;
    assert_eq!(s, 200, "{version}");
    let certified = version["content_hash"].as_str().unwrap().to_string();
    // The version's file, content-addressed by its certified hash: one byte changed.
    let file = t
        .dir
        .path()
        .join("zones/deid")
        .join(&certified[..2])
        .join(format!("{certified}.parquet"));
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(file, &bytes).unwrap();
    // The file is sealed: a changed byte fails its segment's authentication, so the
    // reports name that instead of a hash of the altered plaintext.
    let altered = "failed authentication";

    let scratch = tempfile::tempdir().unwrap();
    let archive = scratch.path().join("pdx.backup");
    let key = scratch.path().join("backup.key");
    let (code, out) = backup(&t, &archive, Some(&key)).await;
    // Written (a copy of what there is beats none), but flagged: it will not restore.
    assert_eq!(code, Some(2), "{out}");
    assert!(archive.is_file(), "{out}");
    assert!(out.contains(&ds) && out.contains(altered), "{out}");

    let target = scratch.path().join("restored");
    let (code, out) = restore(&archive, &target, None, &key).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("dataset {ds} version 1")),
        "the refusal names the version: {out}"
    );
    assert!(
        out.contains(&certified) && out.contains(altered),
        "and the certified hash and why the file matches none: {out}"
    );
    assert!(!target.exists(), "{out}");
    t.stop().await;
}
