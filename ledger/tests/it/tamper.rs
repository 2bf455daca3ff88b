//! An attacker with database access drops the append-only triggers and edits the ledger.
//! For each edit, the verifier (reading the database, and reading an export) must fail
//! and name the first bad seq.

use pdx_ledger::db::Backend;
use pdx_ledger::export::{export, verify_export};
use pdx_ledger::kinds::Transaction;
use pdx_ledger::merkle;
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
        let nodes = sqlx::query("SELECT level, idx, hash FROM ledger_nodes")
            .fetch_all(t.db.pool())
            .await
            .unwrap();
        let mut keep = std::collections::HashMap::new();
        for row in &nodes {
            let (level, idx): (i64, i64) = (row.get("level"), row.get("idx"));
            let end = ((idx + 1) as u64) << level;
            if end > FORK {
                exec(
                    &t,
                    &format!("DELETE FROM ledger_nodes WHERE level = {level} AND idx = {idx}"),
                )
                .await;
            } else {
                let hash: Vec<u8> = row.get("hash");
                keep.insert((level as u8, idx as u64), hash);
            }
        }
        let frontier: Vec<u8> = merkle::complete_subtrees(0..FORK)
            .iter()
            .flat_map(|id| keep[&(id.level, id.index)].clone())
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
