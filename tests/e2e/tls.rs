//! TLS (#25): the real `pdx serve --tls-cert FILE --tls-key FILE`, with a private CA and
//! a server certificate for 127.0.0.1 and localhost that the test makes with the
//! `openssl` command-line tool (no crate to build). It shows that:
//!
//! * a client trusting the CA gets answers over HTTPS, a client that does not fails the
//!   handshake, and plain HTTP to the port gets no HTTP answer at all;
//! * the handlers still see each client's address (the lock-out after failed keys
//!   counts per address under TLS too);
//! * `pdx witness --ca-file` cosigns over HTTPS, and without the CA file it fails;
//! * a missing certificate, a key that is not a key or not the certificate's key stop
//!   the start (non-zero exit) before the database is opened, with a message that names
//!   the file and never quotes the key; `--tls-cert` without `--tls-key` is a usage
//!   error;
//! * SIGTERM still drains and exits 0, and nothing of the key reaches the log.

use std::ffi::OsString;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PDX: &str = env!("CARGO_BIN_EXE_pdx");

/// Variables of the test's environment that could point a child process elsewhere.
const CLEARED_ENV: &[&str] = &[
    "PDX_CONFIG",
    "PDX_ADDR",
    "PDX_DATA_DIR",
    "PDX_DATABASE_URL",
    "PDX_TLS_CERT",
    "PDX_TLS_KEY",
    "PDX_CA_FILE",
    "PDX_API_KEY",
    "PDX_LOG",
    "PDX_JOB_START_PAUSE_MS",
];

/// Failed keys from one address that lock it out, in the server's config file.
const FAILURE_LIMIT: usize = 3;

const CA_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
x509_extensions = ca
[dn]
CN = pdx e2e test CA
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
";

const SERVER_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = localhost
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// A private CA and a server certificate it signed, in a temp dir.
struct Pki {
    dir: tempfile::TempDir,
    ca: PathBuf,
    ca_key: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .env_remove("OPENSSL_CONF")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "the TLS tests make their certificates with the `openssl` command-line tool, \
                 which could not be run ({e}); install OpenSSL (e.g. apt-get install openssl)"
            )
        });
    assert!(
        out.status.success(),
        "openssl {}:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// ECDSA P-256 keys (PKCS#8 PEM, as OpenSSL 3 writes them), two days of validity.
fn make_pki() -> Pki {
    let dir = tempfile::tempdir().expect("a temp dir");
    let d = dir.path();
    std::fs::write(d.join("ca.cnf"), CA_CNF).unwrap();
    std::fs::write(d.join("server.cnf"), SERVER_CNF).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut args = vec!["req", "-x509", "-new", "-config", "ca.cnf"];
    args.extend(ec);
    args.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"]);
    openssl(d, &args);
    let mut args = vec!["req", "-new", "-config", "server.cnf"];
    args.extend(ec);
    args.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(d, &args);
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "2",
            "-days",
            "2",
            "-sha256",
            "-extfile",
            "server.cnf",
            "-extensions",
            "server",
            "-out",
            "server.pem",
        ],
    );
    Pki {
        ca: d.join("ca.pem"),
        ca_key: d.join("ca.key"),
        cert: d.join("server.pem"),
        key: d.join("server.key"),
        dir,
    }
}

/// The base64 lines of a PEM key file: none of them may appear in any output.
fn key_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_string)
        .collect();
    assert!(!lines.is_empty(), "{} holds no key lines", path.display());
    lines
}

fn assert_no_key_material(what: &str, text: &str, keys: &[&Path]) {
    for key in keys {
        for line in key_lines(key) {
            assert!(
                !text.contains(&line),
                "{what} quotes the key {}:\n{text}",
                key.display()
            );
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

/// A client that trusts the test's CA (and nothing it did not already trust).
fn trusting(pki: &Pki) -> reqwest::Client {
    trusting_from(pki, None)
}

fn trusting_from(pki: &Pki, local: Option<[u8; 4]>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca).unwrap()).unwrap();
    let mut builder = reqwest::Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(30));
    if let Some(ip) = local {
        builder = builder.local_address(std::net::IpAddr::from(ip));
    }
    builder.build().unwrap()
}

