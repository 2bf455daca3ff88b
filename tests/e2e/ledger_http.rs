//! The ledger over HTTP and through the CLI: visibility, proofs, receipts checked offline.

use std::process::Command;

use pdx_ledger::kinds::{Release, Suspension, Transaction};
use pdx_ledger::merkle::{self, Blake3Hasher, MerkleHasher};
use pdx_ledger::note::{NoteVerifier, open_checkpoint};
use pdx_ledger::{Actor, Hash32, Receipt};
use reqwest::Method;

use crate::support::TestServer;

const PDX: &str = env!("CARGO_BIN_EXE_pdx");

fn hashes(v: &serde_json::Value) -> Vec<merkle::Hash> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| Hash32::from_hex(h.as_str().unwrap()).unwrap().0)
        .collect()
}

#[tokio::test]
async fn entries_proofs_and_receipts_respect_visibility_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (dev_org, dev) = t.key_for("dev-co", "developer").await;
        let (buyer_org, buyer) = t.key_for("buyer-co", "buyer").await;
        let (_, stranger) = t.key_for("other-co", "developer").await;
        let (_, sup) = t.key_for("regulator", "supervisor").await;
        let actor = Actor {
            org: dev_org.clone(),
            key_id: "k".into(),
        };
        let sale = Transaction {
            order_id: "o1".into(),
            product_id: "p1".into(),
            buyer_org: buyer_org.clone(),
            seller_org: dev_org.clone(),
            amount_minor: 9_900,
            currency: "CNY".into(),
            payment_ref: "pay-1".into(),
        };
        t.app.ledger.append_now(&actor, &sale).await.unwrap(); // 0
        let release = Release {
            release_id: "r1".into(),
            job_id: "j1".into(),
            developer_org: dev_org.clone(),
            output_hash: Hash32([3; 32]),
            model_hash: Hash32([4; 32]),
            dataset_versions: vec!["adult@1".into()],
            checks: vec!["threshold".into()],
            reviewers: vec!["rev".into()],
        };
        t.app
            .ledger
            .append_now(&Actor::system(), &release)
            .await
            .unwrap(); // 1
        let susp = Suspension {
            org: "org-x".into(),
            action: "suspended".into(),
            reason: "test".into(),
        };
        t.app
            .ledger
            .append_now(&Actor::system(), &susp)
            .await
            .unwrap(); // 2

        let seqs = |v: &serde_json::Value| {
            v["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_u64().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            seqs(&t.get(&sup, "/v1/ledger/entries").await.1),
            vec![0, 1, 2],
            "{b}"
        );
        assert_eq!(
            seqs(&t.get(&dev, "/v1/ledger/entries").await.1),
            vec![0, 1, 2],
            "{b}"
        );
        assert_eq!(
            seqs(&t.get(&buyer, "/v1/ledger/entries").await.1),
            vec![0, 2],
            "{b}"
        );
        assert_eq!(
            seqs(&t.get(&stranger, "/v1/ledger/entries").await.1),
            vec![2],
            "{b}"
        );
        assert_eq!(
            seqs(&t.get(&sup, "/v1/ledger/entries?from=1&limit=1").await.1),
            vec![1]
        );
        for path in [
            "/v1/ledger/entries/0",
            "/v1/ledger/receipt/0",
            "/v1/ledger/proof/inclusion?seq=0",
        ] {
            assert_eq!(
                t.get(&stranger, path).await.0,
                404,
                "{b}: {path} leaked to a stranger"
            );
            assert_eq!(
                t.get(&buyer, path).await.0,
                200,
                "{b}: {path} hidden from the buyer"
            );
        }
        assert_eq!(t.get(&sup, "/v1/ledger/entries?limit=0").await.0, 400);
        assert_eq!(t.get(&sup, "/v1/ledger/entries?from=-3").await.0, 400);
        assert_eq!(t.get(&sup, "/v1/ledger/receipt/99").await.0, 404);
        assert_eq!(
            t.get(&sup, "/v1/ledger/proof/consistency?from=3&to=1")
                .await
                .0,
            400
        );
        assert_eq!(
            t.get(&sup, "/v1/ledger/proof/consistency?from=1&to=99")
                .await
                .0,
            404
        );

        // The public key and a signed checkpoint, checked by the client alone.
        let (_, vkey) = t.get(&buyer, "/v1/ledger/public-key").await;
        let key = NoteVerifier::parse(vkey.as_str().unwrap().trim()).unwrap();
        let (s, _) = t
            .call(Some(&sup), Method::POST, "/v1/ledger/checkpoint", None)
            .await;
        assert_eq!(s, 201);
        let (_, note) = t.get(&stranger, "/v1/ledger/checkpoint").await;
        let cp = open_checkpoint(note.as_str().unwrap(), &key).unwrap();
        assert_eq!(cp.size, 3);

        let (_, proof) = t
            .get(&buyer, "/v1/ledger/proof/inclusion?seq=0&size=3")
            .await;
        let (_, entry) = t.get(&buyer, "/v1/ledger/entries/0").await;
        let leaf = Blake3Hasher::leaf(
            &Hash32::from_hex(entry["entry_hash"].as_str().unwrap())
                .unwrap()
                .0,
        );
        merkle::verify_inclusion::<Blake3Hasher>(0, 3, &leaf, &hashes(&proof["proof"]), &cp.root)
            .unwrap();
        let (_, cons) = t
            .get(&stranger, "/v1/ledger/proof/consistency?from=1&to=3")
            .await;
        let root1 = t.app.ledger.root_at(1).await.unwrap().0;
        merkle::verify_consistency::<Blake3Hasher>(1, 3, &hashes(&cons["proof"]), &root1, &cp.root)
            .unwrap();

        // A receipt verifies offline, and through `pdx ledger verify-receipt`.
        let (s, receipt) = t.get(&buyer, "/v1/ledger/receipt/0").await;
        assert_eq!(s, 200);
        let parsed: Receipt = serde_json::from_value(receipt.clone()).unwrap();
        parsed.verify(&key).unwrap();
        let file = t.dir.path().join("receipt.json");
        std::fs::write(&file, receipt.to_string()).unwrap();
        let ok = Command::new(PDX)
            .args([
                "ledger",
                "verify-receipt",
                file.to_str().unwrap(),
                "--key",
                &key.to_vkey(),
            ])
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stdout)
        );
        let other = pdx_ledger::note::NoteSigner::new(
            key.name(),
            ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
        )
        .unwrap();
        let bad = Command::new(PDX)
            .args([
                "ledger",
                "verify-receipt",
                file.to_str().unwrap(),
                "--key",
                &other.verifier().to_vkey(),
            ])
            .output()
            .unwrap();
        assert_eq!(
            bad.status.code(),
            Some(1),
            "a receipt verified under another key"
        );
        t.stop().await;
    }
}

