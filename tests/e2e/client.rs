//! A client generated from the server's own `/openapi.json` by a standard generator runs
//! the whole journey (issue #25): register, upload, grant, run, release, list, order.
//!
//! The test starts a server (SQLite, and PostgreSQL when configured), makes an
//! organisation and a key for every role the journey plays, writes the document the
//! server serves to a temporary directory, byte for byte, and generates a Python package
//! from it with openapi-python-client (`tests/client/generator.yaml`: the package's name,
//! no formatting hooks, and the binary media types read as bytes). It then runs
//! `tests/client/journey.py`, which uses only that package: the provider registers the
//! conditional electricity dataset and uploads a CSV version, the developer asks for a
//! grant, the provider approves it, the developer runs a SQL model, a reviewer releases
//! the output, the developer downloads it and packages a product, the exchange lists it,
//! a buyer orders it with an `Idempotency-Key`, pays and downloads it, and the order,
//! the ledger and the reconciliation are read back. The script also counts the
//! operations of the document against the generated `api/` modules and names any the
//! generator dropped. Any failed assertion exits non-zero, which fails this test with
//! the script's output.
//!
//! Keys go to the script in its environment, never on a command line, and are redacted
//! from whatever is printed. Finally the test checks through the API that the journey
//! really acted: the order the script reports is the buyer's, delivered, with its
//! `Transaction` entry on the ledger, and the books reconcile.
//!
//! The packages are pinned in `tests/client/requirements.txt`, which the README's test
//! command installs; `PDX_CLIENT_PYTHON` picks the interpreter (default `python3`).
//! Missing packages fail the test rather than skip it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pdx::samples;
use serde_json::{Value, json};

use crate::products::org_key;
use crate::support::{TestServer, redact};

