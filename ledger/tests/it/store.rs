//! Storage: appends, transactions, proofs against the reference tree, receipts, triggers.

use pdx_ledger::kinds::{Release, Suspension, Transaction};
use pdx_ledger::merkle::{self, Blake3Hasher, MerkleHasher};
use pdx_ledger::store::{EntryFilter, NewEntry, Visibility};
use pdx_ledger::{EntryKind, Hash32};

use crate::support::{TestDb, actor, signer};

fn tx(i: i64, buyer: &str) -> Transaction {
    Transaction {
        order_id: format!("o{i}"),
        product_id: "p1".into(),
        buyer_org: buyer.into(),
        seller_org: "org-dev".into(),
        amount_minor: 1000 + i,
        currency: "CNY".into(),
        payment_ref: format!("pay{i}"),
    }
}

#[tokio::test]
async fn appends_chain_and_proofs_match_the_reference_tree() {
    for t in TestDb::all().await {
        let ledger = t.ledger(signer("test.pdx/ledger"), 7);
        for i in 0..45 {
            ledger
                .append_now(&actor("org-dev"), &tx(i, "org-buyer"))
                .await
                .unwrap();
        }
        let entries = ledger.entries(0, 1000, &Visibility::All).await.unwrap();
        assert_eq!(entries.len(), 45, "{}", t.name);
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.seq, i as u64);
            e.check_hashes().unwrap();
            let prev = if i == 0 {
                Hash32::ZERO
            } else {
                entries[i - 1].entry_hash
            };
            assert_eq!(e.prev_hash, prev);
        }
        let leaves: Vec<merkle::Hash> = entries
            .iter()
            .map(|e| Blake3Hasher::leaf(e.leaf_data()))
            .collect();
        for size in [1u64, 2, 7, 8, 13, 32, 33, 45] {
            let want = merkle::root_from_leaves::<Blake3Hasher>(&leaves[..size as usize]);
            assert_eq!(
                ledger.root_at(size).await.unwrap().0,
                want,
                "{} root at {size}",
                t.name
            );
            for seq in [0, size / 2, size - 1] {
                let proof: Vec<_> = ledger
                    .inclusion_proof(seq, size)
                    .await
                    .unwrap()
                    .iter()
                    .map(|h| h.0)
                    .collect();
                merkle::verify_inclusion::<Blake3Hasher>(
                    seq,
                    size,
                    &leaves[seq as usize],
                    &proof,
                    &want,
                )
                .unwrap();
            }
            for from in [1u64, size / 3, size] {
                if from == 0 {
                    continue;
                }
                let old = merkle::root_from_leaves::<Blake3Hasher>(&leaves[..from as usize]);
                let proof: Vec<_> = ledger
                    .consistency_proof(from, size)
                    .await
                    .unwrap()
                    .iter()
                    .map(|h| h.0)
                    .collect();
                merkle::verify_consistency::<Blake3Hasher>(from, size, &proof, &old, &want)
                    .unwrap();
            }
        }
        // Checkpoints were signed every 7 entries.
        let sizes: Vec<u64> = ledger
            .checkpoints()
            .await
            .unwrap()
            .iter()
            .map(|c| c.size)
            .collect();
        assert_eq!(sizes, vec![7, 14, 21, 28, 35, 42], "{}", t.name);
        let report = ledger
            .verify_with(&ledger.verifier(), |_, _| {})
            .await
            .unwrap()
            .unwrap();
        assert_eq!((report.entries, report.checkpoints), (45, 6));
        assert!(
            ledger.inclusion_proof(45, 46).await.is_err(),
            "beyond the ledger"
        );
        t.cleanup().await;
    }
}