/// `GET /v1/ledger/entries?kind=` returns only entries of that kind, pages through
/// them without short pages, still applies visibility, and refuses unknown kinds with a
/// 400 that lists the accepted ones.
#[tokio::test]
async fn entries_filter_by_kind_page_and_respect_visibility_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (dev_org, dev) = t.key_for("kind-dev", "developer").await;
        let (buyer_org, buyer) = t.key_for("kind-buyer", "buyer").await;
        let (_, stranger) = t.key_for("kind-other", "developer").await;
        let (_, sup) = t.key_for("kind-regulator", "supervisor").await;
        let actor = Actor {
            org: dev_org.clone(),
            key_id: "k".into(),
        };
        // Transactions interleaved with suspensions, so that a filter applied after
        // reading a page (rather than in the query) would return the wrong entries.
        let (mut want_tx, mut want_susp) = (Vec::new(), Vec::new());
        for i in 0..7 {
            let sale = Transaction {
                order_id: format!("o{i}"),
                product_id: "p1".into(),
                buyer_org: buyer_org.clone(),
                seller_org: dev_org.clone(),
                amount_minor: 100 + i,
                currency: "CNY".into(),
                payment_ref: format!("pay-{i}"),
            };
            want_tx.push(t.app.ledger.append_now(&actor, &sale).await.unwrap().seq);
            if i % 2 == 0 {
                let susp = Suspension {
                    org: format!("org-{i}"),
                    action: "suspended".into(),
                    reason: "test".into(),
                };
                let appended = t
                    .app
                    .ledger
                    .append_now(&Actor::system(), &susp)
                    .await
                    .unwrap();
                want_susp.push(appended.seq);
            }
        }
        assert_eq!((want_tx.len(), want_susp.len()), (7, 4), "{b}");

        let listed = |v: &serde_json::Value| -> Vec<(u64, String)> {
            v["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["seq"].as_u64().unwrap(),
                        e["kind"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        };
        let only = |v: &serde_json::Value, kind: &str| -> Vec<u64> {
            let got = listed(v);
            assert!(
                got.iter().all(|(_, k)| k == kind),
                "{b}: asked for {kind}, got {got:?}"
            );
            got.into_iter().map(|(seq, _)| seq).collect()
        };

        // One kind, everything at once.
        let (s, page) = t.get(&sup, "/v1/ledger/entries?kind=suspension").await;
        assert_eq!(s, 200, "{b}: {page}");
        assert_eq!(only(&page, "suspension"), want_susp, "{b}");
        assert!(page["next_from"].is_null(), "{b}: {page}");
        let (_, page) = t.get(&sup, "/v1/ledger/entries?kind=transaction").await;
        assert_eq!(only(&page, "transaction"), want_tx, "{b}");

        // Paged two at a time by following next_from: full pages, nothing skipped.
        let mut paged: Vec<u64> = Vec::new();
        let (mut from, mut pages) = (0u64, 0u32);
        loop {
            let path = format!("/v1/ledger/entries?kind=suspension&limit=2&from={from}");
            let (s, page) = t.get(&sup, &path).await;
            assert_eq!(s, 200, "{b}: {page}");
            let seqs = only(&page, "suspension");
            pages += 1;
            assert!(pages <= 3, "{b}: paging does not end");
            paged.extend(seqs.iter().copied());
            match page["next_from"].as_u64() {
                Some(next) => {
                    assert_eq!(seqs.len(), 2, "{b}: a short page before the end");
                    assert_eq!(Some(next), seqs.last().map(|seq| seq + 1), "{b}");
                    from = next;
                }
                None => break,
            }
        }
        assert_eq!(paged, want_susp, "{b}");
        assert_eq!(pages, 3, "{b}: 4 entries in pages of 2, then an empty page");

        // Visibility still applies: transactions are private to their parties.
        let (_, page) = t.get(&buyer, "/v1/ledger/entries?kind=transaction").await;
        assert_eq!(only(&page, "transaction"), want_tx, "{b}: buyer");
        let (_, page) = t.get(&dev, "/v1/ledger/entries?kind=transaction").await;
        assert_eq!(only(&page, "transaction"), want_tx, "{b}: seller");
        let (s, page) = t
            .get(&stranger, "/v1/ledger/entries?kind=transaction")
            .await;
        assert_eq!(s, 200, "{b}: {page}");
        assert!(
            listed(&page).is_empty(),
            "{b}: transactions leaked to a stranger: {page}"
        );
        let (_, page) = t.get(&stranger, "/v1/ledger/entries?kind=suspension").await;
        assert_eq!(only(&page, "suspension"), want_susp, "{b}: public kind");

        // A known kind with no entries is an empty page; an unknown one is a 400 that
        // lists the accepted kinds (without echoing the input).
        let (s, page) = t.get(&sup, "/v1/ledger/entries?kind=refund").await;
        assert_eq!(s, 200, "{b}: {page}");
        assert!(listed(&page).is_empty(), "{b}: {page}");
        let (s, problem) = t.get(&sup, "/v1/ledger/entries?kind=suspensionz").await;
        assert_eq!(s, 400, "{b}: {problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains("suspension") && detail.contains("transaction"),
            "{b}: {detail}"
        );
        assert!(!detail.contains("suspensionz"), "{b}: {detail}");
        t.stop().await;
    }
}

