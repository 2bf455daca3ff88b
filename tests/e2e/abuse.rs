//! Abuse limits (#25): the rate per key, the lock-out of an address after failed keys,
//! the bound on concurrent uploads, and bodies refused before they are read. Each test
//! sets tiny limits on its own server (`TestServer::start_with`), so nothing here waits
//! long.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pdx::samples;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::catalog::{register, wait_job};
use crate::support::{TestServer, limits};

/// A response as the tests look at it.
struct Answer {
    status: u16,
    content_type: String,
    retry_after: Option<String>,
    text: String,
}

impl Answer {
    fn problem(&self) -> Value {
        assert_eq!(
            self.content_type, "application/problem+json",
            "{}: {}",
            self.status, self.text
        );
        serde_json::from_str(&self.text).unwrap()
    }

    /// The `Retry-After` seconds, which must be a whole number.
    fn retry_after_secs(&self) -> u64 {
        let value = self
            .retry_after
            .as_deref()
            .unwrap_or_else(|| panic!("no Retry-After on {}: {}", self.status, self.text));
        value
            .parse()
            .unwrap_or_else(|_| panic!("Retry-After {value:?} is not whole seconds"))
    }
}

async fn whoami(http: &reqwest::Client, t: &TestServer, key: Option<&str>) -> Answer {
    let mut req = http.get(t.url("/v1/whoami"));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let resp = req.send().await.unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (status, content_type, retry_after) = (
        resp.status().as_u16(),
        header("content-type").unwrap_or_default(),
        header("retry-after"),
    );
    Answer {
        status,
        content_type,
        retry_after,
        text: resp.text().await.unwrap(),
    }
}

/// The secret part of a key (`pdx_<key id>_<secret>`).
fn secret_of(key: &str) -> &str {
    key.splitn(3, '_').nth(2).unwrap()
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after_and_other_keys_do_not() {
    let t = TestServer::start_with(false, |app| {
        let l = limits(app);
        l.rate_per_sec = 5;
        l.rate_burst = 5;
    })
    .await
    .unwrap();
    let (_, a) = t.key_for("org-a", "developer").await;
    let (_, b) = t.key_for("org-b", "developer").await;

    // Key a, as fast as it can: the burst passes, then a 429.
    let started = Instant::now();
    let mut admitted = 0u32;
    let refused = loop {
        let answer = whoami(&t.http, &t, Some(&a)).await;
        if answer.status == 429 {
            break answer;
        }
        assert_eq!(answer.status, 200, "{}", answer.text);
        admitted += 1;
        assert!(
            admitted <= 50,
            "no 429 after {admitted} requests at 5 a second"
        );
    };
    let elapsed = started.elapsed().as_secs_f64();
    assert!(admitted >= 5, "refused within the burst of 5: {admitted}");
    assert!(
        f64::from(admitted) <= 5.0 + 5.0 * elapsed + 1.0,
        "{admitted} admitted in {elapsed:.2} s at 5 a second"
    );
    let problem = refused.problem();
    assert_eq!(problem["status"], 429, "{problem}");
    assert_eq!(problem["type"], "urn:pdx:problem:too-many-requests");
    assert!(
        !refused.text.contains(&a) && !refused.text.contains(secret_of(&a)),
        "the refusal names the key: {}",
        refused.text
    );
    let wait = refused.retry_after_secs();
    assert!((1..=2).contains(&wait), "Retry-After {wait} at 5 a second");

    // Another key from the same client is not affected.
    let other = whoami(&t.http, &t, Some(&b)).await;
    assert_eq!(other.status, 200, "{}", other.text);

    // After Retry-After, key a works again.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let again = whoami(&t.http, &t, Some(&a)).await;
    assert_eq!(again.status, 200, "{}", again.text);
    t.stop().await;
}

/// A client whose connections come from `ip` (any 127/8 address is local on Linux).
#[cfg(target_os = "linux")]
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(ip))
        .build()
        .unwrap()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn bad_keys_lock_an_address_out_even_for_a_valid_key_and_only_that_address() {
    let t = TestServer::start_with(false, |app| {
        let l = limits(app);
        l.auth_failure_limit = 3;
        l.auth_failure_window = Duration::from_secs(60);
        l.auth_lockout = Duration::from_secs(60);
    })
    .await
    .unwrap();
    let (org, dev) = t.key_for("org-dev", "developer").await;
    let key_id = dev.split('_').nth(1).unwrap();
    let wrong_secret = format!("pdx_{key_id}_not-the-secret");
    let guesser = client_from([127, 0, 0, 2]);

    assert_eq!(whoami(&guesser, &t, Some(&dev)).await.status, 200);
    // An unknown key, a wrong secret and a malformed key: three failures.
    for bad in [
        "pdx_0123456789abcdef_nope",
        wrong_secret.as_str(),
        "garbage",
    ] {
        let answer = whoami(&guesser, &t, Some(bad)).await;
        assert_eq!(answer.status, 401, "{bad}: {}", answer.text);
    }

    // Locked out: the valid key and a wrong one get the same 429.
    let valid = whoami(&guesser, &t, Some(&dev)).await;
    let wrong = whoami(&guesser, &t, Some(&wrong_secret)).await;
    for answer in [&valid, &wrong] {
        assert_eq!(answer.status, 429, "{}", answer.text);
        let secs = answer.retry_after_secs();
        assert!((1..=60).contains(&secs), "Retry-After {secs}");
        assert!(
            !answer.text.contains(&org) && !answer.text.contains("developer"),
            "the refusal tells the key's validity: {}",
            answer.text
        );
        assert!(!answer.text.contains(secret_of(&dev)), "{}", answer.text);
    }
    let (p, q) = (valid.problem(), wrong.problem());
    for field in ["type", "title", "status", "detail"] {
        assert_eq!(
            p[field], q[field],
            "{field} tells a valid key from a wrong one"
        );
    }
    // Without a key it is the usual 401.
    assert_eq!(whoami(&guesser, &t, None).await.status, 401);

    // Another address is not affected: a valid key works, a wrong one is a 401.
    assert_eq!(whoami(&t.http, &t, Some(&dev)).await.status, 200);
    assert_eq!(whoami(&t.http, &t, Some(&wrong_secret)).await.status, 401);
    // That success did not unlock the guesser.
    assert_eq!(whoami(&guesser, &t, Some(&dev)).await.status, 429);

    // A success does not clear an address's count either: two failures, a success,
    // and the third failure locks it out.
    let third = client_from([127, 0, 0, 3]);
    for _ in 0..2 {
        assert_eq!(whoami(&third, &t, Some(&wrong_secret)).await.status, 401);
    }
    assert_eq!(whoami(&third, &t, Some(&dev)).await.status, 200);
    assert_eq!(whoami(&third, &t, Some(&wrong_secret)).await.status, 401);
    assert_eq!(whoami(&third, &t, Some(&dev)).await.status, 429);
    t.stop().await;
}

