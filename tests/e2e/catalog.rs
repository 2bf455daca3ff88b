//! The catalog over HTTP: registration, one data one source, search, uploads that
//! succeed and uploads that must fail without leaving anything behind, certificates
//! with offline receipts, dummy data, and the rule that no developer reaches the rows
//! of a conditional dataset through any route.

use std::collections::HashMap;
use std::time::Duration;

use pdx::samples;
use pdx_ids::DatasetId;
use pdx_ledger::Receipt;
use pdx_ledger::note::NoteVerifier;
use pdx_sandbox::catalog::OpenAttribute;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::TestServer;

/// Uploads `body` as a new version; returns (status, json).
pub async fn upload(
    t: &TestServer,
    key: &str,
    dataset: &str,
    query: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let resp = t
        .http
        .post(t.url(&format!("/v1/datasets/{dataset}/versions{query}")))
        .bearer_auth(key)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = resp.text().await.unwrap();
    if status >= 400 {
        assert_eq!(ctype, "application/problem+json", "{status}: {text}");
    }
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Uploads `body` as a new version of `dataset` (`query` as for [`upload`]) and waits
/// for its certification; returns the finished job.
pub async fn upload_certified(
    t: &TestServer,
    key: &str,
    dataset: &str,
    query: &str,
    body: Vec<u8>,
) -> Value {
    let b = t.backend;
    let (s, job) = upload(t, key, dataset, query, body).await;
    assert_eq!(s, 202, "{b}: {job}");
    let job = wait_job(t, key, job["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{b}: {job}");
    job
}

/// Polls a job until it finishes.
pub async fn wait_job(t: &TestServer, key: &str, job_id: &str) -> Value {
    for _ in 0..600 {
        let (s, job) = t.get(key, &format!("/v1/jobs/{job_id}")).await;
        assert_eq!(s, 200, "{job}");
        if job["status"] == "succeeded" || job["status"] == "failed" {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {job_id} did not finish in 60 s");
}

/// Registers a dataset as a draft (not yet in the public catalog); returns its id.
pub async fn draft(t: &TestServer, key: &str, dataset: &Value) -> String {
    let (s, body) = t
        .call(
            Some(key),
            Method::POST,
            "/v1/datasets",
            Some(dataset.clone()),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["status"], "draft", "{body}");
    body["id"].as_str().unwrap().to_string()
}

/// Submits the draft `id` as its provider (`key`) and has the harness's data authority
/// approve it (GD21 Art.10-11); returns the published entry.
pub async fn publish(t: &TestServer, key: &str, id: &str) -> Value {
    let (s, body) = t
        .call(
            Some(key),
            Method::POST,
            &format!("/v1/datasets/{id}/submit"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["status"], "submitted", "{body}");
    let (s, body) = t
        .call(
            Some(t.authority().await),
            Method::POST,
            &format!("/v1/datasets/{id}/review"),
            Some(json!({"decision": "approve"})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["status"], "published", "{body}");
    body
}

/// Registers a dataset and has the data authority publish it, so that it is in the
/// catalog as every dataset was before drafts; returns its id.
pub async fn register(t: &TestServer, key: &str, dataset: &Value) -> String {
    let id = draft(t, key, dataset).await;
    publish(t, key, &id).await;
    id
}

fn adult_json(open: OpenAttribute) -> Value {
    serde_json::to_value(
        samples::adult_dataset(&samples::shared_data_dir().join("adult"), open).unwrap(),
    )
    .unwrap()
}

fn adult_csv() -> Vec<u8> {
    std::fs::read(samples::shared_data_dir().join("adult/adult.csv")).unwrap()
}

fn raw_zone_files(t: &TestServer) -> Vec<String> {
    std::fs::read_dir(t.dir.path().join("zones/raw"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect()
}

/// Groups CSV rows (header first) by the given columns and returns the class sizes.
fn class_sizes(csv: &str, columns: &[&str]) -> Vec<usize> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let idx: Vec<usize> = columns
        .iter()
        .map(|c| {
            header
                .iter()
                .position(|h| h.trim_matches('"') == *c)
                .unwrap()
        })
        .collect();
    let mut classes: HashMap<Vec<String>, usize> = HashMap::new();
    for line in lines {
        // Adult's generalised values contain no commas or quotes.
        let cells: Vec<&str> = line.split(',').collect();
        *classes
            .entry(idx.iter().map(|&i| cells[i].to_string()).collect())
            .or_default() += 1;
    }
    classes.into_values().collect()
}

#[tokio::test]
async fn adult_is_deidentified_to_5_anonymity_and_certified_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (prov_org, prov) = t.key_for("statistics-bureau", "provider").await;
        let (_, dev) = t.key_for("dev-co", "developer").await;
        // An unconditionally open copy, so the test can download and count itself.
        let mut open = adult_json(OpenAttribute::Unconditional);
        open["elements"] = json!([]);
        let id = register(&t, &prov, &open).await;
        let (s, job) = upload(&t, &prov, &id, "?format=csv&delimiter=;", adult_csv()).await;
        assert_eq!(s, 202, "{b}: {job}");
        let job = wait_job(&t, &prov, job["id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "succeeded", "{b}: {job}");
        assert!(raw_zone_files(&t).is_empty(), "{b}: raw upload not deleted");

        let (s, version) = t.get(&dev, &format!("/v1/datasets/{id}/versions/1")).await;
        assert_eq!(s, 200, "{version}");
        let report = &version["report"];
        assert!(report["k_achieved"].as_u64().unwrap() >= 5, "{report}");
        let suppressed = report["suppressed"].as_u64().unwrap();
        assert!(suppressed as f64 <= 0.01 * 30_162.0, "{report}");
        assert_eq!(version["rows"].as_u64().unwrap(), 30_162 - suppressed);

        // Independent check: download the de-identified rows and count the classes.
        let resp = t
            .http
            .get(t.url(&format!("/v1/datasets/{id}/versions/1/download?format=csv")))
            .bearer_auth(&dev)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let csv = resp.text().await.unwrap();
        let qis = [
            "sex",
            "age",
            "race",
            "marital-status",
            "education",
            "native-country",
            "workclass",
            "occupation",
        ];
        let sizes = class_sizes(&csv, &qis);
        assert_eq!(sizes.iter().sum::<usize>() as u64, 30_162 - suppressed);
        assert!(sizes.iter().all(|&n| n >= 5), "{b}: a class smaller than 5");

        // The Parquet download is the certified file: its hash is the certificate's.
        let parquet = t
            .http
            .get(t.url(&format!("/v1/datasets/{id}/versions/1/download")))
            .bearer_auth(&dev)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let (s, cert) = t
            .get(&dev, &format!("/v1/datasets/{id}/versions/1/certificate"))
            .await;
        assert_eq!(s, 200, "{cert}");
        assert_eq!(
            cert["certificate"]["content_hash"],
            blake3::hash(&parquet).to_hex().as_str()
        );
        assert_eq!(cert["certificate"]["holder_org"], prov_org.as_str());
        assert_eq!(
            cert["certificate"]["source_department"],
            "Statistics Bureau"
        );
        assert_eq!(cert["certificate"]["rows"], version["rows"]);
        assert_eq!(cert["certificate"]["version"], 1);
        assert!(
            cert["certificate"]["valid_until"].as_str().unwrap()
                > cert["certificate"]["valid_from"].as_str().unwrap()
        );
        // The receipt verifies offline against the published key.
        let receipt: Receipt = serde_json::from_value(cert["receipt"].clone()).unwrap();
        let vkey = t.app.ledger.verifier();
        let key = NoteVerifier::parse(&vkey.to_vkey()).unwrap();
        receipt.verify(&key).unwrap();
        assert_eq!(receipt.entry.kind.as_str(), "asset_certificate");

        // A second version gets number 2 and its own certificate.
        let (s, job) = upload(&t, &prov, &id, "?delimiter=;", adult_csv()).await;
        assert_eq!(s, 202);
        let job = wait_job(&t, &prov, job["id"].as_str().unwrap()).await;
        assert_eq!(job["result"]["version"], 2, "{job}");
        let (_, versions) = t.get(&dev, &format!("/v1/datasets/{id}/versions")).await;
        assert_eq!(versions.as_array().unwrap().len(), 2);
        assert_ne!(versions[0]["certificate_no"], versions[1]["certificate_no"]);
        t.stop().await;
    }
}

#[tokio::test]
async fn elements_have_one_source_and_search_filters_and_pages() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (prov_org, prov) = t.key_for("power-bureau", "provider").await;
        let (_, other) = t.key_for("tax-bureau", "provider").await;
        let (_, buyer) = t.key_for("bank", "buyer").await;
        let element = json!({"code": "enterprise.registration", "source_department": "Market Regulation Bureau"});
        let (s, _) = t
            .call(
                Some(&prov),
                Method::POST,
                "/v1/elements",
                Some(element.clone()),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        // Same source again is fine; another source is a conflict.
        let (s, _) = t
            .call(Some(&other), Method::POST, "/v1/elements", Some(element))
            .await;
        assert_eq!(s, 201, "{b}");
        let (s, body) = t
            .call(
                Some(&other),
                Method::POST,
                "/v1/elements",
                Some(json!({"code": "enterprise.registration", "source_department": "Tax Bureau"})),
            )
            .await;
        assert_eq!(s, 409, "{b}: {body}");

        // A dataset claiming that element from another department is refused whole.
        let mut ds = serde_json::to_value(samples::electricity_dataset()).unwrap();
        ds["elements"] = json!(["enterprise.registration"]);
        let (s, body) = t
            .call(Some(&prov), Method::POST, "/v1/datasets", Some(ds.clone()))
            .await;
        assert_eq!(s, 409, "{b}: {body}");
        let (_, page) = t.get(&buyer, "/v1/datasets").await;
        assert_eq!(page["total"], 0, "{b}: a refused dataset was stored");

        // Missing legal basis for a conditional dataset: 422.
        let mut no_basis = serde_json::to_value(samples::electricity_dataset()).unwrap();
        no_basis["legal_basis"] = json!("");
        let (s, body) = t
            .call(Some(&prov), Method::POST, "/v1/datasets", Some(no_basis))
            .await;
        assert_eq!(s, 422, "{b}: {body}");

        let electricity = register(
            &t,
            &prov,
            &serde_json::to_value(samples::electricity_dataset()).unwrap(),
        )
        .await;
        let mut census = adult_json(OpenAttribute::Unconditional);
        census["elements"] = json!([]);
        let census = register(&t, &other, &census).await;
        for n in 0..3 {
            let mut extra = adult_json(OpenAttribute::NotOpen);
            extra["title"] = json!(format!("Household survey {n}"));
            extra["elements"] = json!([]);
            register(&t, &other, &extra).await;
        }

        let ids = |page: &Value| -> Vec<String> {
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["id"].as_str().unwrap().to_string())
                .collect()
        };
        let (s, page) = t.get(&buyer, "/v1/datasets?q=ELECTRICITY").await;
        assert_eq!(s, 200);
        assert_eq!(ids(&page), vec![electricity.clone()], "{b}");
        let (_, page) = t
            .get(
                &buyer,
                "/v1/datasets?theme=census&open_attribute=unconditional",
            )
            .await;
        assert_eq!(ids(&page), vec![census.clone()], "{b}");
        let (_, page) = t
            .get(&buyer, &format!("/v1/datasets?provider={prov_org}"))
            .await;
        assert_eq!(ids(&page), vec![electricity.clone()], "{b}");
        let (_, page) = t
            .get(&buyer, "/v1/datasets?provider=Power%20Supply%20Bureau")
            .await;
        assert_eq!(ids(&page), vec![electricity.clone()], "{b}");
        // LIKE wildcards are literal.
        let (_, page) = t.get(&buyer, "/v1/datasets?q=%25").await;
        assert_eq!(page["total"], 0, "{b}");
        // Paging: 5 datasets, 2 per page.
        let mut seen = Vec::new();
        for p in 1..=3 {
            let (_, page) = t
                .get(&buyer, &format!("/v1/datasets?per_page=2&page={p}"))
                .await;
            assert_eq!(page["total"], 5);
            seen.extend(ids(&page));
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 5, "{b}: paging lost or repeated entries");
        let (s, _) = t.get(&buyer, "/v1/datasets?per_page=0").await;
        assert_eq!(s, 422);
        // Pages within the document's int32 range; beyond it, refused, not an empty page.
        let (s, last) = t.get(&buyer, "/v1/datasets?page=2147483647").await;
        assert_eq!(s, 200, "{b}: {last}");
        assert_eq!(last["items"], serde_json::json!([]));
        for beyond in ["page=2147483648", "page=0"] {
            let (s, problem) = t.get(&buyer, &format!("/v1/datasets?{beyond}")).await;
            assert_eq!(s, 422, "{b}: {beyond}");
            assert!(
                !problem["detail"]
                    .as_str()
                    .unwrap_or("")
                    .contains("2147483648")
            );
        }
        let (s, _) = t.get(&buyer, "/v1/products?offset=2147483648").await;
        assert_eq!(s, 422, "{b}");
        let (s, _) = t.get(&buyer, "/v1/products?offset=2147483647").await;
        assert_eq!(s, 200, "{b}");
        let (s, _) = t.get(&buyer, "/v1/orders?limit=2147483648").await;
        assert_eq!(s, 422, "{b}");
        let (s, _) = t.get(&buyer, "/v1/orders?limit=2147483647").await;
        assert_eq!(s, 200, "{b}");
        let (s, _) = t.get(&buyer, "/v1/datasets?open_attribute=sometimes").await;
        assert_eq!(s, 400);
        t.stop().await;
    }
}

#[tokio::test]
async fn bad_uploads_are_refused_and_leave_no_version_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, prov) = t.key_for("power-bureau", "provider").await;
        let (_, intruder) = t.key_for("other-bureau", "provider").await;
        let id = register(
            &t,
            &prov,
            &serde_json::to_value(samples::electricity_dataset()).unwrap(),
        )
        .await;
        let good = samples::electricity_csv(40, 7);
        let secret_value = good
            .lines()
            .nth(3)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .to_string();

        let mut ragged = good.clone();
        ragged.push_str(&format!("{secret_value},Futian\n"));
        let mut bad_int = good.clone();
        bad_int.push_str(&format!("{secret_value},Futian,retail,lots\n"));
        let mut bad_utf8 = good.clone().into_bytes();
        bad_utf8.extend_from_slice(b"91440300AAAAAAAAA0,Futian,\xff\xfe,12\n");
        let oversized = vec![b'a'; 5 * 1024 * 1024];

        let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
            ("wrong columns", "", b"code,area,kwh\n1,2,3\n".to_vec(), 422),
            ("ragged row", "", ragged.into_bytes(), 422),
            ("bad integer", "", bad_int.into_bytes(), 422),
            ("invalid utf-8", "?encoding=utf8", bad_utf8, 422),
            ("empty file", "", Vec::new(), 422),
            (
                "header only",
                "",
                b"credit_code,district,industry,kwh_12m\n".to_vec(),
                422,
            ),
            ("oversized", "", oversized, 413),
            (
                "wrong parquet types",
                "?format=parquet",
                wrong_type_parquet(),
                422,
            ),
            (
                "bad delimiter",
                "?delimiter=ab",
                good.clone().into_bytes(),
                422,
            ),
        ];
        for (what, query, body, want) in cases {
            let (s, problem) = upload(&t, &prov, &id, query, body).await;
            assert_eq!(s, want, "{b} {what}: {problem}");
            let detail = problem["detail"].as_str().unwrap_or_default();
            assert!(
                !detail.contains(&secret_value),
                "{b} {what}: value leaked: {detail}"
            );
            assert!(
                !detail.contains("lots"),
                "{b} {what}: value leaked: {detail}"
            );
        }
        let (_, versions) = t.get(&prov, &format!("/v1/datasets/{id}/versions")).await;
        assert_eq!(versions, json!([]), "{b}: a refused upload left a version");
        let (_, jobs) = t.get(&prov, "/v1/jobs").await;
        assert_eq!(jobs, json!([]), "{b}: a refused upload became a job");
        assert!(
            raw_zone_files(&t).is_empty(),
            "{b}: refused uploads left raw files"
        );

        // Another provider cannot upload to this dataset (404: it's not theirs).
        let (s, _) = upload(&t, &intruder, &id, "", good.clone().into_bytes()).await;
        assert_eq!(s, 404, "{b}");

        // The good file works, and errors named the column and row.
        let (s, problem) = upload(&t, &prov, &id, "", {
            let mut g = good.clone();
            g.push_str("91440300AAAAAAAAA0,Futian,retail,-5\n");
            g.into_bytes()
        })
        .await;
        assert_eq!(s, 422, "{b}: {problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains("kwh_12m") && detail.contains("41"),
            "{b}: {detail}"
        );
        let (s, job) = upload(&t, &prov, &id, "", good.into_bytes()).await;
        assert_eq!(s, 202, "{b}: {job}");
        let job = wait_job(&t, &prov, job["id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "succeeded", "{b}: {job}");
        t.stop().await;
    }
}

/// Splits a raw HTTP/1.1 response into its status, its headers (names lower-cased) and
/// everything after the head.
fn parse_response(raw: &[u8]) -> (u16, HashMap<String, String>, Vec<u8>) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete head in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_ascii_lowercase(), value.trim().to_string())
        })
        .collect();
    (status, headers, raw[end + 4..].to_vec())
}