#[tokio::test]
async fn cli_exports_and_verifies_the_ledger_offline() {
    let t = TestServer::start(false).await.unwrap();
    let actor = Actor {
        org: "org-a".into(),
        key_id: "k".into(),
    };
    for i in 0..25 {
        let s = Suspension {
            org: format!("o{i}"),
            action: "suspended".into(),
            reason: "r".into(),
        };
        t.app.ledger.append_now(&actor, &s).await.unwrap();
    }
    t.app.ledger.checkpoint().await.unwrap();
    let dir = t.dir.path().to_str().unwrap().to_string();
    let export = t.dir.path().join("ledger.jsonl");
    let out = Command::new(PDX)
        .args([
            "--data-dir",
            &dir,
            "ledger",
            "export",
            "--out",
            export.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = t.app.ledger.verifier().to_vkey();
    // A supervisor's machine: no data directory, only the file and the key.
    let elsewhere = tempfile::tempdir().unwrap();
    let ok = Command::new(PDX)
        .current_dir(elsewhere.path())
        .args([
            "ledger",
            "verify",
            "--export",
            export.to_str().unwrap(),
            "--key",
            &key,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{stdout}");
    assert!(stdout.contains("25 entries"), "{stdout}");
    assert!(
        !elsewhere.path().join("pdx-data").exists(),
        "offline verify touched a data dir"
    );
    // Tamper with one exported payload: the verifier names its seq and exits 1.
    let text = std::fs::read_to_string(&export).unwrap();
    let tampered = text.replacen("\\\"o7\\\"", "\\\"o8\\\"", 1);
    assert_ne!(text, tampered);
    std::fs::write(&export, tampered).unwrap();
    let bad = Command::new(PDX)
        .args([
            "ledger",
            "verify",
            "--export",
            export.to_str().unwrap(),
            "--key",
            &key,
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("first bad seq 7"));
    t.stop().await;
}

/// The names in a directory, sorted.
fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs `pdx` in `cwd`; returns the exit code, stdout and stderr.
fn pdx_in(cwd: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(PDX)
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `pdx ledger verify` only reads, and tells a key problem from a bad log (exit 3, not
/// "first bad seq"): without `--key` it never makes a key of its own, and with another
/// log's key it says the key does not match; the log's own key still verifies.
#[tokio::test]
async fn cli_verify_creates_no_key_and_tells_a_wrong_key_from_a_bad_log() {
    let t = TestServer::start(false).await.unwrap();
    let actor = Actor {
        org: "org-a".into(),
        key_id: "k".into(),
    };
    for i in 0..5 {
        let s = Suspension {
            org: format!("o{i}"),
            action: "suspended".into(),
            reason: "r".into(),
        };
        t.app.ledger.append_now(&actor, &s).await.unwrap();
    }
    t.app.ledger.checkpoint().await.unwrap();
    let data_dir = t.dir.path().to_str().unwrap().to_string();
    let export = t.dir.path().join("ledger.jsonl");
    let export = export.to_str().unwrap();
    let (code, _, stderr) = pdx_in(
        t.dir.path(),
        &["--data-dir", &data_dir, "ledger", "export", "--out", export],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let origin = t.app.ledger.origin().to_string();

    // (a) A supervisor's machine: an empty working directory, an empty data directory and
    // no --key. Verify fails with exit 3 and creates nothing: no key, no database.
    let cwd = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let empty_dir = empty.path().to_str().unwrap();
    let no_key = format!(
        "no ledger key at {}: pass --key",
        empty.path().join("ledger.key").display()
    );
    for args in [
        vec![
            "--data-dir",
            empty_dir,
            "ledger",
            "verify",
            "--export",
            export,
        ],
        vec!["--data-dir", empty_dir, "ledger", "verify"],
    ] {
        let (code, stdout, stderr) = pdx_in(cwd.path(), &args);
        assert_eq!(code, Some(3), "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains(&no_key), "{args:?}: {stderr}");
        assert!(!stdout.contains("first bad seq"), "{args:?}: {stdout}");
        assert_eq!(files_in(cwd.path()), Vec::<String>::new(), "{args:?}");
        assert_eq!(files_in(empty.path()), Vec::<String>::new(), "{args:?}");
    }
    // The default data directory (./pdx-data) is not created either.
    let (code, _, stderr) = pdx_in(cwd.path(), &["ledger", "verify", "--export", export]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("no ledger key at pdx-data"), "{stderr}");
    assert_eq!(files_in(cwd.path()), Vec::<String>::new());
    // With a key but no database there, the database verifier creates none.
    let key = t.app.ledger.verifier().to_vkey();
    let (code, stdout, stderr) = pdx_in(
        cwd.path(),
        &["--data-dir", empty_dir, "ledger", "verify", "--key", &key],
    );
    assert_ne!(code, Some(0), "{stdout}");
    assert!(stderr.contains("no database at"), "{stderr}");
    assert_eq!(files_in(cwd.path()), Vec::<String>::new());
    assert_eq!(files_in(empty.path()), Vec::<String>::new());

    // (b) Another log's key, under the same name (made by the signing module in another
    // data directory) or under another name: the key does not match, exit 3, no bad seq.
    let elsewhere = tempfile::tempdir().unwrap();
    let same_name =
        pdx_ledger::signing::load_or_create(&elsewhere.path().join("ledger.key"), &origin).unwrap();
    let other_name = pdx_ledger::note::NoteSigner::new(
        "other.example/ledger",
        ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
    )
    .unwrap();
    let mismatch = format!("FAILED: the key does not match this log (origin {origin})");
    for other in [same_name.verifier(), other_name.verifier()] {
        let other_key = other.to_vkey();
        assert_ne!(other_key, key);
        let named = format!("{}+{}", other.name(), hex::encode(other.key_id()));
        for args in [
            vec!["ledger", "verify", "--export", export, "--key", &other_key],
            vec![
                "--data-dir",
                &data_dir,
                "ledger",
                "verify",
                "--key",
                &other_key,
            ],
        ] {
            let (code, stdout, stderr) = pdx_in(cwd.path(), &args);
            assert_eq!(code, Some(3), "{args:?}: {stdout}{stderr}");
            assert!(stdout.contains(&mismatch), "{args:?}: {stdout}");
            assert!(stdout.contains(&named), "{args:?}: {stdout}");
            assert!(!stdout.contains("first bad seq"), "{args:?}: {stdout}");
        }
    }
    assert_eq!(files_in(cwd.path()), Vec::<String>::new());

    // (c) The log's own key verifies: given, or read (never rewritten) from the data
    // directory, for the export and for the database.
    let key_file = t.dir.path().join("ledger.key");
    let key_bytes = std::fs::read(&key_file).unwrap();
    for args in [
        vec!["ledger", "verify", "--export", export, "--key", &key],
        vec![
            "--data-dir",
            &data_dir,
            "ledger",
            "verify",
            "--export",
            export,
        ],
        vec!["--data-dir", &data_dir, "ledger", "verify"],
    ] {
        let (code, stdout, stderr) = pdx_in(cwd.path(), &args);
        assert_eq!(code, Some(0), "{args:?}: {stdout}{stderr}");
        assert!(stdout.starts_with("ok: "), "{args:?}: {stdout}");
    }
    assert_eq!(std::fs::read(&key_file).unwrap(), key_bytes);
    assert_eq!(files_in(cwd.path()), Vec::<String>::new());
    t.stop().await;
}
