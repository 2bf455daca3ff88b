//! Products and trading over HTTP: a developer packages its own released outputs, the
//! exchange lists them, buyers order (with idempotency keys), pay and download under a
//! licence, the exchange settles and refunds, and the books reconcile to the fen, on
//! the HTTP endpoint and with `pdx reconcile`.
//!
//! The releases come from the real sandbox flow over HTTP: a provider uploads the
//! electricity table (unconditionally open, research-only, and conditionally open under
//! a research-only grant), the developer runs a SQL model, a reviewer releases it.
//! Products read a manual clock so that settlement periods end and licence terms run
//! out without waiting.

use std::process::Command;

use pdx::auth::Role;
use pdx::http::policies::POLICIES;
use pdx::samples;
use pdx_ledger::Receipt;
use pdx_products::archive::read_tar;
use pdx_products::{Clock, Period};
use pdx_sandbox::catalog::OpenAttribute;
use reqwest::Method;
use serde_json::{Value, json};

use crate::catalog::{register, upload_certified, wait_job};
use crate::support::{TestServer, key_id, post};

const PDX: &str = env!("CARGO_BIN_EXE_pdx");
const DAY_MS: i64 = 86_400_000;
const CSV_ROWS: usize = 600;
pub(crate) const PRICE: i64 = 12_345;
const REGION: &str = "guangzhou";
pub(crate) const MODEL_SQL: &str =
    "SELECT district, COUNT(*) AS enterprises FROM data GROUP BY district";

/// 2030-03-05T10:00:00Z: where the products' manual clock starts.
fn start_ms() -> i64 {
    Period::parse("2030-03").unwrap().from_ms + 4 * DAY_MS + 10 * 3_600_000
}

/// Creates an organisation in a region and a key for it; returns (org id, key).
pub(crate) async fn org_key(
    t: &TestServer,
    name: &str,
    role: &str,
    region: &str,
) -> (String, String) {
    let (s, org) = t
        .call(
            Some(&t.admin),
            Method::POST,
            "/v1/orgs",
            Some(json!({"name": name, "region": region})),
        )
        .await;
    assert_eq!(s, 201, "{org}");
    let org_id = org["id"].as_str().unwrap().to_string();
    let (s, key) = t
        .call(
            Some(&t.admin),
            Method::POST,
            "/v1/keys",
            Some(json!({"org": org_id, "role": role})),
        )
        .await;
    assert_eq!(s, 201, "{key}");
    (org_id, key["key"].as_str().unwrap().to_string())
}

/// Registers an electricity dataset and certifies a version of it.
pub(crate) async fn dataset(
    t: &TestServer,
    provider: &str,
    title: &str,
    open: OpenAttribute,
    research_only: bool,
) -> String {
    let mut meta = samples::electricity_dataset();
    meta.title = title.into();
    meta.open_attribute = open;
    meta.research_only = research_only;
    meta.elements = Vec::new();
    let id = register(t, provider, &serde_json::to_value(&meta).unwrap()).await;
    let csv = samples::electricity_csv(CSV_ROWS, 7);
    upload_certified(t, provider, &id, "?format=csv", csv.into_bytes()).await;
    id
}