/// Sends `request` on a new connection and reads until the server closes it.
async fn exchange(addr: std::net::SocketAddr, request: &[&[u8]]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    for part in request {
        conn.write_all(part)
            .await
            .expect("the server reads the whole request instead of resetting it");
    }
    conn.flush().await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut raw))
        .await
        .expect("the server closes the connection after answering")
        .expect("the connection closes cleanly, not with a reset");
    raw
}

#[tokio::test]
async fn an_oversized_upload_gets_a_whole_413_that_closes_the_connection() {
    let t = TestServer::start(false).await.unwrap();
    let (_, prov) = t.key_for("power-bureau", "provider").await;
    let id = register(
        &t,
        &prov,
        &serde_json::to_value(samples::electricity_dataset()).unwrap(),
    )
    .await;
    let addr = t.server.as_ref().unwrap().addr;
    let oversized = vec![b'a'; 5 * 1024 * 1024];

    // A keep-alive client that sends its whole body (over the 4 MiB upload limit)
    // before it reads anything.
    let head = format!(
        "POST /v1/datasets/{id}/versions HTTP/1.1\r\n\
         Host: {addr}\r\n\
         Authorization: Bearer {prov}\r\n\
         Content-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n\
         Connection: keep-alive\r\n\r\n",
        oversized.len()
    );
    let raw = exchange(addr, &[head.as_bytes(), oversized.as_slice()]).await;
    let (status, headers, body) = parse_response(&raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    assert_eq!(status, 413, "{text}");
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some("application/problem+json"),
        "{text}"
    );
    assert_eq!(
        headers
            .get("connection")
            .map(|v| v.to_ascii_lowercase())
            .as_deref(),
        Some("close"),
        "{text}"
    );
    let length: usize = headers
        .get("content-length")
        .unwrap_or_else(|| panic!("no content-length: {text}"))
        .parse()
        .unwrap();
    assert_eq!(
        body.len(),
        length,
        "the whole body and nothing after it: {text}"
    );
    let problem: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["status"], 413, "{problem}");
    assert_eq!(problem["type"], "urn:pdx:problem:payload-too-large");
    assert!(
        raw_zone_files(&t).is_empty(),
        "the refused upload left a file"
    );

    // A new connection is served as usual.
    let get = format!(
        "GET /v1/datasets/{id} HTTP/1.1\r\n\
         Host: {addr}\r\n\
         Authorization: Bearer {prov}\r\n\
         Connection: close\r\n\r\n"
    );
    let raw = exchange(addr, &[get.as_bytes()]).await;
    let (status, _, body) = parse_response(&raw);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&raw));
    let dataset: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(dataset["id"], id.as_str());

    // A pooling client (reqwest keeps connections alive): a request that leaves a
    // connection in the pool, the oversized upload, then a normal request. 413 then
    // 200, and never a transport error (`upload` and `get` unwrap the send).
    for round in 0..3 {
        let (s, _) = t.get(&prov, &format!("/v1/datasets/{id}")).await;
        assert_eq!(s, 200, "round {round}");
        let (s, problem) = upload(&t, &prov, &id, "", oversized.clone()).await;
        assert_eq!(s, 413, "round {round}: {problem}");
        let (s, dataset) = t.get(&prov, &format!("/v1/datasets/{id}")).await;
        assert_eq!(s, 200, "round {round}: {dataset}");
    }
    let (_, versions) = t.get(&prov, &format!("/v1/datasets/{id}/versions")).await;
    assert_eq!(versions, json!([]), "a refused upload left a version");
    t.stop().await;
}

