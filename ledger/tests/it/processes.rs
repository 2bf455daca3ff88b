//! Real processes against one database: a writer killed with SIGKILL loses nothing it
//! acknowledged, and two processes appending concurrently keep one contiguous chain.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use pdx_ledger::signing;
use pdx_ledger::store::Visibility;

use crate::support::TestDb;

const LOAD: &str = env!("CARGO_BIN_EXE_ledger-load");

fn parse_ack(line: &str) -> Option<(u64, String)> {
    let mut parts = line.split_whitespace();
    (parts.next()? == "ack").then_some(())?;
    Some((parts.next()?.parse().ok()?, parts.next()?.to_string()))
}

#[tokio::test]
async fn sigkilled_writer_loses_no_acknowledged_append() {
    for t in TestDb::all().await {
        let key = t.dir.path().join("ledger.key");
        let mut child = Command::new(LOAD)
            .args(["--url", &t.url, "--key", key.to_str().unwrap()])
            .args(["--tasks", "2", "--appends", "0", "--checkpoint-every", "10"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acked = BTreeMap::new();
        while acked.len() < 150 {
            let line = lines.next().expect("writer exited early").unwrap();
            let (seq, hash) = parse_ack(&line).unwrap();
            acked.insert(seq, hash);
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Whatever it printed before dying was acknowledged too.
        for line in lines.map_while(Result::ok) {
            if let Some((seq, hash)) = parse_ack(&line) {
                acked.insert(seq, hash);
            }
        }

        // "Restart": a new process opens the same database and key.
        let signer = signing::load_or_create(&key, "unused").unwrap();
        let ledger = t.ledger(signer, 10);
        for (seq, hash) in &acked {
            let e = ledger
                .entry(*seq)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{}: acked seq {seq} lost", t.name));
            assert_eq!(
                &e.entry_hash.to_hex(),
                hash,
                "{}: seq {seq} changed",
                t.name
            );
        }
        let size = ledger.size().await.unwrap();
        assert!(size > *acked.keys().last().unwrap());
        let report = ledger
            .verify_with(&ledger.verifier(), |_, _| {})
            .await
            .unwrap()
            .unwrap();
        assert_eq!(report.entries, size);
        // The ledger carries on after the crash.
        let more = pdx_ledger::kinds::Suspension {
            org: "o".into(),
            action: "suspended".into(),
            reason: "r".into(),
        };
        let next = ledger
            .append_now(&pdx_ledger::Actor::system(), &more)
            .await
            .unwrap();
        assert_eq!(next.seq, size);
        ledger
            .verify_with(&ledger.verifier(), |_, _| {})
            .await
            .unwrap()
            .unwrap();
        t.cleanup().await;
    }
}

#[tokio::test]
async fn two_processes_of_four_tasks_append_8000_contiguous_entries() {
    for t in TestDb::all().await {
        let key = t.dir.path().join("ledger.key");
        // Create the key first so both processes sign with the same one.
        let signer = signing::load_or_create(&key, "load.pdx/ledger").unwrap();
        let children: Vec<_> = (0..2)
            .map(|_| {
                Command::new(LOAD)
                    .args(["--url", &t.url, "--key", key.to_str().unwrap()])
                    .args([
                        "--tasks",
                        "4",
                        "--appends",
                        "1000",
                        "--checkpoint-every",
                        "100",
                    ])
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        // Drain both pipes at once: a writer blocked on a full pipe would stall.
        let outputs: Vec<_> = children
            .into_iter()
            .map(|c| std::thread::spawn(move || c.wait_with_output().unwrap()))
            .collect();
        let mut acked = BTreeMap::new();
        for handle in outputs {
            let out = handle.join().unwrap();
            assert!(out.status.success(), "{}: a writer failed", t.name);
            for line in String::from_utf8(out.stdout).unwrap().lines() {
                let (seq, hash) = parse_ack(line).unwrap();
                assert!(
                    acked.insert(seq, hash).is_none(),
                    "{}: seq {seq} acked twice",
                    t.name
                );
            }
        }
        assert_eq!(acked.len(), 8000);
        assert_eq!(
            acked.keys().copied().collect::<Vec<_>>(),
            (0..8000).collect::<Vec<u64>>()
        );
        let ledger = t.ledger(signer, 100);
        assert_eq!(ledger.size().await.unwrap(), 8000);
        let mut count = 0u64;
        let mut from = 0;
        loop {
            let page = ledger.entries(from, 1000, &Visibility::All).await.unwrap();
            if page.is_empty() {
                break;
            }
            for e in &page {
                assert_eq!(e.seq, count);
                assert_eq!(e.entry_hash.to_hex(), acked[&e.seq]);
                count += 1;
            }
            from = count;
        }
        assert_eq!(count, 8000);
        let report = ledger
            .verify_with(&ledger.verifier(), |_, _| {})
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (report.entries, report.checkpoints),
            (8000, 80),
            "{}",
            t.name
        );
        t.cleanup().await;
    }
}
