//! Group commit (`pdx_ledger::group`): concurrent writers share transactions, each is
//! answered after its own commit, and a failing writer takes only its own writes (rows
//! and staged entries) back.
//!
//! To make groups form whatever the scheduling, each test first holds the writer (the
//! SQLite write lock; on PostgreSQL the `ledger_head` row lock), queues its writers,
//! then lets go: every writer queued meanwhile must share the few groups that follow.

use std::collections::BTreeSet;
use std::time::Duration;

use pdx_ledger::db::{Db, WriteTx};
use pdx_ledger::kinds::Transaction;
use pdx_ledger::store::NewEntry;
use pdx_ledger::{EntryKind, Ledger, LedgerError};
use tokio::task::JoinSet;

use crate::support::{TestDb, actor, signer};

/// Concurrent writers per test.
const WRITERS: u64 = 64;

fn sale(i: u64) -> Transaction {
    Transaction {
        order_id: format!("o{i}"),
        product_id: "p1".into(),
        buyer_org: "org-buyer".into(),
        seller_org: "org-dev".into(),
        amount_minor: 1000 + i as i64,
        currency: "CNY".into(),
        payment_ref: format!("pay{i}"),
    }
}

/// Holds the writer until dropped or rolled back: on SQLite `begin_write` takes the
/// write lock; on PostgreSQL the head row lock stops every append behind it.
async fn hold_writer(db: &Db) -> WriteTx {
    let mut tx = db.begin_write().await.unwrap();
    sqlx::query("UPDATE ledger_head SET size = size WHERE id = 1")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

/// Waits until `n` writers are queued or running, as far as the test can tell: the
/// writers are spawned tasks, so give them time to reach the queue.
async fn let_them_queue() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

async fn verifies(ledger: &Ledger) {
    let report = ledger
        .verify_with(&ledger.verifier(), |_, _| {})
        .await
        .unwrap()
        .unwrap_or_else(|f| panic!("the ledger does not verify: {f}"));
    assert_eq!(report.entries, ledger.size().await.unwrap());
}

/// The entry seqs a set of answers got are exactly 0..n.
fn contiguous(seqs: &BTreeSet<u64>) {
    let expected: BTreeSet<u64> = (0..seqs.len() as u64).collect();
    assert_eq!(*seqs, expected, "entry seqs are not 0..n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_writes_commit_together_and_a_failing_one_rolls_back_alone() {
    for t in TestDb::all().await {
        let ledger = t.ledger(signer("test.pdx/ledger"), 16);
        sqlx::query("CREATE TABLE business (id TEXT PRIMARY KEY, seq BIGINT)")
            .execute(t.db.pool())
            .await
            .unwrap();
        let before = t.db.group_commits();
        let blocker = hold_writer(&t.db).await;
        let mut writers = JoinSet::new();
        for i in 0..WRITERS {
            let ledger = ledger.clone();
            writers.spawn(async move {
                let db = ledger.db().clone();
                let result = db
                    .write_grouped(move |mut g| {
                        Box::pin(async move {
                            sqlx::query("INSERT INTO business (id) VALUES ($1)")
                                .bind(format!("o{i}"))
                                .execute(&mut *g.conn)
                                .await?;
                            let appended = g.append(&ledger, &actor("org-x"), &sale(i)).await?;
                            sqlx::query("UPDATE business SET seq = $2 WHERE id = $1")
                                .bind(format!("o{i}"))
                                .bind(appended.seq as i64)
                                .execute(&mut *g.conn)
                                .await?;
                            // Every seventh writer fails after writing its row and
                            // staging its entry.
                            if i % 7 == 3 {
                                return Err(LedgerError::OutOfRange("refused by the test".into()));
                            }
                            Ok(appended.seq)
                        })
                    })
                    .await;
                (i, result)
            });
        }
        let_them_queue().await;
        blocker.rollback().await.unwrap();
        let mut seqs = BTreeSet::new();
        let mut answered = 0;
        while let Some(done) = writers.join_next().await {
            let (i, result) = done.unwrap();
            answered += 1;
            match result {
                Ok(seq) => {
                    assert_ne!(i % 7, 3, "{}: writer {i} should have failed", t.name);
                    assert!(seqs.insert(seq), "{}: seq {seq} answered twice", t.name);
                    // Committed: its row carries its entry, and the entry is its own.
                    let row: Option<i64> =
                        sqlx::query_scalar("SELECT seq FROM business WHERE id = $1")
                            .bind(format!("o{i}"))
                            .fetch_one(t.db.pool())
                            .await
                            .unwrap();
                    assert_eq!(row, Some(seq as i64), "{}", t.name);
                    let entry = ledger.entry(seq).await.unwrap().unwrap();
                    assert!(
                        entry.payload.contains(&format!("\"o{i}\"")),
                        "{}: entry {seq} is not writer {i}'s",
                        t.name
                    );
                }
                Err(e) => {
                    assert_eq!(i % 7, 3, "{}: writer {i} failed: {e}", t.name);
                    assert!(matches!(e, LedgerError::OutOfRange(_)), "{}: {e}", t.name);
                    let rows: i64 =
                        sqlx::query_scalar("SELECT COUNT(*) FROM business WHERE id = $1")
                            .bind(format!("o{i}"))
                            .fetch_one(t.db.pool())
                            .await
                            .unwrap();
                    assert_eq!(rows, 0, "{}: a failed writer's row was kept", t.name);
                }
            }
        }
        assert_eq!(answered, WRITERS);
        let failed = (0..WRITERS).filter(|i| i % 7 == 3).count() as u64;
        assert_eq!(seqs.len() as u64, WRITERS - failed, "{}", t.name);
        contiguous(&seqs);
        assert_eq!(ledger.size().await.unwrap(), seqs.len() as u64);
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM business")
            .fetch_one(t.db.pool())
            .await
            .unwrap();
        assert_eq!(rows as usize, seqs.len(), "{}", t.name);
        verifies(&ledger).await;
        let stats = t.db.group_commits();
        let (groups, jobs) = (stats.groups - before.groups, stats.jobs - before.jobs);
        assert_eq!(jobs, WRITERS, "{}: every writer ran in a group", t.name);
        assert!(
            groups * 4 <= jobs,
            "{}: {jobs} writers held back together took {groups} commits",
            t.name
        );
        t.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_bare_appends_share_commits_and_a_bad_entry_fails_alone() {
    for t in TestDb::all().await {
        // Checkpoints every 10 entries, so merged batches cross checkpoint sizes.
        let ledger = t.ledger(signer("test.pdx/ledger"), 10);
        let before = t.db.group_commits();
        let blocker = hold_writer(&t.db).await;
        let mut writers = JoinSet::new();
        for i in 0..WRITERS {
            let ledger = ledger.clone();
            writers.spawn(async move {
                // Writer 17's actor is empty: its entry cannot be built.
                let org = if i == 17 { "" } else { "org-x" };
                let entry = NewEntry {
                    kind: EntryKind::Transaction,
                    actor: actor(org),
                    payload: serde_json::to_value(sale(i)).unwrap(),
                    parties: vec!["org-buyer".into()],
                };
                (i, ledger.append_entry_now(entry).await)
            });
        }
        let_them_queue().await;
        blocker.rollback().await.unwrap();
        let mut seqs = BTreeSet::new();
        while let Some(done) = writers.join_next().await {
            let (i, result) = done.unwrap();
            match result {
                Ok(appended) => {
                    assert_ne!(i, 17, "{}: the bad entry was appended", t.name);
                    assert!(seqs.insert(appended.seq), "{}", t.name);
                    let entry = ledger.entry(appended.seq).await.unwrap().unwrap();
                    assert_eq!(entry.entry_hash, appended.entry_hash, "{}", t.name);
                    assert!(entry.payload.contains(&format!("\"o{i}\"")), "{}", t.name);
                }
                Err(e) => {
                    assert_eq!(i, 17, "{}: writer {i} failed: {e}", t.name);
                    assert!(matches!(e, LedgerError::Entry(_)), "{}: {e}", t.name);
                }
            }
        }
        assert_eq!(seqs.len() as u64, WRITERS - 1, "{}", t.name);
        contiguous(&seqs);
        verifies(&ledger).await;
        // Every tenth size was signed, whichever batch reached it.
        let sizes: Vec<u64> = ledger
            .checkpoints()
            .await
            .unwrap()
            .iter()
            .map(|c| c.size)
            .collect();
        assert_eq!(sizes, vec![10, 20, 30, 40, 50, 60], "{}", t.name);
        let stats = t.db.group_commits();
        let groups = stats.groups - before.groups;
        assert!(
            groups * 4 <= WRITERS,
            "{}: {WRITERS} appends held back together took {groups} commits",
            t.name
        );
        t.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_write_is_answered_without_waiting_for_company() {
    let t = TestDb::sqlite().await;
    let ledger = t.ledger(signer("test.pdx/ledger"), 0);
    // One writer at a time: each group holds exactly one job, and each answer means
    // the write is visible to a fresh connection.
    for i in 0..5 {
        let appended = ledger.append_now(&actor("org-x"), &sale(i)).await.unwrap();
        assert_eq!(appended.seq, i);
        let fresh = Db::connect_with(&t.url, 1).await.unwrap();
        let size: i64 = sqlx::query_scalar("SELECT size FROM ledger_head WHERE id = 1")
            .fetch_one(fresh.pool())
            .await
            .unwrap();
        assert_eq!(size as u64, i + 1);
        fresh.close().await;
    }
    let stats = t.db.group_commits();
    assert_eq!((stats.groups, stats.jobs), (5, 5));
    t.cleanup().await;
}