fn wrong_type_parquet() -> Vec<u8> {
    use polars::prelude::*;
    let mut df = df!(
        "credit_code" => ["91440300MA5DAAAA0X"],
        "district" => ["Futian"],
        "industry" => ["retail"],
        "kwh_12m" => ["many"],
    )
    .unwrap();
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf).finish(&mut df).unwrap();
    buf
}

#[tokio::test]
async fn gbk_uploads_decode_and_pseudonyms_are_unlinkable_across_datasets() {
    let t = TestServer::start(false).await.unwrap();
    let (_, prov) = t.key_for("power-bureau", "provider").await;
    let mut ds = samples::electricity_dataset();
    ds.elements.clear();
    // Chinese district names, uploaded as GBK.
    let districts = ["福田", "罗湖"];
    ds.schema.hierarchies.insert(
        "district".into(),
        pdx_algorithms::deid::schema::Hierarchy {
            rows: districts
                .iter()
                .map(|d| vec![d.to_string(), "*".into()])
                .collect(),
        },
    );
    ds.schema.columns[1].domain = Some(pdx_algorithms::deid::schema::Domain::Categories {
        values: districts.map(String::from).to_vec(),
    });
    let body = serde_json::to_value(&ds).unwrap();
    let first = register(&t, &prov, &body).await;
    let second = register(&t, &prov, &body).await;
    let mut csv = String::from("credit_code,district,industry,kwh_12m\n");
    for i in 0..30u64 {
        csv.push_str(&format!(
            "{},{},retail,{}\n",
            samples::credit_code(i),
            districts[(i % 2) as usize],
            1000 + i
        ));
    }
    let (gbk, _, bad) = encoding_rs::GBK.encode(&csv);
    assert!(!bad);
    for id in [&first, &second] {
        let (s, job) = upload(&t, &prov, id, "?encoding=gbk", gbk.to_vec()).await;
        assert_eq!(s, 202, "{job}");
        let job = wait_job(&t, &prov, job["id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    // Declared UTF-8, the same bytes are refused.
    let (s, _) = upload(&t, &prov, &first, "", gbk.to_vec()).await;
    assert_eq!(s, 422);
    // Read the stored files: same credit codes, different pseudonyms per dataset.
    let a = stored_column(&t, &first, "credit_code").await;
    let b = stored_column(&t, &second, "credit_code").await;
    assert_eq!(a.len(), 30);
    assert!(
        a.iter().all(|p| !csv.contains(p.as_str())),
        "a credit code survived"
    );
    assert!(
        a.iter().all(|p| !b.contains(p)),
        "pseudonyms link across datasets"
    );
    let mut unique = a.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        30,
        "distinct codes must keep distinct pseudonyms"
    );
    t.stop().await;
}

/// The values of one string column of a stored de-identified version (read from the
/// zone directly, as only the test can).
async fn stored_column(t: &TestServer, dataset: &str, column: &str) -> Vec<String> {
    let v = t
        .app
        .sandbox
        .versions()
        .version(&DatasetId::parse(dataset).unwrap(), 1)
        .await
        .unwrap()
        .unwrap();
    let path = t
        .dir
        .path()
        .join("zones/deid")
        .join(&v.content_hash[..2])
        .join(format!("{}.parquet", v.content_hash));
    let df = pdx_algorithms::deid::storage::read_parquet(&path, t.app.sandbox.at_rest()).unwrap();
    let col = df.column(column).unwrap().str().unwrap().clone();
    col.into_iter().map(|v| v.unwrap().to_string()).collect()
}

#[tokio::test]
async fn no_route_gives_a_developer_rows_of_a_conditional_dataset() {
    use pdx::http::policies::POLICIES;
    use pdx_algorithms::deid::schema::{ColumnRole, ColumnSpec, ColumnType, DeidRule};
    let t = TestServer::start(false).await.unwrap();
    let (_, prov) = t.key_for("power-bureau", "provider").await;
    let (_, dev) = t.key_for("dev-co", "developer").await;
    let mut ds = samples::electricity_dataset();
    ds.schema.columns.push(ColumnSpec {
        name: "note".into(),
        column_type: ColumnType::String,
        role: ColumnRole::Other,
        rule: DeidRule::Keep,
        domain: None,
        nullable: false,
    });
    let id = register(&t, &prov, &serde_json::to_value(&ds).unwrap()).await;
    let mut csv = String::from("credit_code,district,industry,kwh_12m,note\n");
    let tokens: Vec<String> = (0..60)
        .map(|i| format!("tok{:016x}", rand::random::<u64>() ^ i))
        .collect();
    for (i, token) in tokens.iter().enumerate() {
        csv.push_str(&format!(
            "{},Futian,retail,{},{token}\n",
            samples::credit_code(i as u64),
            5000 + i
        ));
    }
    let (s, job) = upload(&t, &prov, &id, "", csv.into_bytes()).await;
    assert_eq!(s, 202, "{job}");
    let job_id = job["id"].as_str().unwrap().to_string();
    let done = wait_job(&t, &prov, &job_id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let mut secrets = tokens.clone();
    secrets.extend(stored_column(&t, &id, "credit_code").await);
    secrets.extend((0..60).map(samples::credit_code));
    assert!(
        stored_column(&t, &id, "note").await.contains(&tokens[0]),
        "the marker column is stored"
    );

    let size = t.app.ledger.size().await.unwrap();
    let mut checked = 0;
    for (method, route, _) in POLICIES {
        if *method != "GET" {
            continue;
        }
        let mut paths = vec![
            route
                .replace("{id}", &id)
                .replace("{version}", "1")
                .replace("{key_id}", "x"),
        ];
        if route.contains("{seq}") {
            paths = (0..size)
                .map(|seq| route.replace("{seq}", &seq.to_string()))
                .collect();
        }
        if route.starts_with("/v1/jobs/") {
            paths = vec![route.replace("{id}", &job_id)];
        }
        for path in paths {
            for suffix in ["", "?format=csv", "?format=json"] {
                let resp = t
                    .http
                    .get(t.url(&format!("{path}{suffix}")))
                    .bearer_auth(&dev)
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let body = String::from_utf8_lossy(&resp.bytes().await.unwrap()).to_string();
                for secret in &secrets {
                    assert!(
                        !body.contains(secret.as_str()),
                        "GET {path}{suffix} ({status}) leaked a row value"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 30, "only {checked} requests checked");
    let (s, _) = t
        .get(&dev, &format!("/v1/datasets/{id}/versions/1/download"))
        .await;
    assert_eq!(s, 403);
    let (s, _) = t.get(&dev, &format!("/v1/jobs/{job_id}")).await;
    assert_eq!(s, 404, "another organisation's job is invisible");
    // The provider cannot download its own conditional dataset either.
    let (s, _) = t
        .get(&prov, &format!("/v1/datasets/{id}/versions/1/download"))
        .await;
    assert_eq!(s, 403);
    // Dummy data has the de-identified shape and none of the real values.
    let (s, dummy) = t
        .get(&dev, &format!("/v1/datasets/{id}/dummy?rows=50&seed=3"))
        .await;
    assert_eq!(s, 200, "{dummy}");
    let text = dummy.to_string();
    assert!(text.contains("note") && text.contains("kwh_12m"), "{text}");
    t.stop().await;
}