/// The error and all its sources, for asserting on why a request failed.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `pdx serve` over HTTPS as a child process, killed when dropped.
struct Serve {
    child: tokio::process::Child,
    port: u16,
    data: tempfile::TempDir,
    log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Serve {
    async fn start(pki: &Pki) -> Serve {
        let data = tempfile::tempdir().expect("a temp dir");
        let config = data.path().join("pdx.toml");
        std::fs::write(
            &config,
            format!("auth_failure_limit = {FAILURE_LIMIT}\nauth_lockout_secs = 600\n"),
        )
        .unwrap();
        let log = data.path().join("serve.log");
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let port = free_port();
        let mut cmd = tokio::process::Command::new(PDX);
        for var in CLEARED_ENV {
            cmd.env_remove(var);
        }
        cmd.arg("--data-dir")
            .arg(data.path())
            .arg("--config")
            .arg(&config)
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .arg("--tls-cert")
            .arg(&pki.cert)
            .arg("--tls-key")
            .arg(&pki.key)
            // Handshake failures are logged at debug: they must not quote keys either.
            .env("PDX_LOG", "info,pdx=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        let child = cmd.spawn().expect("starting pdx serve");
        let mut serve = Serve {
            child,
            port,
            data,
            log,
        };
        serve.wait_ready(&trusting(pki)).await;
        serve
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_ready(&mut self, http: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ready = http.get(self.url("/readyz")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("polling pdx serve") {
                panic!(
                    "pdx serve exited with {status} before it was ready:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "pdx serve was not ready over HTTPS in 120 s:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The bootstrap admin key the server wrote to its data directory.
    fn admin(&self) -> String {
        std::fs::read_to_string(self.data.path().join("admin.key"))
            .expect("the bootstrap admin key")
            .trim()
            .to_string()
    }
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap_or_else(|e| panic!("{}", chain(&e)));
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// `pdx witness --once` against `serve`; returns (exit code, stdout and stderr).
async fn witness(
    serve: &Serve,
    ca_file: Option<&Path>,
    api_key: &str,
    log_key: &str,
    state: &Path,
) -> (i32, String) {
    let mut cmd = tokio::process::Command::new(PDX);
    for var in CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.args(["witness", "--once", "--name", "tls-witness", "--server"])
        .arg(serve.url(""))
        .arg("--key")
        .arg(log_key)
        .arg("--state")
        .arg(state)
        .env("PDX_API_KEY", api_key);
    if let Some(ca) = ca_file {
        cmd.arg("--ca-file").arg(ca);
    }
    let out = cmd.output().await.expect("running pdx witness");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn pdx_serves_https_with_a_private_ca_and_the_witness_trusts_it_with_ca_file() {
    let pki = make_pki();
    let mut serve = Serve::start(&pki).await;
    let http = trusting(&pki);
    let admin = serve.admin();

    // 1. Over HTTPS, with the CA trusted: a public route and an authenticated one, by
    //    IP address and by name (both are in the certificate).
    let resp = http.get(serve.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "ok");
    let (st, me) = send(http.get(serve.url("/v1/whoami")).bearer_auth(&admin)).await;
    assert_eq!(st, 200, "{me}");
    let by_name = format!("https://localhost:{}/healthz", serve.port);
    let resp = http.get(&by_name).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    // 2. A client that does not trust the CA fails the handshake.
    let untrusting = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let refused = untrusting
        .get(serve.url("/healthz"))
        .send()
        .await
        .expect_err("a client without the CA connected");
    let why = chain(&refused);
    assert!(why.contains("certificate"), "{why}");

    // 3. Plain HTTP to the TLS port gets no HTTP answer: the handshake fails on the
    //    first bytes and the connection closes.
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", serve.port))
        .await
        .unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    // A reset instead of a close is as good: no answer either way.
    let _ = tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut answer))
        .await
        .expect("the server closes a plain HTTP connection");
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP got an HTTP answer: {}",
        String::from_utf8_lossy(&answer)
    );
    let plain = format!("http://127.0.0.1:{}/healthz", serve.port);
    if let Ok(resp) = reqwest::get(&plain).await {
        assert!(
            !resp.status().is_success(),
            "plain HTTP got {}",
            resp.status()
        );
    }
    // The server is none the worse for either.
    let resp = http.get(serve.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    // 4. The witness, with --ca-file, checks and cosigns over HTTPS.
    let (st, org) = send(
        http.post(serve.url("/v1/orgs"))
            .bearer_auth(&admin)
            .json(&json!({"name": "tls-regulator"})),
    )
    .await;
    assert_eq!(st, 201, "{org}");
    let (st, key) = send(
        http.post(serve.url("/v1/keys"))
            .bearer_auth(&admin)
            .json(&json!({"org": org["id"], "role": "supervisor"})),
    )
    .await;
    assert_eq!(st, 201, "{key}");
    let supervisor = key["key"].as_str().unwrap().to_string();
    let (st, cp) = send(
        http.post(serve.url("/v1/ledger/checkpoint"))
            .bearer_auth(&supervisor),
    )
    .await;
    assert_eq!(st, 201, "{cp}");
    let (st, log_key) = send(
        http.get(serve.url("/v1/ledger/public-key"))
            .bearer_auth(&supervisor),
    )
    .await;
    assert_eq!(st, 200, "{log_key}");
    let log_key = log_key.as_str().unwrap().trim().to_string();
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("witness.json");
    let (code, out) = witness(&serve, None, &supervisor, &log_key, &state).await;
    assert_eq!(
        code, 1,
        "the witness trusted the server without the CA:\n{out}"
    );
    assert!(out.contains("certificate"), "{out}");
    let (code, out) = witness(
        &serve,
        Some(pki.ca.as_path()),
        &supervisor,
        &log_key,
        &state,
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("cosigned"), "{out}");
    let served = http
        .get(serve.url("/v1/ledger/checkpoint"))
        .bearer_auth(&supervisor)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        served.contains("tls-witness"),
        "no cosignature served:\n{served}"
    );

    // 5. The handlers see each client's address under TLS: failed keys from 127.0.0.2
    //    lock that address out, and only that one.
    #[cfg(target_os = "linux")]
    {
        let guesser = trusting_from(&pki, Some([127, 0, 0, 2]));
        for _ in 0..FAILURE_LIMIT {
            let (st, body) = send(
                guesser
                    .get(serve.url("/v1/whoami"))
                    .bearer_auth("pdx_0123456789abcdef_nope"),
            )
            .await;
            assert_eq!(st, 401, "{body}");
        }
        let (st, body) = send(guesser.get(serve.url("/v1/whoami")).bearer_auth(&admin)).await;
        assert_eq!(
            st, 429,
            "the lock-out did not see the client's address: {body}"
        );
        let (st, body) = send(http.get(serve.url("/v1/whoami")).bearer_auth(&admin)).await;
        assert_eq!(st, 200, "another address was locked out too: {body}");
    }

    // SIGTERM drains and exits 0 under TLS too.
    #[cfg(unix)]
    {
        let pid = serve.child.id().expect("pdx serve is running").to_string();
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("running kill");
        assert!(kill.success());
        let status = tokio::time::timeout(Duration::from_secs(60), serve.child.wait())
            .await
            .expect("pdx serve stops within 60 s of SIGTERM")
            .unwrap();
        assert!(status.success(), "{status}:\n{}", serve.log_text());
    }

    // Nothing of the key reached the log, not even at debug level.
    let log = serve.log_text();
    assert!(log.contains("pdx listening"), "{log}");
    assert_no_key_material("the server's log", &log, &[pki.key.as_path()]);
}

/// Runs `pdx … serve` with `args` after `serve`, expecting it to fail; returns (exit
/// code, stderr).
async fn failed_start(data: &Path, args: &[OsString]) -> (Option<i32>, String) {
    let mut cmd = tokio::process::Command::new(PDX);
    for var in CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.arg("--data-dir")
        .arg(data)
        .args(["serve", "--addr", &format!("127.0.0.1:{}", free_port())])
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("pdx serve with bad TLS files does not start serving")
        .expect("running pdx serve");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test]
async fn bad_tls_files_stop_the_start_naming_the_file_and_never_the_key() {
    let pki = make_pki();
    let dir = pki.dir.path();
    let data = dir.join("data");
    let missing = dir.join("no-such-cert.pem");
    let not_a_key = dir.join("not-a-key.pem");
    std::fs::write(&not_a_key, "this is not a key\n").unwrap();
    let flag = |s: &str| OsString::from(s);

    // (certificate, key, the file the message must name, what it must say)
    let cases = [
        (
            missing.clone(),
            pki.key.clone(),
            missing.clone(),
            "certificate file",
        ),
        (
            pki.cert.clone(),
            dir.join("no-such-key.pem"),
            dir.join("no-such-key.pem"),
            "key file",
        ),
        (
            pki.cert.clone(),
            not_a_key.clone(),
            not_a_key.clone(),
            "no private key",
        ),
        // The key given as the certificate: no certificate in it, and not a word of it.
        (
            pki.key.clone(),
            pki.key.clone(),
            pki.key.clone(),
            "no certificate",
        ),
        // The CA's key with the server's certificate: a key, but not this one.
        (
            pki.cert.clone(),
            pki.ca_key.clone(),
            pki.ca_key.clone(),
            "does not hold the private key",
        ),
    ];
    for (cert, key, named, says) in cases {
        let args = [
            flag("--tls-cert"),
            cert.clone().into(),
            flag("--tls-key"),
            key.clone().into(),
        ];
        let (code, out) = failed_start(&data, &args).await;
        let case = format!("--tls-cert {} --tls-key {}", cert.display(), key.display());
        assert!(
            code.is_some_and(|c| c != 0),
            "{case}: exit {code:?}:\n{out}"
        );
        assert!(
            out.contains(&named.display().to_string()),
            "{case}: the file is not named:\n{out}"
        );
        assert!(out.contains(says), "{case}: expected {says:?}:\n{out}");
        assert_no_key_material(&case, &out, &[pki.key.as_path(), pki.ca_key.as_path()]);
        assert!(
            !data.exists(),
            "{case}: the data directory was created before the TLS files were checked"
        );
    }

    // One flag without the other is a usage error (clap's exit status 2).
    for args in [
        [flag("--tls-cert"), pki.cert.clone().into()],
        [flag("--tls-key"), pki.key.clone().into()],
    ] {
        let (code, out) = failed_start(&data, &args).await;
        assert_eq!(code, Some(2), "{out}");
        assert!(out.contains("--tls-"), "{out}");
        assert!(!data.exists());
    }
}
