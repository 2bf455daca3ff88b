//! An attacker with database access drops the append-only triggers and edits the ledger.
//! For each edit, the verifier (reading the database, and reading an export) must fail
//! and name the first bad seq.

use pdx_ledger::db::Backend;
use pdx_ledger::export::{export, verify_export};
use pdx_ledger::kinds::Transaction;
use pdx_ledger::merkle::{self, Blake3Hasher, MerkleHasher};
use pdx_ledger::note::{NoteSigner, SignedNote};
use pdx_ledger::store::{NewEntry, Visibility};
use pdx_ledger::verify::VerifyFailure;
use pdx_ledger::{Actor, Ledger};
use sqlx::Row;

use crate::support::{TestDb, signer};

const N: i64 = 40;
const EVERY: u64 = 5;

fn item(i: i64, tag: &str) -> NewEntry {
    let payload = Transaction {
        order_id: format!("{tag}{i}"),
        product_id: "p1".into(),
        buyer_org: "org-b".into(),
        seller_org: "org-d".into(),
        amount_minor: 100 * i,
        currency: "CNY".into(),
        payment_ref: format!("pay{i}"),
    };
    NewEntry::typed(
        &Actor {
            org: "org-d".into(),
            key_id: "k1".into(),
        },
        &payload,
    )
    .unwrap()
}

async fn build(t: &TestDb, key: NoteSigner) -> Ledger {
    let ledger = t.ledger(key, EVERY);
    let mut tx = t.db.begin_write().await.unwrap();
    ledger
        .append_batch(&mut tx, (0..N).map(|i| item(i, "o")).collect())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    ledger
        .verify_with(&ledger.verifier(), |_, _| {})
        .await
        .unwrap()
        .unwrap();
    drop_triggers(t).await;
    ledger
}

async fn drop_triggers(t: &TestDb) {
    match t.db.backend() {
        Backend::Sqlite => {
            let names: Vec<String> =
                sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'trigger'")
                    .fetch_all(t.db.pool())
                    .await
                    .unwrap();
            assert!(!names.is_empty());
            for n in names {
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP TRIGGER {n}")))
                    .execute(t.db.pool())
                    .await
                    .unwrap();
            }
        }
        Backend::Postgres => {
            for table in [
                "ledger_entries",
                "ledger_nodes",
                "ledger_checkpoints",
                "ledger_parties",
                "ledger_head",
            ] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "ALTER TABLE {table} DISABLE TRIGGER USER"
                )))
                .execute(t.db.pool())
                .await
                .unwrap();
            }
        }
    }
}

async fn exec(t: &TestDb, sql: &str) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(t.db.pool())
        .await
        .unwrap();
}

/// Verifies the database and an export of it with `key`; both must fail at the same seq.
async fn failure(ledger: &Ledger, key: &NoteSigner) -> VerifyFailure {
    let from_db = ledger
        .verify_with(&key.verifier(), |_, _| {})
        .await
        .unwrap();
    let f = from_db.expect_err("the database verifier accepted a tampered ledger");
    let mut buf = Vec::new();
    export(ledger, &mut buf, |_, _| {}).await.unwrap();
    let from_file = verify_export(&buf[..], &key.verifier(), |_, _| {}).unwrap();
    let g = from_file.expect_err("the export verifier accepted a tampered ledger");
    assert_eq!(f.seq, g.seq, "database and export disagree: {f} / {g}");
    f
}