/// The generator's configuration.
const GENERATOR_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/client/generator.yaml");
/// The journey's script.
const JOURNEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/client/journey.py");
/// The generated package's name (as `generator.yaml` sets it).
const PACKAGE: &str = "pdx_client";
/// Rows of the uploaded electricity CSV.
const CSV_ROWS: usize = 600;
/// The longest the generator or the journey may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The interpreter that runs the generator and the journey.
fn python() -> String {
    std::env::var("PDX_CLIENT_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Fails, naming the requirements file, unless the generator and what the generated
/// package imports are installed.
async fn assert_packages(python: &str) {
    let probe = tokio::process::Command::new(python)
        .args(["-c", "import openapi_python_client, httpx, attrs"])
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot start {python}: {e}"));
    assert!(
        probe.status.success(),
        "the client's packages are missing; run `{python} -m pip install -r tests/client/requirements.txt`:\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );
}

/// Runs `command` (killed if it outlives [`STEP_TIMEOUT`]); its status and its stdout
/// and stderr together, with `keys` redacted.
async fn run(
    what: &str,
    command: &mut tokio::process::Command,
    keys: &[&str],
) -> (std::process::ExitStatus, String) {
    let out = tokio::time::timeout(STEP_TIMEOUT, command.kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("{what} took over {} s", STEP_TIMEOUT.as_secs()))
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let log = redact(
        &format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        keys,
    );
    (out.status, log)
}

/// What the generator prints when it left something out (an operation, a response or a
/// body it could not read), without failing.
const GENERATOR_WARNING: &str = "Warning(s) encountered while generating";

/// Writes the document `t` serves to `dir/openapi.json`, as served (the order of its
/// keys decides which media type the generator reads), and generates the client package
/// from it under `dir/client`; returns (the document's path, the directory to import
/// the package from, the generator's output).
async fn generate_client(t: &TestServer, python: &str, dir: &Path) -> (PathBuf, PathBuf, String) {
    let resp = t.http.get(t.url("/openapi.json")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET /openapi.json");
    let document = dir.join("openapi.json");
    std::fs::write(&document, resp.bytes().await.unwrap()).unwrap();
    let root = dir.join("client");
    let (status, log) = run(
        "openapi-python-client",
        tokio::process::Command::new(python)
            .args(["-m", "openapi_python_client", "generate", "--meta", "none"])
            .arg("--path")
            .arg(&document)
            .arg("--output-path")
            .arg(root.join(PACKAGE))
            .arg("--config")
            .arg(GENERATOR_CONFIG),
        &[],
    )
    .await;
    println!("openapi-python-client:\n{log}");
    assert!(
        status.success(),
        "openapi-python-client failed ({status}):\n{log}"
    );
    assert!(
        root.join(PACKAGE).join("api").is_dir(),
        "no api/ in the generated package:\n{log}"
    );
    (document, root, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_generated_from_the_openapi_document_runs_the_whole_journey() {
    let python = python();
    assert_packages(&python).await;
    let work = tempfile::tempdir().unwrap();
    let servers = TestServer::both().await;
    // The document is one for both backends: the client is generated once. The journey
    // runs even if the generator left something out, so that the script can name the
    // operations it dropped; the generator's warning fails the test at the end.
    let (document, client_root, generator_log) =
        generate_client(&servers[0], &python, work.path()).await;

    for t in servers {
        let b = t.backend;
        let (_, provider) = org_key(&t, "client-power-bureau", "provider", "guangzhou").await;
        let (_, developer) = org_key(&t, "client-analytics", "developer", "national").await;
        let (_, reviewer) = org_key(&t, "client-output-checkers", "reviewer", "national").await;
        let (_, exchange) = org_key(&t, "client-exchange", "exchange", "national").await;
        let (buyer_org, buyer) = org_key(&t, "client-buyer-co", "buyer", "national").await;
        let (_, supervisor) = org_key(&t, "client-regulator", "supervisor", "national").await;
        let authority = t.authority().await.to_string();

        let files = work.path().join(b);
        std::fs::create_dir_all(&files).unwrap();
        let dataset_path = files.join("dataset.json");
        let dataset = serde_json::to_vec_pretty(&samples::electricity_dataset()).unwrap();
        std::fs::write(&dataset_path, dataset).unwrap();
        let csv_path = files.join("electricity.csv");
        std::fs::write(&csv_path, samples::electricity_csv(CSV_ROWS, 25)).unwrap();
        let results_path = files.join("results.json");

        let keys = [
            provider.as_str(),
            developer.as_str(),
            reviewer.as_str(),
            exchange.as_str(),
            buyer.as_str(),
            supervisor.as_str(),
            authority.as_str(),
        ];
        let (status, log) = run(
            "the journey",
            tokio::process::Command::new(&python)
                .arg(JOURNEY)
                .arg("--client")
                .arg(&client_root)
                .arg("--openapi")
                .arg(&document)
                .arg("--dataset")
                .arg(&dataset_path)
                .arg("--csv")
                .arg(&csv_path)
                .arg("--results")
                .arg(&results_path)
                .env("PDX_URL", t.url(""))
                .env("PDX_PROVIDER_KEY", &provider)
                .env("PDX_DEVELOPER_KEY", &developer)
                .env("PDX_REVIEWER_KEY", &reviewer)
                .env("PDX_EXCHANGE_KEY", &exchange)
                .env("PDX_BUYER_KEY", &buyer)
                .env("PDX_SUPERVISOR_KEY", &supervisor)
                .env("PDX_AUTHORITY_KEY", &authority),
            &keys,
        )
        .await;
        println!("{b}: journey.py:\n{log}");
        assert!(
            status.success(),
            "{b}: journey.py failed ({status}):\n{log}"
        );

        // What the script reports, checked through the API.
        let results: Value = serde_json::from_slice(&std::fs::read(&results_path).unwrap())
            .unwrap_or_else(|e| panic!("{b}: results.json: {e}\n{log}"));
        assert_eq!(results["ok"], true, "{b}: {results}");
        let operations = results["operations"].as_u64().unwrap_or_default();
        assert!(operations > 100, "{b}: {results}");
        assert_eq!(results["generated"], operations, "{b}: {results}");
        assert_eq!(results["dropped"], json!([]), "{b}: {results}");
        let order_id = results["order_id"].as_str().unwrap_or_default();
        let (s, order) = t.get(&buyer, &format!("/v1/orders/{order_id}")).await;
        assert_eq!(s, 200, "{b}: {order}");
        assert_eq!(order["buyer_org"], buyer_org.as_str(), "{b}: {order}");
        assert_eq!(order["product_id"], results["product_id"], "{b}: {order}");
        assert_eq!(order["status"], "delivered", "{b}: {order}");
        let seq = order["transaction_seq"].as_u64().unwrap_or_default();
        let (s, entry) = t
            .get(&supervisor, &format!("/v1/ledger/entries/{seq}"))
            .await;
        assert_eq!(s, 200, "{b}: {entry}");
        assert_eq!(entry["kind"], "transaction", "{b}: {entry}");
        let (s, recon) = t.get(&supervisor, "/v1/reconciliation").await;
        assert_eq!(s, 200, "{b}: {recon}");
        assert_eq!(recon["exact"], true, "{b}: {recon}");
        assert_eq!(recon["ledger"]["transaction_entries"], 1, "{b}: {recon}");
        assert_eq!(
            recon["total"]["paid_minor"], order["price_minor"],
            "{b}: {recon}"
        );
        t.stop().await;
    }
    assert!(
        !generator_log.contains(GENERATOR_WARNING),
        "openapi-python-client left parts of the document out:\n{generator_log}"
    );
}