#[tokio::test]
async fn append_commits_or_rolls_back_with_the_callers_transaction() {
    for t in TestDb::all().await {
        let ledger = t.ledger(signer("test.pdx/ledger"), 0);
        sqlx::query("CREATE TABLE business (id TEXT PRIMARY KEY)")
            .execute(t.db.pool())
            .await
            .unwrap();
        let mut dbtx = t.db.begin_write().await.unwrap();
        sqlx::query("INSERT INTO business (id) VALUES ('a')")
            .execute(&mut *dbtx)
            .await
            .unwrap();
        ledger
            .append(&mut dbtx, &actor("o"), &tx(1, "b"))
            .await
            .unwrap();
        dbtx.rollback().await.unwrap();
        assert_eq!(ledger.size().await.unwrap(), 0, "{}", t.name);

        let mut dbtx = t.db.begin_write().await.unwrap();
        sqlx::query("INSERT INTO business (id) VALUES ('b')")
            .execute(&mut *dbtx)
            .await
            .unwrap();
        let done = ledger
            .append(&mut dbtx, &actor("o"), &tx(2, "b"))
            .await
            .unwrap();
        dbtx.commit().await.unwrap();
        assert_eq!(done.seq, 0);
        assert_eq!(ledger.size().await.unwrap(), 1);
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM business")
            .fetch_one(t.db.pool())
            .await
            .unwrap();
        assert_eq!(rows, 1);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn batch_append_writes_many_entries_in_one_transaction() {
    for t in TestDb::all().await {
        let ledger = t.ledger(signer("test.pdx/ledger"), 1000);
        let items: Vec<NewEntry> = (0..2500)
            .map(|i| NewEntry::typed(&actor("o"), &tx(i, "b")).unwrap())
            .collect();
        let mut dbtx = t.db.begin_write().await.unwrap();
        let done = ledger.append_batch(&mut dbtx, items).await.unwrap();
        dbtx.commit().await.unwrap();
        assert_eq!(done.len(), 2500);
        assert_eq!(done.last().unwrap().seq, 2499);
        let sizes: Vec<u64> = ledger
            .checkpoints()
            .await
            .unwrap()
            .iter()
            .map(|c| c.size)
            .collect();
        assert_eq!(sizes, vec![1000, 2000]);
        ledger
            .verify_with(&ledger.verifier(), |_, _| {})
            .await
            .unwrap()
            .unwrap();
        t.cleanup().await;
    }
}

#[tokio::test]
async fn database_refuses_update_and_delete() {
    for t in TestDb::all().await {
        let ledger = t.ledger(signer("test.pdx/ledger"), 1);
        // Two entries, so that there is an interior Merkle node (leaves are not stored).
        ledger.append_now(&actor("o"), &tx(1, "b")).await.unwrap();
        ledger.append_now(&actor("o"), &tx(2, "b")).await.unwrap();
        for sql in [
            "UPDATE ledger_entries SET payload = '{}' WHERE seq = 0",
            "DELETE FROM ledger_entries WHERE seq = 0",
            "UPDATE ledger_nodes SET hash = hash",
            "DELETE FROM ledger_nodes",
            "UPDATE ledger_checkpoints SET note = 'x'",
            "DELETE FROM ledger_checkpoints",
            "DELETE FROM ledger_parties",
            "DELETE FROM ledger_head",
        ] {
            let err = sqlx::query(sql).execute(t.db.pool()).await;
            assert!(err.is_err(), "{}: {sql} was allowed", t.name);
        }
        assert_eq!(ledger.size().await.unwrap(), 2);
        ledger
            .verify_with(&ledger.verifier(), |_, _| {})
            .await
            .unwrap()
            .unwrap();
        t.cleanup().await;
    }
}

#[tokio::test]
async fn receipts_verify_offline_and_only_under_their_own_key() {
    for t in TestDb::all().await {
        let ledger = t.ledger(signer("test.pdx/ledger"), 0);
        for i in 0..10 {
            ledger.append_now(&actor("o"), &tx(i, "b")).await.unwrap();
        }
        // No checkpoint covers seq 9 yet: the receipt signs one.
        let receipt = ledger.receipt(9).await.unwrap();
        assert_eq!(receipt.tree_size, 10);
        // Round trip through JSON, as a file would.
        let text = serde_json::to_string(&receipt).unwrap();
        let back: pdx_ledger::Receipt = serde_json::from_str(&text).unwrap();
        let cp = back.verify(&ledger.verifier()).unwrap();
        assert_eq!(cp.size, 10);
        let r3 = ledger.receipt(3).await.unwrap();
        r3.verify(&ledger.verifier()).unwrap();

        let other = signer("test.pdx/ledger");
        assert!(
            back.verify(&other.verifier()).is_err(),
            "another key must not verify"
        );
        let mut forged = back.clone();
        forged.checkpoint = other
            .sign(
                &pdx_ledger::note::SignedNote::parse(&back.checkpoint)
                    .unwrap()
                    .body,
            )
            .unwrap();
        assert!(
            forged.verify(&ledger.verifier()).is_err(),
            "re-signed by another key"
        );
        let mut wrong = back.clone();
        wrong.entry.payload = wrong.entry.payload.replace("o9", "o8");
        assert!(wrong.verify(&ledger.verifier()).is_err(), "edited payload");
        let mut moved = r3.clone();
        moved.entry = back.entry.clone();
        assert!(
            moved.verify(&ledger.verifier()).is_err(),
            "proof for another leaf"
        );
        t.cleanup().await;
    }
}

#[tokio::test]
async fn other_organisations_see_public_kinds_and_their_own_entries_only() {
    for t in TestDb::all().await {
        let ledger = t.ledger(signer("test.pdx/ledger"), 0);
        ledger
            .append_now(&actor("org-dev"), &tx(1, "org-buyer"))
            .await
            .unwrap(); // 0
        let rel = Release {
            release_id: "r1".into(),
            job_id: "j1".into(),
            developer_org: "org-dev".into(),
            output_hash: Hash32([1; 32]),
            model_hash: Hash32([2; 32]),
            dataset_versions: vec!["d1@1".into()],
            checks: vec![],
            reviewers: vec!["k9".into()],
        };
        ledger.append_now(&actor("org-review"), &rel).await.unwrap(); // 1
        let susp = Suspension {
            org: "org-bad".into(),
            action: "suspended".into(),
            reason: "misuse".into(),
        };
        ledger.append_now(&actor("org-sup"), &susp).await.unwrap(); // 2
        let seqs = |v: Vec<pdx_ledger::Entry>| v.iter().map(|e| e.seq).collect::<Vec<_>>();
        let see = |org: &str| Visibility::Org(org.into());
        assert_eq!(
            seqs(ledger.entries(0, 10, &see("org-buyer")).await.unwrap()),
            vec![0, 2]
        );
        assert_eq!(
            seqs(ledger.entries(0, 10, &see("org-dev")).await.unwrap()),
            vec![0, 1, 2]
        );
        assert_eq!(
            seqs(ledger.entries(0, 10, &see("org-stranger")).await.unwrap()),
            vec![2]
        );
        assert_eq!(
            seqs(ledger.entries(0, 10, &Visibility::All).await.unwrap()),
            vec![0, 1, 2]
        );
        let e0 = ledger.entry(0).await.unwrap().unwrap();
        assert!(!ledger.visible_to(&e0, "org-stranger").await.unwrap());
        assert!(ledger.visible_to(&e0, "org-buyer").await.unwrap());
        assert_eq!(e0.kind, EntryKind::Transaction);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode_with_a_busy_timeout() {
    let t = TestDb::sqlite().await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(t.db.pool())
        .await
        .unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(t.db.pool())
        .await
        .unwrap();
    assert!(busy >= 1000, "busy timeout {busy} ms");
    t.cleanup().await;
}

/// The export is the documented JSON lines: header, checkpoints, then every entry in seq
/// order, each exactly as serde writes `ExportLine` (however the rows were read).
#[tokio::test]
async fn export_writes_header_checkpoints_and_entries_as_json_lines() {
    use pdx_ledger::export::{EXPORT_FORMAT, ExportLine, export};
    use pdx_ledger::verify::CheckpointRecord;
    for t in TestDb::all().await {
        let ledger = t.ledger(signer("test.pdx/ledger"), 4);
        let mut db_tx = t.db.begin_write().await.unwrap();
        let items = (0..10)
            .map(|i| NewEntry::typed(&actor("org-dev"), &tx(i, "org-b\"\\")).unwrap())
            .collect();
        ledger.append_batch(&mut db_tx, items).await.unwrap();
        db_tx.commit().await.unwrap();
        let mut want = vec![ExportLine::Header {
            format: EXPORT_FORMAT.into(),
            origin: "test.pdx/ledger".into(),
            size: 10,
        }];
        for cp in ledger.checkpoints().await.unwrap() {
            want.push(ExportLine::Checkpoint(CheckpointRecord {
                size: cp.size,
                note: cp.note,
            }));
        }
        for e in ledger.entries(0, 100, &Visibility::All).await.unwrap() {
            want.push(ExportLine::Entry(e));
        }
        let want: String = want
            .iter()
            .map(|line| serde_json::to_string(line).unwrap() + "\n")
            .collect();
        let mut got = Vec::new();
        let n = export(&ledger, &mut got, |_, _| {}).await.unwrap();
        assert_eq!(n, 10, "{}", t.name);
        assert_eq!(String::from_utf8(got).unwrap(), want, "{}", t.name);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn entries_of_kind_pages_one_kind_in_seq_order() {
    for t in TestDb::all().await {
        let ledger = t.ledger(signer("test.pdx/ledger"), 0);
        for i in 0..7 {
            ledger
                .append_now(&actor("org-dev"), &tx(i, "org-buyer"))
                .await
                .unwrap();
            if i % 3 == 0 {
                let s = Suspension {
                    org: format!("org-{i}"),
                    action: "suspended".into(),
                    reason: "test".into(),
                };
                ledger.append_now(&actor("org-sup"), &s).await.unwrap();
            }
        }
        let all = ledger
            .entries_of_kind(&EntryKind::Suspension, 0, 100)
            .await
            .unwrap();
        let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
        // Transactions at 0, 2, 3, 4, 6, 7, 8; suspensions after the 1st, 4th and 7th.
        assert_eq!(seqs, vec![1, 5, 9], "{}", t.name);
        assert!(all.iter().all(|e| e.kind == EntryKind::Suspension));
        let page = ledger
            .entries_of_kind(&EntryKind::Suspension, 2, 1)
            .await
            .unwrap();
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![5]);
        let txs = ledger
            .entries_of_kind(&EntryKind::Transaction, 0, 100)
            .await
            .unwrap();
        assert_eq!(txs.len(), 7, "{}", t.name);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn entries_filtered_by_kind_page_and_keep_visibility() {
    for t in TestDb::all().await {
        let ledger = t.ledger(signer("test.pdx/ledger"), 0);
        let (mut txs, mut susps) = (Vec::new(), Vec::new());
        for i in 0..6 {
            let a = ledger
                .append_now(&actor("org-dev"), &tx(i, "org-buyer"))
                .await
                .unwrap();
            txs.push(a.seq);
            if i % 2 == 1 {
                let s = Suspension {
                    org: format!("org-{i}"),
                    action: "suspended".into(),
                    reason: "test".into(),
                };
                susps.push(ledger.append_now(&actor("org-sup"), &s).await.unwrap().seq);
            }
        }
        let seqs = |v: &[pdx_ledger::Entry], kind: &EntryKind| {
            assert!(v.iter().all(|e| &e.kind == kind), "{}: {v:?}", t.name);
            v.iter().map(|e| e.seq).collect::<Vec<_>>()
        };
        let see = |org: &str| Visibility::Org(org.into());
        let (tk, sk) = (EntryKind::Transaction, EntryKind::Suspension);
        let all = ledger
            .entries_filtered(0, 100, &Visibility::All, Some(&sk))
            .await
            .unwrap();
        assert_eq!(seqs(&all, &sk), susps, "{}", t.name);
        // A page of two starting mid-ledger holds the next two of that kind.
        let page = ledger
            .entries_filtered(susps[0] + 1, 2, &Visibility::All, Some(&sk))
            .await
            .unwrap();
        assert_eq!(seqs(&page, &sk), susps[1..3].to_vec(), "{}", t.name);
        // A private kind: parties see it, strangers do not; a public kind: everyone.
        for org in ["org-buyer", "org-dev"] {
            let got = ledger
                .entries_filtered(0, 100, &see(org), Some(&tk))
                .await
                .unwrap();
            assert_eq!(seqs(&got, &tk), txs, "{} {org}", t.name);
        }
        let page = ledger
            .entries_filtered(txs[2], 2, &see("org-buyer"), Some(&tk))
            .await
            .unwrap();
        assert_eq!(seqs(&page, &tk), txs[2..4].to_vec(), "{}", t.name);
        let hidden = ledger
            .entries_filtered(0, 100, &see("org-stranger"), Some(&tk))
            .await
            .unwrap();
        assert!(hidden.is_empty(), "{}: {hidden:?}", t.name);
        let public = ledger
            .entries_filtered(0, 100, &see("org-stranger"), Some(&sk))
            .await
            .unwrap();
        assert_eq!(seqs(&public, &sk), susps, "{}", t.name);
        // No kind: the same as `entries`.
        let unfiltered = ledger
            .entries_filtered(0, 100, &Visibility::All, None)
            .await
            .unwrap();
        assert_eq!(unfiltered.len(), txs.len() + susps.len(), "{}", t.name);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn entries_match_an_organisation_and_a_time_range_within_visibility() {
    for t in TestDb::all().await {
        let ledger = t.ledger(signer("test.pdx/ledger"), 0);
        let mut txs = Vec::new();
        for i in 0..4 {
            let buyer = if i % 2 == 0 { "org-even" } else { "org-odd" };
            txs.push(
                ledger
                    .append_now(&actor("org-dev"), &tx(i, buyer))
                    .await
                    .unwrap(),
            );
        }
        let s = Suspension {
            org: "org-even".into(),
            action: "suspended".into(),
            reason: "test".into(),
        };
        let suspension = ledger.append_now(&actor("org-sup"), &s).await.unwrap();
        let seqs = |v: &[pdx_ledger::Entry]| v.iter().map(|e| e.seq).collect::<Vec<_>>();
        let filter =
            |org: Option<&str>, since_ms: Option<i64>, until_ms: Option<i64>| EntryFilter {
                kind: None,
                org: org.map(String::from),
                since_ms,
                until_ms,
            };
        let all = Visibility::All;
        // An organisation's entries: those it is a party to and those it appended.
        let even = ledger
            .entries_matching(0, 100, &all, &filter(Some("org-even"), None, None))
            .await
            .unwrap();
        assert_eq!(
            seqs(&even),
            vec![txs[0].seq, txs[2].seq, suspension.seq],
            "{}",
            t.name
        );
        let dev = ledger
            .entries_matching(0, 100, &all, &filter(Some("org-dev"), None, None))
            .await
            .unwrap();
        assert_eq!(seqs(&dev), txs.iter().map(|a| a.seq).collect::<Vec<_>>());
        // With a kind and a page: the next one of that kind and organisation.
        let mut by_kind = filter(Some("org-even"), None, None);
        by_kind.kind = Some(EntryKind::Transaction);
        let page = ledger
            .entries_matching(txs[0].seq + 1, 1, &all, &by_kind)
            .await
            .unwrap();
        assert_eq!(seqs(&page), vec![txs[2].seq], "{}", t.name);
        // Within what the reader may see: a stranger filtering by org-even sees only the
        // public suspension, not the transactions.
        let stranger = Visibility::Org("org-stranger".into());
        let seen = ledger
            .entries_matching(0, 100, &stranger, &filter(Some("org-even"), None, None))
            .await
            .unwrap();
        assert_eq!(seqs(&seen), vec![suspension.seq], "{}", t.name);
        let public = ledger
            .entries_matching(
                0,
                100,
                &Visibility::Public,
                &filter(Some("org-odd"), None, None),
            )
            .await
            .unwrap();
        assert!(public.is_empty(), "{}: {public:?}", t.name);
        // A time range: [since, until).
        let (first, last) = (txs[0].timestamp_ms, suspension.timestamp_ms);
        let every = ledger
            .entries_matching(0, 100, &all, &filter(None, Some(first), Some(last + 1)))
            .await
            .unwrap();
        assert_eq!(every.len(), 5, "{}", t.name);
        let after = ledger
            .entries_matching(0, 100, &all, &filter(None, Some(last + 1), None))
            .await
            .unwrap();
        assert!(after.is_empty(), "{}", t.name);
        let before = ledger
            .entries_matching(0, 100, &all, &filter(None, None, Some(first)))
            .await
            .unwrap();
        assert!(before.is_empty(), "{}", t.name);
        t.cleanup().await;
    }
}
