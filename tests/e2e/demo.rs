//! `pdx demo` end to end: the binary drives the whole journey against its own
//! in-process server and writes a summary that scripts and the notebooks rely on.

use std::process::Command;

use serde_json::Value;

const PDX: &str = env!("CARGO_BIN_EXE_pdx");

#[test]
fn demo_runs_the_whole_journey_and_writes_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let summary_path = dir.path().join("summary.json");
    let out = Command::new(PDX)
        .args([
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
            "demo",
            "--summary-json",
            summary_path.to_str().unwrap(),
        ])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("verified: yes"), "{stdout}");
    assert!(stdout.contains("exact: yes"), "{stdout}");

    let s: Value = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    assert_eq!(s["ledger"]["verified"], true, "{s}");
    assert!(s["ledger"]["entries"].as_u64().unwrap() > 0, "{s}");
    let datasets = s["datasets"].as_array().unwrap();
    assert_eq!(datasets.len(), 3, "{s}");
    for d in datasets {
        assert!(!d["name"].as_str().unwrap().is_empty(), "{d}");
        assert!(d["k_achieved"].as_u64().unwrap() >= 1, "{d}");
        assert!(
            d["certificate"].as_str().unwrap().starts_with("PDX-CERT-"),
            "{d}"
        );
    }
    assert!(s["releases"].as_u64().unwrap() >= 2, "{s}");
    assert!(s["products"].as_u64().unwrap() >= 1, "{s}");
    assert!(s["orders"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["reconciliation"]["exact"], true, "{s}");
    // Step 9: one private lookup whose decrypted answer matched the clear one.
    assert_eq!(s["fhe"]["lookups"], 1, "{s}");
    // Every catalog entry was published by the data authority (GD21 Art.10-11); one was
    // first returned, revised and resubmitted.
    let governance = &s["governance"];
    assert!(
        governance["catalog_approvals"].as_u64().unwrap() >= 1,
        "{s}"
    );
    assert_eq!(governance["catalog_approvals"], 3, "{s}");
    assert_eq!(governance["catalog_returns"], 1, "{s}");
    assert_eq!(governance["catalog_revisions"], 1, "{s}");
    assert!(
        stdout.contains("approved by the data authority"),
        "{stdout}"
    );
    // The data authority published one yearly evaluation of the provider (GD21
    // Art.48-49), shown as one row. By hand: its grant applications were all answered
    // at once (answers on time n = d, at least the two sandbox grants); nothing was
    // objected to, and no version is due yet (those indicators do not apply); of its
    // three published entries, PUMS names no data element (GD21 Art.14), so 2 of 3 are
    // complete. Score = round(100 x (30 x 1 + 15 x 2/3) / (30 + 15)) = round(88.9) = 89.
    assert_eq!(governance["evaluations"], 1, "{s}");
    let rows = governance["evaluation_scores"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{s}");
    let row = &rows[0];
    let provider = s["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == "provider")
        .unwrap();
    assert_eq!(row["provider_org"], provider["org_id"], "{s}");
    let indicators: Vec<&str> = row["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    assert_eq!(indicators.len(), 5, "{s}");
    let answers = indicators[0].strip_prefix("answers_on_time ").unwrap();
    let (n, d) = answers.split_once('/').unwrap();
    assert_eq!(n, d, "{s}");
    assert!(d.parse::<u64>().unwrap() >= 2, "{s}");
    assert_eq!(indicators[1], "objections_handled 0/0", "{s}");
    assert_eq!(indicators[2], "corrections_on_time 0/0", "{s}");
    assert_eq!(indicators[3], "updates_on_time 0/0", "{s}");
    assert_eq!(indicators[4], "catalog_completeness 2/3", "{s}");
    assert_eq!(row["score"], 89, "{s}");
    assert!(stdout.contains("evaluation of "), "{stdout}");
    // The L3 Adult output needed two reviewers; the L2 outputs one.
    let runs = s["runs"].as_array().unwrap();
    assert!(runs.iter().any(|r| r["kind"] == "dp"), "{s}");
    assert!(runs.iter().any(|r| r["kind"] == "sql"), "{s}");
    assert!(runs.iter().any(|r| r["approvals"] == 2), "{s}");
    // The sold product traces back to its certificates, and every receipt on the way
    // verified offline against the published key: at least the listing and, per
    // release, the release, its model registration and its dataset's certificate.
    assert!(stdout.contains("lineage of"), "{stdout}");
    assert_eq!(s["lineage"]["complete"], true, "{s}");
    assert_eq!(s["lineage"]["problems"], serde_json::json!([]), "{s}");
    let receipts = s["lineage"]["receipts"].as_u64().unwrap();
    assert!(receipts >= 4, "{s}");
    assert_eq!(s["lineage"]["receipts_verified"], receipts, "{s}");
    // Paid = remitted once the period is settled.
    assert_eq!(
        s["reconciliation"]["paid_minor"], s["reconciliation"]["remitted_minor"],
        "{s}"
    );
    // The one command that opens the web portal on the demo's data, and where its
    // keys are: printed, and in the summary. The keys themselves are in that private
    // file only, never in the output.
    let data = dir.path().join("data");
    let command = s["portal"]["command"].as_str().unwrap();
    assert_eq!(
        command,
        format!("pdx --data-dir {} serve", data.display()),
        "{s}"
    );
    assert!(stdout.contains(command), "{stdout}");
    assert!(stdout.contains("http://127.0.0.1:8080/signin"), "{stdout}");
    let keys_file = s["portal"]["keys_file"].as_str().unwrap();
    assert_eq!(
        keys_file,
        data.join("portal-keys.txt").display().to_string()
    );
    let keys = std::fs::read_to_string(keys_file).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(keys_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key file is readable by others");
    }
    for role in [
        "provider",
        "developer",
        "reviewer",
        "exchange",
        "buyer",
        "supervisor",
    ] {
        let line = keys
            .lines()
            .find(|l| l.split_whitespace().next() == Some(role))
            .unwrap_or_else(|| panic!("no {role} key in {keys_file}"));
        let key = line.split_whitespace().last().unwrap();
        assert!(key.starts_with("pdx_"), "{line}");
        assert!(
            !stdout.contains(key) && !stderr.contains(key),
            "a key was printed"
        );
    }
}