/// Splits a raw HTTP/1.1 response into its status, its headers (names lower-cased) and
/// everything after the head.
fn parse_response(raw: &[u8]) -> (u16, HashMap<String, String>, Vec<u8>) {
    let text = String::from_utf8_lossy(raw).to_string();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete head in {text:?}"));
    let head = std::str::from_utf8(&raw[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_ascii_lowercase(), value.trim().to_string())
        })
        .collect();
    (status.parse().unwrap(), headers, raw[end + 4..].to_vec())
}

/// Reads one response head (an interim `100 Continue` or a final one), within 10 s.
async fn read_head(conn: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let read = async {
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = conn.read(&mut byte).await.unwrap();
            assert_eq!(n, 1, "closed after {:?}", String::from_utf8_lossy(&head));
            head.push(byte[0]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("no answer within 10 s");
    String::from_utf8(head).unwrap()
}

/// The head of a request with `Expect: 100-continue` and `Connection: close`.
fn expecting_head(
    addr: SocketAddr,
    path: &str,
    key: &str,
    content_type: &str,
    length: u64,
) -> String {
    format!(
        "POST {path} HTTP/1.1\r\n\
         Host: {addr}\r\n\
         Authorization: Bearer {key}\r\n\
         Content-Type: {content_type}\r\n\
         Content-Length: {length}\r\n\
         Expect: 100-continue\r\n\
         Connection: close\r\n\r\n"
    )
}

/// Sends only the head of a request that waits for `100 Continue`, and reads the answer
/// to the close: it must come within 10 s although no byte of the body was sent.
async fn refused_unread(addr: SocketAddr, head: &str) -> (u16, HashMap<String, String>, Value) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut raw))
        .await
        .expect("the server waited for the body instead of answering")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    assert!(
        !text.contains("100 Continue"),
        "the server asked for the body: {text}"
    );
    let (status, headers, body) = parse_response(&raw);
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some("application/problem+json"),
        "{text}"
    );
    (status, headers, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn uploads_beyond_the_bound_get_429_while_the_one_in_flight_finishes() {
    let t = TestServer::start_with(false, |app| limits(app).upload_concurrency = 1)
        .await
        .unwrap();
    let (_, prov) = t.key_for("power-bureau", "provider").await;
    let dataset = register(
        &t,
        &prov,
        &serde_json::to_value(samples::electricity_dataset()).unwrap(),
    )
    .await;
    let addr = t.server.as_ref().unwrap().addr;
    let csv = samples::electricity_csv(40, 7).into_bytes();
    let path = format!("/v1/datasets/{dataset}/versions");

    // Upload A waits for `100 Continue`, which the server sends once the handler reads
    // the body: from then on A holds the one upload permit.
    let mut a = TcpStream::connect(addr).await.unwrap();
    let head = expecting_head(
        addr,
        &path,
        &prov,
        "application/octet-stream",
        csv.len() as u64,
    );
    a.write_all(head.as_bytes()).await.unwrap();
    let interim = read_head(&mut a).await;
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");

    // Upload B meanwhile: 429 at once, with Retry-After, not queued behind A.
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        t.http
            .post(t.url(&path))
            .bearer_auth(&prov)
            .header("content-type", "application/octet-stream")
            .body(csv.clone())
            .send(),
    )
    .await
    .expect("the second upload was queued")
    .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let retry_after = resp.headers()["retry-after"].to_str().unwrap().to_string();
    assert!(
        retry_after.parse::<u64>().is_ok_and(|s| s >= 1),
        "Retry-After {retry_after:?}"
    );
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let problem: Value = resp.json().await.unwrap();
    assert_eq!(problem["status"], 429, "{problem}");

    // A sends its body and finishes as usual.
    a.write_all(&csv).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), a.read_to_end(&mut raw))
        .await
        .expect("upload A was not answered")
        .unwrap();
    let (status, _, body) = parse_response(&raw);
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&raw));
    let job_a: Value = serde_json::from_slice(&body).unwrap();
    let done = wait_job(&t, &prov, job_a["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");

    // The permit is back: the next upload is taken.
    let resp = t
        .http
        .post(t.url(&path))
        .bearer_auth(&prov)
        .header("content-type", "application/octet-stream")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let job_c: Value = resp.json().await.unwrap();
    let done = wait_job(&t, &prov, job_c["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    t.stop().await;
}

#[tokio::test]
async fn bodies_over_a_callers_limit_are_refused_before_they_are_read() {
    let t = TestServer::start(false).await.unwrap();
    let (_, prov) = t.key_for("power-bureau", "provider").await;
    let (_, dev) = t.key_for("acme-data", "developer").await;
    let dataset = register(
        &t,
        &prov,
        &serde_json::to_value(samples::electricity_dataset()).unwrap(),
    )
    .await;
    let addr = t.server.as_ref().unwrap().addr;
    let upload = format!("/v1/datasets/{dataset}/versions");
    let upload_limit = t.app.config.sandbox.upload_limit;
    let body_limit = t.app.config.body_limit as u64;

    // Only providers may send upload-sized bodies: a developer's is refused by its
    // role, unread.
    let head = expecting_head(
        addr,
        &upload,
        &dev,
        "application/octet-stream",
        upload_limit,
    );
    let (status, _, problem) = refused_unread(addr, &head).await;
    assert_eq!(status, 403, "{problem}");

    // Over the limit of a JSON route, whatever the role: 413, unread.
    let head = expecting_head(
        addr,
        "/v1/elements",
        &prov,
        "application/json",
        body_limit + 1,
    );
    let (status, headers, problem) = refused_unread(addr, &head).await;
    assert_eq!(status, 413, "{problem}");
    assert_eq!(problem["type"], "urn:pdx:problem:payload-too-large");
    assert_eq!(
        headers.get("connection").map(|v| v.to_ascii_lowercase()),
        Some("close".to_string())
    );

    // Over the upload limit, from the provider: 413, unread.
    let head = expecting_head(
        addr,
        &upload,
        &prov,
        "application/octet-stream",
        upload_limit + 1,
    );
    let (status, _, problem) = refused_unread(addr, &head).await;
    assert_eq!(status, 413, "{problem}");

    // Control: within the limit, the server asks for the body and takes it.
    let csv = samples::electricity_csv(40, 7).into_bytes();
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let head = expecting_head(
        addr,
        &upload,
        &prov,
        "application/octet-stream",
        csv.len() as u64,
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let interim = read_head(&mut conn).await;
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    conn.write_all(&csv).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut raw))
        .await
        .expect("the upload was not answered")
        .unwrap();
    let (status, _, body) = parse_response(&raw);
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&raw));
    let job: Value = serde_json::from_slice(&body).unwrap();
    let done = wait_job(&t, &prov, job["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    t.stop().await;
}