#[tokio::test]
async fn flipped_payload_byte_is_named() {
    for t in TestDb::all().await {
        let key = signer("t.pdx/ledger");
        let ledger = build(&t, key.clone()).await;
        let payload: String =
            sqlx::query_scalar("SELECT payload FROM ledger_entries WHERE seq = 17")
                .fetch_one(t.db.pool())
                .await
                .unwrap();
        let flipped = payload.replacen("1700", "1701", 1);
        assert_ne!(flipped, payload);
        sqlx::query("UPDATE ledger_entries SET payload = $1 WHERE seq = 17")
            .bind(flipped)
            .execute(t.db.pool())
            .await
            .unwrap();
        let f = failure(&ledger, &key).await;
        assert_eq!(f.seq, 17, "{}: {f}", t.name);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn deleted_middle_row_is_named() {
    for t in TestDb::all().await {
        let key = signer("t.pdx/ledger");
        let ledger = build(&t, key.clone()).await;
        exec(&t, "DELETE FROM ledger_entries WHERE seq = 23").await;
        let f = failure(&ledger, &key).await;
        assert_eq!(f.seq, 23, "{}: {f}", t.name);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn swapped_rows_are_named() {
    for t in TestDb::all().await {
        let key = signer("t.pdx/ledger");
        let ledger = build(&t, key.clone()).await;
        exec(&t, "UPDATE ledger_entries SET seq = -1 WHERE seq = 30").await;
        exec(&t, "UPDATE ledger_entries SET seq = 30 WHERE seq = 31").await;
        exec(&t, "UPDATE ledger_entries SET seq = 31 WHERE seq = -1").await;
        let f = failure(&ledger, &key).await;
        assert_eq!(f.seq, 30, "{}: {f}", t.name);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn truncated_and_reappended_fork_is_named() {
    const FORK: u64 = 27;
    for t in TestDb::all().await {
        let key = signer("t.pdx/ledger");
        let ledger = build(&t, key.clone()).await;
        // Cut the tail and every subtree that covers it, then rewind the head.
        exec(
            &t,
            &format!("DELETE FROM ledger_entries WHERE seq >= {FORK}"),
        )
        .await;
        exec(
            &t,
            &format!("DELETE FROM ledger_parties WHERE seq >= {FORK}"),
        )
        .await;
        // Nodes are keyed by pos = (last leaf << 6) | level (see store.rs).
        let nodes = sqlx::query("SELECT pos, hash FROM ledger_nodes")
            .fetch_all(t.db.pool())
            .await
            .unwrap();
        let mut keep = std::collections::HashMap::new();
        for row in &nodes {
            let pos: i64 = row.get("pos");
            let (level, end) = (pos & 63, (pos >> 6) + 1);
            if end as u64 > FORK {
                exec(&t, &format!("DELETE FROM ledger_nodes WHERE pos = {pos}")).await;
            } else {
                let hash: Vec<u8> = row.get("hash");
                keep.insert((level as u8, ((end >> level) - 1) as u64), hash);
            }
        }
        // Leaves are not stored as nodes; the attacker hashes them from the entries.
        let entries = ledger.entries(0, 100, &Visibility::All).await.unwrap();
        let frontier: Vec<u8> = merkle::complete_subtrees(0..FORK)
            .iter()
            .flat_map(|id| match keep.get(&(id.level, id.index)) {
                Some(hash) => hash.clone(),
                None => {
                    assert_eq!(id.level, 0, "{id} missing");
                    Blake3Hasher::leaf(entries[id.index as usize].leaf_data()).to_vec()
                }
            })
            .collect();
        let last = ledger.entry(FORK - 1).await.unwrap().unwrap();
        sqlx::query("UPDATE ledger_head SET size = $1, head_hash = $2, frontier = $3 WHERE id = 1")
            .bind(FORK as i64)
            .bind(last.entry_hash.0.to_vec())
            .bind(frontier)
            .execute(t.db.pool())
            .await
            .unwrap();
        // Re-append a different history, properly chained (an insider with the signing
        // key could even checkpoint it, but cannot replace the checkpoints already out).
        let forked = t.ledger(key.clone(), 0);
        let mut tx = t.db.begin_write().await.unwrap();
        forked
            .append_batch(
                &mut tx,
                (FORK as i64..N).map(|i| item(i, "forged")).collect(),
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            ledger
                .entries(0, 100, &Visibility::All)
                .await
                .unwrap()
                .len(),
            N as usize
        );
        let f = failure(&ledger, &key).await;
        // The last checkpoint that still verifies is at 25: the verifier names 25, the
        // first seq no surviving checkpoint vouches for; the fork (27) is in that window.
        assert_eq!(f.seq, 25, "{}: {f}", t.name);
        assert!(f.seq <= FORK && FORK < f.seq + EVERY);
        assert!(f.reason.contains("signed root"), "{}", f.reason);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn altered_checkpoint_signature_is_named() {
    for t in TestDb::all().await {
        let key = signer("t.pdx/ledger");
        let ledger = build(&t, key.clone()).await;
        let note: String =
            sqlx::query_scalar("SELECT note FROM ledger_checkpoints WHERE size = 20")
                .fetch_one(t.db.pool())
                .await
                .unwrap();
        let mut parsed = SignedNote::parse(&note).unwrap();
        parsed.signatures[0].signature[10] ^= 0x01;
        sqlx::query("UPDATE ledger_checkpoints SET note = $1 WHERE size = 20")
            .bind(parsed.to_text())
            .execute(t.db.pool())
            .await
            .unwrap();
        let f = failure(&ledger, &key).await;
        assert_eq!(f.seq, 19, "{}: {f}", t.name);
        assert!(f.reason.contains("size 20"), "{}", f.reason);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn swapped_public_key_is_detected_at_the_first_checkpoint() {
    for t in TestDb::all().await {
        let key = signer("t.pdx/ledger");
        let ledger = build(&t, key.clone()).await;
        // The attacker re-signs every checkpoint with a key of their own and serves that
        // key; the supervisor verifies with the key it recorded earlier.
        let attacker = signer("t.pdx/ledger");
        let rows = sqlx::query("SELECT size, note FROM ledger_checkpoints")
            .fetch_all(t.db.pool())
            .await
            .unwrap();
        for row in rows {
            let size: i64 = row.get("size");
            let note: String = row.get("note");
            let body = SignedNote::parse(&note).unwrap().body;
            sqlx::query("UPDATE ledger_checkpoints SET note = $1 WHERE size = $2")
                .bind(attacker.sign(&body).unwrap())
                .bind(size)
                .execute(t.db.pool())
                .await
                .unwrap();
        }
        // Under the attacker's key everything verifies...
        ledger
            .verify_with(&attacker.verifier(), |_, _| {})
            .await
            .unwrap()
            .unwrap();
        // ...under the recorded key the first checkpoint already fails.
        let f = failure(&ledger, &key).await;
        assert_eq!(f.seq, EVERY - 1, "{}: {f}", t.name);
        t.cleanup().await;
    }
}

/// A ledger long enough for the verifiers' page-at-a-time, multi-threaded paths (pages
/// of 4,096 entries, hashing split across threads past 1,024).
async fn build_large(t: &TestDb, key: NoteSigner) -> Ledger {
    let ledger = t.ledger(key, LARGE_EVERY);
    for batch in 0..LARGE / 1000 {
        let mut tx = t.db.begin_write().await.unwrap();
        ledger
            .append_batch(
                &mut tx,
                (batch * 1000..(batch + 1) * 1000)
                    .map(|i| item(i, "o"))
                    .collect(),
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    ledger
}

const LARGE: i64 = 10_000;
const LARGE_EVERY: u64 = 1000;

/// The one-entry-at-a-time verifier over the same rows and checkpoints: the reference
/// the paged, parallel verifiers must agree with.
async fn serial_outcome(
    ledger: &Ledger,
    key: &NoteSigner,
) -> Result<pdx_ledger::verify::VerifyReport, VerifyFailure> {
    let mut entries = Vec::new();
    loop {
        let page = ledger
            .entries(entries.len() as u64, 3000, &Visibility::All)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        entries.extend(page);
    }
    let checkpoints = ledger
        .checkpoints()
        .await
        .unwrap()
        .into_iter()
        .map(|c| pdx_ledger::verify::CheckpointRecord {
            size: c.size,
            note: c.note,
        })
        .collect();
    pdx_ledger::verify::verify_all(&key.verifier(), &entries, checkpoints)
}

#[tokio::test]
async fn large_ledgers_verify_and_name_the_same_seq_as_the_serial_verifier() {
    for t in TestDb::all().await {
        let key = signer("t.pdx/ledger");
        let ledger = build_large(&t, key.clone()).await;
        let report = ledger
            .verify_with(&key.verifier(), |_, _| {})
            .await
            .unwrap()
            .unwrap();
        assert_eq!((report.entries, report.checkpoints), (LARGE as u64, 10));
        assert_eq!(Ok(report.clone()), serial_outcome(&ledger, &key).await);
        let mut buf = Vec::new();
        export(&ledger, &mut buf, |_, _| {}).await.unwrap();
        let from_file = verify_export(&buf[..], &key.verifier(), |_, _| {}).unwrap();
        assert_eq!(from_file, Ok(report));

        drop_triggers(&t).await;
        // A payload byte in the second page, then a checkpoint signature further on:
        // the payload is reported first, as the serial verifier reports it.
        exec(
            &t,
            "UPDATE ledger_entries SET payload = replace(payload, 'o7777', 'o7778') WHERE seq = 7777",
        )
        .await;
        let note: String =
            sqlx::query_scalar("SELECT note FROM ledger_checkpoints WHERE size = 9000")
                .fetch_one(t.db.pool())
                .await
                .unwrap();
        let mut parsed = SignedNote::parse(&note).unwrap();
        parsed.signatures[0].signature[3] ^= 0x40;
        sqlx::query("UPDATE ledger_checkpoints SET note = $1 WHERE size = 9000")
            .bind(parsed.to_text())
            .execute(t.db.pool())
            .await
            .unwrap();
        let f = failure(&ledger, &key).await;
        assert_eq!(f.seq, 7777, "{}: {f}", t.name);
        assert_eq!(Err(f), serial_outcome(&ledger, &key).await);

        // With the payload restored, the signature is what fails, at its checkpoint.
        exec(
            &t,
            "UPDATE ledger_entries SET payload = replace(payload, 'o7778', 'o7777') WHERE seq = 7777",
        )
        .await;
        let f = failure(&ledger, &key).await;
        assert_eq!(f.seq, 8999, "{}: {f}", t.name);
        assert!(f.reason.contains("signature"), "{}", f.reason);
        assert_eq!(Err(f), serial_outcome(&ledger, &key).await);
        t.cleanup().await;
    }
}