/// Runs the SQL model over a dataset as `dev` and has `reviewer` release the output;
/// returns the released output (with `release_id`, `output_hash`, `model_id`).
pub(crate) async fn release(
    t: &TestServer,
    dev: &str,
    reviewer: &str,
    dataset: &str,
    grant: Option<&str>,
) -> Value {
    let (s, model) = post(
        t,
        dev,
        "/v1/models",
        json!({"name": "districts", "kind": "sql", "body": MODEL_SQL}),
    )
    .await;
    assert_eq!(s, 201, "{model}");
    let mut input = json!({"dataset_id": dataset});
    if let Some(g) = grant {
        input["grant_id"] = json!(g);
    }
    let (s, job) = post(
        t,
        dev,
        "/v1/runs",
        json!({"model_id": model["id"], "inputs": [input]}),
    )
    .await;
    assert_eq!(s, 202, "{job}");
    let job = wait_job(t, dev, job["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let output = job["result"]["output_id"].as_str().unwrap().to_string();
    let (s, released) = post(
        t,
        reviewer,
        &format!("/v1/review/{output}"),
        json!({"approve": true, "reason": "district counts over hundreds of enterprises"}),
    )
    .await;
    assert_eq!(s, 200, "{released}");
    assert_eq!(released["status"], "released", "{released}");
    released
}

/// Everyone in the market and the releases they trade.
pub(crate) struct Market {
    pub(crate) t: TestServer,
    pub(crate) clock: Clock,
    pub(crate) provider: String,
    pub(crate) provider_org: String,
    pub(crate) dev: String,
    pub(crate) dev_org: String,
    pub(crate) other_dev: String,
    pub(crate) reviewer: String,
    pub(crate) exchange: String,
    pub(crate) buyer: String,
    pub(crate) buyer_org: String,
    pub(crate) buyer2: String,
    pub(crate) supervisor: String,
    /// The unconditionally open dataset.
    pub(crate) dataset: String,
    /// `dev`'s release over the open dataset.
    pub(crate) release: Value,
}

pub(crate) async fn market(postgres: bool) -> Option<Market> {
    let clock = Clock::manual(start_ms());
    let c = clock.clone();
    let t = TestServer::start_with(postgres, move |app| {
        app.products = app.products.clone().with_clock(c);
    })
    .await?;
    let (provider_org, provider) = org_key(&t, "power-bureau", "provider", REGION).await;
    let (dev_org, dev) = org_key(&t, "energy-analytics", "developer", "national").await;
    let (_, other_dev) = org_key(&t, "rival-analytics", "developer", "national").await;
    let (_, reviewer) = org_key(&t, "output-checkers", "reviewer", "national").await;
    let (_, exchange) = org_key(&t, "data-exchange", "exchange", "national").await;
    let (buyer_org, buyer) = org_key(&t, "buyer-co", "buyer", "national").await;
    let (_, buyer2) = org_key(&t, "other-buyer-co", "buyer", "national").await;
    let (_, supervisor) = org_key(&t, "regulator", "supervisor", "national").await;
    let dataset = dataset(
        &t,
        &provider,
        "Enterprise electricity (open)",
        OpenAttribute::Unconditional,
        false,
    )
    .await;
    let release = release(&t, &dev, &reviewer, &dataset, None).await;
    Some(Market {
        t,
        clock,
        provider,
        provider_org,
        dev,
        dev_org,
        other_dev,
        reviewer,
        exchange,
        buyer,
        buyer_org,
        buyer2,
        supervisor,
        dataset,
        release,
    })
}

pub(crate) fn product_body(releases: Value, licence: &str, split: [u32; 3]) -> Value {
    json!({
        "title": "District enterprise counts",
        "description": "Enterprises per district, from certified electricity records",
        "licence": {"kind": licence, "term_days": 30},
        "price_minor": PRICE,
        "split": {
            "public_finance_bp": split[0],
            "platform_bp": split[1],
            "developer_bp": split[2]
        },
        "releases": releases
    })
}

pub(crate) const SPLIT: [u32; 3] = [3_000, 1_000, 6_000];

/// `m.dev`'s commercial product on the release `release_id`, listed by the exchange;
/// returns its id and the listing's answer.
pub(crate) async fn listed_product(m: &Market, release_id: &str) -> (String, Value) {
    let t = &m.t;
    let b = t.backend;
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
    (pid, listed)
}

/// `buyer` orders the product `pid` (with the idempotency key `idem`) and pays for it
/// under `payment_ref`; returns the order's id.
pub(crate) async fn paid_order(
    t: &TestServer,
    buyer: &str,
    pid: &str,
    idem: &str,
    payment_ref: &str,
) -> String {
    let b = t.backend;
    let resp = place(t, buyer, Some(idem), json!({"product_id": pid})).await;
    assert_eq!(resp.status().as_u16(), 201, "{b}");
    let order: Value = resp.json().await.unwrap();
    let oid = order["id"].as_str().unwrap().to_string();
    let (s, paid) = post(
        t,
        buyer,
        &format!("/v1/orders/{oid}/pay"),
        json!({"payment_ref": payment_ref}),
    )
    .await;
    assert_eq!(s, 200, "{b}: {paid}");
    oid
}

/// GET with the raw response (downloads are not JSON).
async fn raw_get(t: &TestServer, key: &str, path: &str) -> reqwest::Response {
    t.http
        .get(t.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

/// Asserts a problem+json refusal with this status and problem type; returns the detail.
async fn refused(resp: reqwest::Response, status: u16, slug: &str) -> String {
    assert_eq!(resp.status().as_u16(), status);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], format!("urn:pdx:problem:{slug}"), "{body}");
    body["detail"].as_str().unwrap().to_string()
}

pub(crate) async fn place(
    t: &TestServer,
    key: &str,
    idem: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut req = t
        .http
        .post(t.url("/v1/orders"))
        .bearer_auth(key)
        .json(&body);
    if let Some(k) = idem {
        req = req.header("Idempotency-Key", k);
    }
    req.send().await.unwrap()
}

/// The payload of a ledger entry as JSON (it is served as its canonical text).
fn payload_of(entry: &Value) -> Value {
    match &entry["payload"] {
        Value::String(text) => serde_json::from_str(text).unwrap(),
        other => other.clone(),
    }
}

/// Runs `pdx reconcile` against the test server's database; returns (exit code, stdout).
fn cli_reconcile(t: &TestServer, group_by: &str) -> (Option<i32>, String) {
    let out = Command::new(PDX)
        .args([
            "--data-dir",
            t.dir.path().to_str().unwrap(),
            "--database-url",
            &t.app.config.database_url,
            "reconcile",
            "--group-by",
            group_by,
        ])
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn a_product_goes_from_release_to_listing_order_download_settlement_and_reconciliation() {
    for postgres in [false, true] {
        let Some(m) = market(postgres).await else {
            continue;
        };
        let t = &m.t;
        let b = t.backend;
        let release_id = m.release["release_id"].as_str().unwrap().to_string();

        // Create: the manifest comes from the sandbox's records.
        let (s, product) = post(
            t,
            &m.dev,
            "/v1/products",
            product_body(json!([release_id]), "commercial_internal", SPLIT),
        )
        .await;
        assert_eq!(s, 201, "{b}: {product}");
        let pid = product["id"].as_str().unwrap().to_string();
        assert_eq!(product["status"], "pending_review");
        assert_eq!(product["developer_org"], m.dev_org.as_str());
        assert_eq!(
            product["regions"],
            json!([{"region": REGION, "datasets": 1}])
        );
        let source = &product["manifest"]["sources"][0];
        assert_eq!(source["release_id"], release_id.as_str());
        assert_eq!(source["output_hash"], m.release["output_hash"]);
        assert_eq!(source["reviewers"], json!([key_id(t, &m.reviewer).await]));
        assert_eq!(source["research_only_grant"], false);
        let (s, model) = t
            .get(
                &m.dev,
                &format!("/v1/models/{}", m.release["model_id"].as_str().unwrap()),
            )
            .await;
        assert_eq!(s, 200, "{model}");
        assert_eq!(source["model_hash"], model["model_hash"]);
        let (s, version) = t
            .get(&m.dev, &format!("/v1/datasets/{}/versions/1", m.dataset))
            .await;
        assert_eq!(s, 200, "{version}");
        let ds = &source["datasets"][0];
        assert_eq!(ds["dataset_id"], m.dataset.as_str());
        assert_eq!(ds["title"], "Enterprise electricity (open)");
        assert_eq!(ds["source_department"], "Power Supply Bureau");
        assert_eq!(ds["provider_org"], m.provider_org.as_str());
        assert_eq!(ds["provider_region"], REGION);
        assert_eq!(ds["certificate_no"], version["certificate_no"]);
        assert_eq!(ds["content_hash"], version["content_hash"]);
        assert_eq!(ds["research_only"], false);
        assert_eq!(ds["acquired"].as_str().unwrap().len(), 10, "{ds}");

        // Pending products are the developer's, the exchange's and supervisors' only.
        assert_eq!(t.get(&m.buyer, &format!("/v1/products/{pid}")).await.0, 404);
        assert_eq!(
            t.get(&m.other_dev, &format!("/v1/products/{pid}")).await.0,
            404
        );
        assert_eq!(t.get(&m.dev, &format!("/v1/products/{pid}")).await.0, 200);
        assert_eq!(
            t.get(&m.exchange, &format!("/v1/products/{pid}")).await.0,
            200
        );
        assert_eq!(
            t.get(&m.supervisor, &format!("/v1/products/{pid}")).await.0,
            200
        );
        let (s, listed) = t.get(&m.buyer, "/v1/products").await;
        assert_eq!(s, 200, "{listed}");
        assert_eq!(listed, json!([]), "{b}: a pending product is not on sale");
        assert_eq!(
            t.get(&m.buyer, "/v1/products?status=pending_review")
                .await
                .0,
            403
        );
        let (s, mine) = t.get(&m.dev, "/v1/products?mine=true").await;
        assert_eq!(s, 200, "{mine}");
        assert_eq!(mine[0]["id"], pid.as_str());
        let (s, queue) = t
            .get(&m.exchange, "/v1/products?status=pending_review")
            .await;
        assert_eq!(s, 200);
        assert_eq!(queue.as_array().unwrap().len(), 1, "{queue}");
        // Not yet listed: nothing to order.
        let resp = place(t, &m.buyer, Some("early"), json!({"product_id": pid})).await;
        refused(resp, 409, "conflict").await;

        // The exchange lists it: registration number and ProductListing entry.
        let (s, listed) = t
            .call(
                Some(&m.exchange),
                Method::POST,
                &format!("/v1/products/{pid}/list"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{b}: {listed}");
        assert_eq!(listed["status"], "listed");
        let registration = listed["registration_no"].as_str().unwrap().to_string();
        assert!(registration.starts_with("PDX-DP-2030-"), "{registration}");
        let seq = listed["listing_seq"].as_u64().unwrap();
        let (s, entry) = t.get(&m.buyer, &format!("/v1/ledger/entries/{seq}")).await;
        assert_eq!(s, 200, "{b}: listings are public: {entry}");
        assert_eq!(entry["kind"], "product_listing");
        let payload = payload_of(&entry);
        assert_eq!(payload["manifest_hash"], listed["manifest_hash"]);
        assert_eq!(payload["registration_no"], registration.as_str());
        let (s, on_sale) = t.get(&m.buyer, "/v1/products").await;
        assert_eq!(s, 200);
        assert_eq!(on_sale[0]["id"], pid.as_str());
        let (s, shown) = t.get(&m.buyer, &format!("/v1/products/{pid}")).await;
        assert_eq!(s, 200);
        assert_eq!(
            shown["manifest"], product["manifest"],
            "{b}: the manifest is on the listing"
        );
        // Another developer cannot delist it.
        let (s, _) = post(
            t,
            &m.other_dev,
            &format!("/v1/products/{pid}/delist"),
            json!({"reason": "not mine"}),
        )
        .await;
        assert_eq!(s, 404, "{b}");

        // Orders need an Idempotency-Key of 1 to 255 printable characters.
        let order_body = json!({"product_id": pid});
        let d = refused(
            place(t, &m.buyer, None, order_body.clone()).await,
            400,
            "bad-request",
        )
        .await;
        assert!(d.contains("Idempotency-Key"), "{d}");
        let long = "k".repeat(256);
        refused(
            place(t, &m.buyer, Some(&long), order_body.clone()).await,
            400,
            "bad-request",
        )
        .await;
        let resp = place(t, &m.buyer, Some("order-1"), order_body.clone()).await;
        assert_eq!(resp.status().as_u16(), 201, "{b}");
        assert!(resp.headers().get("location").is_some());
        let order: Value = resp.json().await.unwrap();
        let oid = order["id"].as_str().unwrap().to_string();
        assert_eq!(order["status"], "pending");
        assert_eq!(order["price_minor"], PRICE);
        assert_eq!(order["licence_kind"], "commercial_internal");
        // A retry returns the same order; the same key for another request is refused.
        let resp = place(t, &m.buyer, Some("order-1"), order_body.clone()).await;
        assert_eq!(resp.status().as_u16(), 200, "{b}");
        assert_eq!(resp.headers()["idempotent-replayed"], "true");
        let again: Value = resp.json().await.unwrap();
        assert_eq!(again["id"], oid.as_str());
        // The placement's answer is built without reading the order back: it must be
        // exactly what the stored order reads as.
        assert_eq!(
            again, order,
            "{b}: the placement differs from the stored order"
        );
        refused(
            place(
                t,
                &m.buyer,
                Some("order-1"),
                json!({"product_id": "prd_other"}),
            )
            .await,
            422,
            "idempotency-key-reused",
        )
        .await;
        // The same key from another buyer is that buyer's own order.
        let resp = place(t, &m.buyer2, Some("order-1"), order_body.clone()).await;
        assert_eq!(resp.status().as_u16(), 201, "{b}");

        // Unpaid: no download. Another buyer's order: not found.
        refused(
            raw_get(t, &m.buyer, &format!("/v1/orders/{oid}/download")).await,
            402,
            "not-paid",
        )
        .await;
        assert_eq!(t.get(&m.buyer2, &format!("/v1/orders/{oid}")).await.0, 404);
        let (s, _) = post(
            t,
            &m.buyer2,
            &format!("/v1/orders/{oid}/pay"),
            json!({"payment_ref": "theirs"}),
        )
        .await;
        assert_eq!(s, 404);
        assert_eq!(
            raw_get(t, &m.buyer2, &format!("/v1/orders/{oid}/download"))
                .await
                .status()
                .as_u16(),
            404
        );

        // Pay (twice: one Transaction entry).
        let (s, paid) = post(
            t,
            &m.buyer,
            &format!("/v1/orders/{oid}/pay"),
            json!({"payment_ref": "bank-0001"}),
        )
        .await;
        assert_eq!(s, 200, "{b}: {paid}");
        assert_eq!(paid["status"], "paid");
        let tx_seq = paid["transaction_seq"].as_u64().unwrap();
        let (s, repaid) = post(
            t,
            &m.buyer,
            &format!("/v1/orders/{oid}/pay"),
            json!({"payment_ref": "bank-0001"}),
        )
        .await;
        assert_eq!(s, 200, "{repaid}");
        assert_eq!(repaid["transaction_seq"], tx_seq);
        // The payment's answer is built without reading the order back; a repeated
        // payment reads it: the two must agree field for field.
        assert_eq!(
            repaid, paid,
            "{b}: the payment differs from the stored order"
        );
        let (s, _) = post(
            t,
            &m.buyer,
            &format!("/v1/orders/{oid}/pay"),
            json!({"payment_ref": "bank-9999"}),
        )
        .await;
        assert_eq!(s, 409, "{b}: paid under another reference");

        // Download: data, manifest, licence and receipt.
        let resp = raw_get(t, &m.buyer, &format!("/v1/orders/{oid}/download")).await;
        assert_eq!(resp.status().as_u16(), 200, "{b}");
        assert_eq!(resp.headers()["content-type"], "application/x-tar");
        let disposition = resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_string();
        let top = format!("{registration}-{oid}");
        assert_eq!(disposition, format!("attachment; filename=\"{top}.tar\""));
        let bytes = resp.bytes().await.unwrap();
        let members = read_tar(&bytes).unwrap();
        let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
        let member = |name: &str| {
            members
                .iter()
                .find(|(n, _)| *n == format!("{top}/{name}"))
                .map(|(_, d)| d.clone())
                .unwrap_or_else(|| panic!("{b}: no {name} in {names:?}"))
        };
        let manifest = member("manifest.json");
        assert_eq!(
            blake3::hash(&manifest).to_hex().as_str(),
            listed["manifest_hash"].as_str().unwrap(),
            "{b}: manifest.json is the listed manifest, byte for byte"
        );
        let data = member(&format!("data/00-{release_id}.parquet"));
        assert_eq!(
            blake3::hash(&data).to_hex().as_str(),
            m.release["output_hash"].as_str().unwrap(),
            "{b}: the data is the released output"
        );
        let licence: Value = serde_json::from_slice(&member("licence.json")).unwrap();
        assert_eq!(licence["kind"], "commercial_internal");
        assert_eq!(licence["licensee"], m.buyer_org.as_str());
        assert_eq!(licence["registration_no"], registration.as_str());
        assert!(
            String::from_utf8(member("LICENCE.txt"))
                .unwrap()
                .contains(&registration)
        );
        let receipt: Receipt = serde_json::from_slice(&member("receipt.json")).unwrap();
        receipt.verify(&t.app.ledger.verifier()).unwrap();
        assert_eq!(receipt.entry.seq, tx_seq);
        assert!(
            String::from_utf8(member("BLAKE3SUMS"))
                .unwrap()
                .contains("manifest.json")
        );
        let (s, delivered) = t.get(&m.buyer, &format!("/v1/orders/{oid}")).await;
        assert_eq!(s, 200);
        assert_eq!(delivered["status"], "delivered");
        // The exchange and supervisors read any order.
        assert_eq!(
            t.get(&m.exchange, &format!("/v1/orders/{oid}")).await.0,
            200
        );
        assert_eq!(
            t.get(&m.supervisor, &format!("/v1/orders/{oid}")).await.0,
            200
        );
        let (s, mine) = t.get(&m.buyer, "/v1/orders").await;
        assert_eq!(s, 200);
        assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
        // The exchange's order book: every buyer's orders, narrowed by status or buyer;
        // a buyer naming another buyer is refused.
        let (s, book) = t.get(&m.exchange, "/v1/orders?status=delivered").await;
        assert_eq!(s, 200, "{b}: {book}");
        assert_eq!(book[0]["id"], oid.as_str(), "{b}: {book}");
        let (s, none) = t.get(&m.supervisor, "/v1/orders?status=refunded").await;
        assert_eq!((s, none), (200, json!([])), "{b}");
        let buyer_org = delivered["buyer_org"].as_str().unwrap();
        let (s, theirs) = t
            .get(&m.exchange, &format!("/v1/orders?buyer_org={buyer_org}"))
            .await;
        assert_eq!(s, 200);
        assert_eq!(theirs.as_array().unwrap().len(), 1, "{b}: {theirs}");
        let (s, problem) = t
            .get(&m.buyer, "/v1/orders?buyer_org=org-someone-else")
            .await;
        assert_eq!(s, 403, "{b}: {problem}");
        let (s, _) = t.get(&m.exchange, "/v1/orders?status=lost").await;
        assert_eq!(s, 400, "{b}: an unknown status is the client's mistake");

        // Settlement: only once the month has ended; re-running changes nothing.
        let period = "2030-03";
        let (s, _) = t
            .call(
                Some(&m.exchange),
                Method::POST,
                &format!("/v1/settlements/{period}"),
                None,
            )
            .await;
        assert_eq!(s, 409, "{b}: March has not ended");
        m.clock
            .set_ms(Period::parse("2030-04").unwrap().from_ms + DAY_MS);
        let (s, settled) = t
            .call(
                Some(&m.exchange),
                Method::POST,
                &format!("/v1/settlements/{period}"),
                None,
            )
            .await;
        assert_eq!(s, 201, "{b}: {settled}");
        let lines = settled["remittances"].as_array().unwrap();
        let payees: Vec<&str> = lines.iter().map(|l| l["payee"].as_str().unwrap()).collect();
        assert_eq!(lines.len(), 3, "{settled}");
        assert!(payees.contains(&format!("public-finance:{REGION}").as_str()));
        assert!(payees.contains(&m.dev_org.as_str()));
        assert!(payees.contains(&"pdx"));
        let sum: i64 = lines
            .iter()
            .map(|l| l["amount_minor"].as_i64().unwrap())
            .sum();
        assert_eq!(sum, PRICE, "{b}: the parts sum to the price");
        for l in lines {
            let bp = match l["payee_kind"].as_str().unwrap() {
                "public_finance" => 3_000,
                "platform" => 1_000,
                _ => 6_000,
            };
            let exact = PRICE as f64 * bp as f64 / 10_000.0;
            assert!(
                (l["amount_minor"].as_i64().unwrap() as f64 - exact).abs() < 1.0,
                "{l}"
            );
        }
        let (s, rerun) = t
            .call(
                Some(&m.exchange),
                Method::POST,
                &format!("/v1/settlements/{period}"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{b}: {rerun}");
        assert_eq!(rerun["remittances"], settled["remittances"]);
        assert_eq!(rerun["newly_settled"], false);
        let (s, stored) = t
            .get(&m.supervisor, &format!("/v1/settlements/{period}"))
            .await;
        assert_eq!(s, 200);
        assert_eq!(stored["remittances"], settled["remittances"]);
        assert_eq!(
            t.get(&m.buyer, &format!("/v1/settlements/{period}"))
                .await
                .0,
            403
        );
        assert_eq!(t.get(&m.exchange, "/v1/settlements/2030-02").await.0, 404);

        // A refund after settlement revokes the licence and adjusts the next period.
        let (s, refunded) = post(
            t,
            &m.exchange,
            &format!("/v1/orders/{oid}/refund"),
            json!({"reason": "buyer dispute upheld"}),
        )
        .await;
        assert_eq!(s, 200, "{b}: {refunded}");
        assert_eq!(refunded["status"], "refunded");
        refused(
            raw_get(t, &m.buyer, &format!("/v1/orders/{oid}/download")).await,
            403,
            "licence-revoked",
        )
        .await;

        // Download after the term: a second order, paid now, 31 days later.
        let resp = place(t, &m.buyer, Some("order-2"), order_body.clone()).await;
        assert_eq!(resp.status().as_u16(), 201);
        let order2: Value = resp.json().await.unwrap();
        let oid2 = order2["id"].as_str().unwrap().to_string();
        let (s, _) = post(
            t,
            &m.buyer,
            &format!("/v1/orders/{oid2}/pay"),
            json!({"payment_ref": "bank-0002"}),
        )
        .await;
        assert_eq!(s, 200);
        assert_eq!(
            raw_get(t, &m.buyer, &format!("/v1/orders/{oid2}/download"))
                .await
                .status()
                .as_u16(),
            200
        );
        m.clock.advance_ms(31 * DAY_MS);
        let d = refused(
            raw_get(t, &m.buyer, &format!("/v1/orders/{oid2}/download")).await,
            403,
            "licence-expired",
        )
        .await;
        assert!(d.contains("expired"), "{d}");

        // Reconciliation: paid − refunded = remitted + unsettled, to the fen.
        for group in ["total", "provider_region", "developer", "period"] {
            let (s, recon) = t
                .get(
                    &m.supervisor,
                    &format!("/v1/reconciliation?group_by={group}"),
                )
                .await;
            assert_eq!(s, 200, "{b}: {recon}");
            assert_eq!(recon["exact"], true, "{b} {group}: {recon}");
        }
        let (_, recon) = t.get(&m.exchange, "/v1/reconciliation").await;
        assert_eq!(recon["total"]["paid_minor"], 2 * PRICE);
        assert_eq!(recon["total"]["refunded_minor"], PRICE);
        assert_eq!(recon["total"]["remitted_minor"], PRICE);
        assert_eq!(recon["total"]["unsettled_minor"], 0);
        assert_eq!(recon["ledger"]["transaction_entries"], 2);
        assert_eq!(recon["ledger"]["refund_entries"], 1);
        assert_eq!(recon["ledger"]["remittance_entries"], 3);
        assert_eq!(t.get(&m.buyer, "/v1/reconciliation").await.0, 403);
        assert_eq!(
            t.get(&m.exchange, "/v1/reconciliation?group_by=colour")
                .await
                .0,
            400
        );

        // The CLI agrees, and exits non-zero once the books are tampered with.
        let (code, out) = cli_reconcile(t, "provider-region");
        assert_eq!(code, Some(0), "{b}: {out}");
        assert!(
            out.contains("balanced") && out.contains(REGION),
            "{b}: {out}"
        );
        sqlx::query("UPDATE orders SET price_minor = price_minor + 1 WHERE id = $1")
            .bind(oid2.clone())
            .execute(t.app.db.pool())
            .await
            .unwrap();
        let (code, out) = cli_reconcile(t, "total");
        assert_eq!(code, Some(1), "{b}: {out}");
        assert!(out.contains("DOES NOT BALANCE"), "{b}: {out}");
        let (_, recon) = t.get(&m.exchange, "/v1/reconciliation").await;
        assert_eq!(recon["exact"], false, "{b}");

        // The developer delists its own product; paid licences are unaffected.
        let (s, delisted) = post(
            t,
            &m.dev,
            &format!("/v1/products/{pid}/delist"),
            json!({"reason": "superseded"}),
        )
        .await;
        assert_eq!(s, 200, "{b}: {delisted}");
        assert_eq!(delisted["status"], "delisted");
        assert!(delisted["delisting_seq"].as_u64().is_some());
        let resp = place(t, &m.buyer, Some("order-3"), order_body.clone()).await;
        refused(resp, 409, "conflict").await;
        m.t.stop().await;
    }
}

#[tokio::test]
async fn refusals_are_clear_4xx_problems_on_both_backends() {
    for postgres in [false, true] {
        let Some(m) = market(postgres).await else {
            continue;
        };
        let t = &m.t;
        let b = t.backend;
        let release_id = m.release["release_id"].as_str().unwrap().to_string();

        // A split not summing to 10,000.
        let (s, p) = post(
            t,
            &m.dev,
            "/v1/products",
            product_body(
                json!([release_id]),
                "commercial_internal",
                [3_000, 1_000, 5_000],
            ),
        )
        .await;
        assert_eq!(s, 422, "{b}: {p}");
        assert!(p["detail"].as_str().unwrap().contains("10000"), "{p}");

        // Another developer's release.
        let (s, p) = post(
            t,
            &m.other_dev,
            "/v1/products",
            product_body(json!([release_id]), "research_only", SPLIT),
        )
        .await;
        assert_eq!(s, 403, "{b}: {p}");
        assert!(
            p["detail"].as_str().unwrap().contains("another developer"),
            "{p}"
        );

        // Unknown releases, no releases, a bad price.
        let (s, _) = post(
            t,
            &m.dev,
            "/v1/products",
            product_body(json!(["rel_0000000000000000"]), "research_only", SPLIT),
        )
        .await;
        assert_eq!(s, 404, "{b}");
        let (s, _) = post(
            t,
            &m.dev,
            "/v1/products",
            product_body(json!([]), "research_only", SPLIT),
        )
        .await;
        assert_eq!(s, 422, "{b}");
        let mut free = product_body(json!([release_id]), "research_only", SPLIT);
        free["price_minor"] = json!(0);
        assert_eq!(post(t, &m.dev, "/v1/products", free).await.0, 422);

        // A research-only dataset: only the research_only licence.
        let research_ds = dataset(
            t,
            &m.provider,
            "Enterprise electricity (research only)",
            OpenAttribute::Unconditional,
            true,
        )
        .await;
        let research = release(t, &m.dev, &m.reviewer, &research_ds, None).await;
        let rid = research["release_id"].as_str().unwrap();
        for licence in ["commercial_internal", "commercial_redistribution"] {
            let (s, p) = post(
                t,
                &m.dev,
                "/v1/products",
                product_body(json!([release_id, rid]), licence, SPLIT),
            )
            .await;
            assert_eq!(s, 409, "{b} {licence}: {p}");
            let detail = p["detail"].as_str().unwrap();
            assert!(detail.contains("research-only dataset"), "{detail}");
        }
        let (s, p) = post(
            t,
            &m.dev,
            "/v1/products",
            product_body(json!([release_id, rid]), "research_only", SPLIT),
        )
        .await;
        assert_eq!(s, 201, "{b}: {p}");
        assert_eq!(p["research_only_sources"], true);

        // A research-only grant on a conditional dataset: the same rule.
        let conditional = dataset(
            t,
            &m.provider,
            "Enterprise electricity (conditional)",
            OpenAttribute::Conditional,
            false,
        )
        .await;
        let (s, grant) = post(
            t,
            &m.dev,
            "/v1/grants",
            json!({
                "dataset_id": conditional,
                "purpose": "academic study of district energy use",
                "columns": ["district", "industry", "kwh_12m"],
                "model_kinds": ["sql"],
                "term_days": 365,
                "query_budget": 10,
                "research_only": true
            }),
        )
        .await;
        assert_eq!(s, 201, "{b}: {grant}");
        let gid = grant["id"].as_str().unwrap();
        let (s, g) = post(
            t,
            &m.provider,
            &format!("/v1/grants/{gid}/decision"),
            json!({"approve": true}),
        )
        .await;
        assert_eq!(s, 200, "{b}: {g}");
        let granted = release(t, &m.dev, &m.reviewer, &conditional, Some(gid)).await;
        let gr = granted["release_id"].as_str().unwrap();
        // A research-only grant has a research purpose, which feeds no commercial
        // product: 422 naming the licence and the purpose (GD21 Art.26).
        let (s, p) = post(
            t,
            &m.dev,
            "/v1/products",
            product_body(json!([gr]), "commercial_internal", SPLIT),
        )
        .await;
        assert_eq!(s, 422, "{b}: {p}");
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.contains("commercial_internal") && detail.contains("research purpose"),
            "{p}"
        );
        let (s, p) = post(
            t,
            &m.dev,
            "/v1/products",
            product_body(json!([gr]), "research_only", SPLIT),
        )
        .await;
        assert_eq!(s, 201, "{b}: {p}");
        assert_eq!(p["manifest"]["sources"][0]["research_only_grant"], true);
        assert_eq!(p["manifest"]["sources"][0]["grant_purpose"], "research");

        // The exchange rejects with a reason; a rejected product cannot be listed.
        let pid = p["id"].as_str().unwrap();
        let (s, _) = post(
            t,
            &m.exchange,
            &format!("/v1/products/{pid}/reject"),
            json!({}),
        )
        .await;
        assert_eq!(s, 422, "{b}: a rejection needs a reason");
        let (s, rejected) = post(
            t,
            &m.exchange,
            &format!("/v1/products/{pid}/reject"),
            json!({"reason": "the description overstates the coverage"}),
        )
        .await;
        assert_eq!(s, 200, "{b}: {rejected}");
        assert_eq!(rejected["status"], "rejected");
        let (s, _) = t
            .call(
                Some(&m.exchange),
                Method::POST,
                &format!("/v1/products/{pid}/list"),
                None,
            )
            .await;
        assert_eq!(s, 409, "{b}");
        assert_eq!(t.get(&m.buyer, &format!("/v1/products/{pid}")).await.0, 404);

        // Bad periods; unknown orders.
        assert_eq!(
            t.call(
                Some(&m.exchange),
                Method::POST,
                "/v1/settlements/2030-13",
                None
            )
            .await
            .0,
            422
        );
        assert_eq!(
            t.get(&m.buyer, "/v1/orders/ord_0000000000000000").await.0,
            404
        );
        m.t.stop().await;
    }
}

#[tokio::test]
async fn every_products_route_refuses_the_wrong_roles_with_real_ids() {
    let m = market(false).await.unwrap();
    let t = &m.t;
    let release_id = m.release["release_id"].as_str().unwrap();
    let (pid, _) = listed_product(&m, release_id).await;
    let resp = place(t, &m.buyer, Some("roles-1"), json!({"product_id": pid})).await;
    assert_eq!(resp.status().as_u16(), 201);
    let order: Value = resp.json().await.unwrap();
    let oid = order["id"].as_str().unwrap().to_string();

    let keys: Vec<(Role, String)> = vec![
        (Role::Provider, m.provider.clone()),
        (Role::Developer, m.dev.clone()),
        (Role::Reviewer, m.reviewer.clone()),
        (Role::Exchange, m.exchange.clone()),
        (Role::Buyer, m.buyer.clone()),
        (Role::Supervisor, m.supervisor.clone()),
        (Role::Admin, t.admin.clone()),
    ];
    let mut checked = 0;
    for (method, route, policy) in POLICIES {
        let products_route = [
            "/v1/products",
            "/v1/orders",
            "/v1/settlements",
            "/v1/reconciliation",
        ]
        .iter()
        .any(|p| route.starts_with(p));
        if !products_route {
            continue;
        }
        let path = route.replace("{period}", "2030-03").replace(
            "{id}",
            if route.starts_with("/v1/orders") {
                &oid
            } else {
                &pid
            },
        );
        let method: Method = method.parse().unwrap();
        for (role, key) in &keys {
            if policy.roles.contains(role) {
                continue;
            }
            let mut req = t
                .http
                .request(method.clone(), t.url(&path))
                .bearer_auth(key)
                .header("Idempotency-Key", "roles-2");
            if method == Method::POST {
                req = req.json(&json!({"product_id": pid, "reason": "x", "payment_ref": "x"}));
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            assert_eq!(status, 403, "{method} {path} as {role}");
            assert_eq!(
                resp.headers()["content-type"].to_str().unwrap(),
                "application/problem+json"
            );
            checked += 1;
        }
    }
    assert!(checked >= 50, "only {checked} refusals checked");
    // Nothing changed: the order is still pending and the product listed.
    let (_, o) = t.get(&m.buyer, &format!("/v1/orders/{oid}")).await;
    assert_eq!(o["status"], "pending");
    let (_, p) = t.get(&m.buyer, &format!("/v1/products/{pid}")).await;
    assert_eq!(p["status"], "listed");
    let (_, recon) = t.get(&m.exchange, "/v1/reconciliation").await;
    assert_eq!(recon["ledger"]["transaction_entries"], 0);
    m.t.stop().await;
}

/// 200 orders from 20 buyers at once, every placement and every payment sent twice
/// concurrently (a client retrying on a timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_orders_with_retries_write_one_transaction_each_and_reconcile() {
    const BUYERS: usize = 20;
    const PER_BUYER: usize = 10;
    for postgres in [false, true] {
        let Some(m) = market(postgres).await else {
            continue;
        };
        let t = &m.t;
        let b = t.backend;
        let release_id = m.release["release_id"].as_str().unwrap();
        let (s, product) = post(
            t,
            &m.dev,
            "/v1/products",
            product_body(json!([release_id]), "commercial_internal", SPLIT),
        )
        .await;
        assert_eq!(s, 201, "{product}");
        let pid = product["id"].as_str().unwrap().to_string();
        let (s, _) = t
            .call(
                Some(&m.exchange),
                Method::POST,
                &format!("/v1/products/{pid}/list"),
                None,
            )
            .await;
        assert_eq!(s, 200);
        let mut buyers = Vec::new();
        for i in 0..BUYERS {
            buyers.push(
                org_key(t, &format!("buyer-{i:02}"), "buyer", "national")
                    .await
                    .1,
            );
        }

        let base = t.url("");
        let mut tasks = tokio::task::JoinSet::new();
        for (bi, key) in buyers.iter().enumerate() {
            let (http, base, key, pid) = (t.http.clone(), base.clone(), key.clone(), pid.clone());
            tasks.spawn(async move {
                let mut ids = Vec::new();
                for j in 0..PER_BUYER {
                    let idem = format!("b{bi}-o{j}");
                    let placing = || {
                        http.post(format!("{base}/v1/orders"))
                            .bearer_auth(&key)
                            .header("Idempotency-Key", &idem)
                            .json(&json!({"product_id": pid}))
                            .send()
                    };
                    let (r1, r2) = tokio::join!(placing(), placing());
                    let (r1, r2) = (r1.unwrap(), r2.unwrap());
                    let mut statuses = [r1.status().as_u16(), r2.status().as_u16()];
                    statuses.sort();
                    assert_eq!(statuses, [200, 201], "one creates, the retry replays");
                    let o1: Value = r1.json().await.unwrap();
                    let o2: Value = r2.json().await.unwrap();
                    assert_eq!(o1["id"], o2["id"], "a retry returns the same order");
                    let id = o1["id"].as_str().unwrap().to_string();
                    let paying = || {
                        http.post(format!("{base}/v1/orders/{id}/pay"))
                            .bearer_auth(&key)
                            .json(&json!({"payment_ref": format!("pay-{bi}-{j}")}))
                            .send()
                    };
                    let (p1, p2) = tokio::join!(paying(), paying());
                    let (p1, p2) = (p1.unwrap(), p2.unwrap());
                    assert_eq!(p1.status().as_u16(), 200);
                    assert_eq!(p2.status().as_u16(), 200);
                    let p1: Value = p1.json().await.unwrap();
                    let p2: Value = p2.json().await.unwrap();
                    assert_eq!(p1["transaction_seq"], p2["transaction_seq"]);
                    ids.push(id);
                }
                ids
            });
        }
        let mut all = std::collections::BTreeSet::new();
        while let Some(ids) = tasks.join_next().await {
            all.extend(ids.unwrap());
        }
        assert_eq!(all.len(), BUYERS * PER_BUYER, "{b}: every order distinct");

        let (s, recon) = t
            .get(&m.supervisor, "/v1/reconciliation?group_by=developer")
            .await;
        assert_eq!(s, 200, "{recon}");
        assert_eq!(recon["exact"], true, "{b}: {recon}");
        let n = (BUYERS * PER_BUYER) as i64;
        assert_eq!(
            recon["ledger"]["transaction_entries"], n,
            "{b}: one entry per order"
        );
        assert_eq!(recon["ledger"]["transactions_minor"], n * PRICE);
        assert_eq!(recon["total"]["paid_minor"], n * PRICE);
        // Every paid order cites a distinct Transaction entry.
        let seqs: std::collections::BTreeSet<i64> = sqlx::query_scalar(
            "SELECT transaction_seq FROM orders WHERE transaction_seq IS NOT NULL",
        )
        .fetch_all(t.app.db.pool())
        .await
        .unwrap()
        .into_iter()
        .collect();
        assert_eq!(seqs.len(), BUYERS * PER_BUYER, "{b}");
        // Settle the month: the remittances sum to the sales.
        m.clock
            .set_ms(Period::parse("2030-04").unwrap().from_ms + DAY_MS);
        let (s, settled) = t
            .call(
                Some(&m.exchange),
                Method::POST,
                "/v1/settlements/2030-03",
                None,
            )
            .await;
        assert_eq!(s, 201, "{b}: {settled}");
        let sum: i64 = settled["remittances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["amount_minor"].as_i64().unwrap())
            .sum();
        assert_eq!(sum, n * PRICE, "{b}");
        let (_, recon) = t.get(&m.supervisor, "/v1/reconciliation").await;
        assert_eq!(recon["exact"], true, "{b}: {recon}");
        assert_eq!(recon["total"]["unsettled_minor"], 0);
        m.t.stop().await;
    }
}
