//! TLS: `pdx serve --tls-cert FILE --tls-key FILE`, and the clients' `--ca-file`.
//!
//! The server terminates TLS itself with rustls and its *ring* provider, the one reqwest
//! already links (no second crypto library is built). A [`TlsListener`] accepts TCP
//! connections, runs each handshake in a task of its own (at most [`MAX_HANDSHAKES`] at
//! once, each given [`HANDSHAKE_TIMEOUT`], so a slow or silent client never holds up the
//! others) and hands the finished TLS streams to `axum::serve`, which keeps its graceful
//! shutdown and gives the handlers the client's address (`ConnectInfo<SocketAddr>`, read
//! by the lock-out after failed keys) exactly as over plain HTTP.
//!
//! Under TLS the server speaks HTTPS only: a plain HTTP request to its port fails the
//! handshake and gets no answer. [`crate::config::Config::tls_enabled`] says whether TLS
//! is on; the portal's session cookies read it to be `Secure`.
//!
//! Key material never reaches a log or an error message: a bad certificate or key file
//! stops the start with the file's path and the reason only.
//!
//! The clients (`pdx witness`, `pdx fhe query`) take `--ca-file FILE`: PEM certificates
//! trusted besides the public roots, for a server whose certificate a private CA signed
//! ([`client_builder`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;

/// TLS handshakes in progress at once; further connections wait in the listen backlog.
pub const MAX_HANDSHAKES: usize = 256;
/// A client that has not finished its handshake by then is disconnected.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

// Flags of `pdx serve` that turn TLS on: both or neither. (A `//` comment: clap would
// make a doc comment the `about` of the command this is flattened into.)
#[derive(Clone, Debug, Default, clap::Args)]
pub struct TlsArgs {
    /// TLS certificate chain, PEM: the server's certificate first, then any
    /// intermediates. With --tls-key, the server speaks HTTPS only.
    #[arg(long, env = "PDX_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1, unencrypted). It is
    /// never logged.
    #[arg(long, env = "PDX_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The two files, when TLS is asked for.
    pub fn files(&self) -> Option<TlsFiles> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        }
    }
}

/// The certificate chain and private key files of a TLS server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM private key of that certificate.
    pub key: PathBuf,
}

/// Reads and checks the certificate chain and key; the error names the file at fault
/// and why, and never holds key material.
pub fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let cert_path = files.cert.display();
    let key_path = files.key.display();
    let cert_pem = read(&files.cert, "certificate")?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("TLS certificate file {cert_path}: {}", pem_problem(&e)))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "TLS certificate file {cert_path}: no certificate in it (expected PEM \
         \"BEGIN CERTIFICATE\" sections)"
    );
    let mut key_pem = read(&files.key, "key")?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem);
    // The file's bytes are the secret too: they do not outlive the parse.
    key_pem.fill(0);
    let key = key.map_err(|e| match e {
        pem::Error::NoItemsFound => anyhow!(
            "TLS key file {key_path}: no private key in it (expected an unencrypted PEM \
             \"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\" \
             section)"
        ),
        e => anyhow!("TLS key file {key_path}: {}", pem_problem(&e)),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("choosing the TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| match e {
            rustls::Error::InvalidCertificate(why) => {
                anyhow!("TLS certificate file {cert_path}: not a usable certificate ({why:?})")
            }
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => anyhow!(
                "TLS key file {key_path} does not hold the private key of the certificate \
                 in {cert_path}"
            ),
            // The provider's messages are fixed texts ("failed to parse private key as
            // RSA, ECDSA, or EdDSA"), never the key.
            other => anyhow!("TLS key file {key_path}: not a usable private key ({other})"),
        })?;
    // The router speaks HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading the TLS {what} file {}", path.display()))
}

/// Why a PEM file did not parse, without quoting any of it.
fn pem_problem(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed".into(),
        pem::Error::Base64Decode(_) => "a PEM section is not valid base64".into(),
        pem::Error::Io(e) => format!("reading it failed: {e}"),
        pem::Error::NoItemsFound => "nothing usable in it".into(),
        pem::Error::SectionTooLarge => "a PEM section is too large".into(),
        _ => "not valid PEM".into(),
    }
}

/// A TCP listener that completes TLS handshakes before `axum::serve` sees a connection.
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `tcp` (inside a tokio runtime).
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local_addr = tcp.local_addr()?;
        let (ready, accepted) = mpsc::channel(MAX_HANDSHAKES);
        let acceptor = tokio::spawn(accept_loop(tcp, TlsAcceptor::from(config), ready));
        Ok(TlsListener {
            accepted,
            local_addr,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        // Stops accepting (the listening socket closes); handshakes under way end on
        // their own and their connections are dropped.
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(conn) => conn,
            // The accept loop only ends when this listener is dropped (or its task
            // panicked): there is nothing left to accept.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, client) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            () = ready.closed() => return,
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
            drop(slot);
            match handshake {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, client)).await;
                }
                // A client that does not trust the certificate, speaks plain HTTP or
                // scans the port: its business, at debug level.
                Ok(Err(e)) => tracing::debug!(%client, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%client, "TLS handshake timed out"),
            }
        });
    }
}

/// As `axum::serve` does for TCP: a client that went away is nothing; anything else
/// (such as running out of file descriptors) is logged and accepting pauses a second.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// An HTTP client builder that trusts, besides the public roots, the PEM certificates in
/// `ca_file` (`--ca-file`: a private CA, or the server's own self-signed certificate).
pub fn client_builder(ca_file: Option<&Path>) -> anyhow::Result<reqwest::ClientBuilder> {
    let mut builder = reqwest::Client::builder();
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("reading the CA file {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("CA file {}: not valid PEM", path.display()))?;
        anyhow::ensure!(
            !certs.is_empty(),
            "CA file {}: no certificate in it (expected PEM \"BEGIN CERTIFICATE\" sections)",
            path.display()
        );
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PEM certificate section: valid PEM, not a certificate (only the server's
    /// handshake or `with_single_cert` would find out).
    const FAKE_CERT: &str = "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n";
    /// base64 of "TOPSECRETKEYBYTES!": PEM, but no key a provider can load.
    const SECRET_B64: &str = "VE9QU0VDUkVUS0VZQllURVMh";

    fn files(dir: &Path, cert: Option<&str>, key: Option<&str>) -> TlsFiles {
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        if let Some(text) = cert {
            std::fs::write(&files.cert, text).unwrap();
        }
        if let Some(text) = key {
            std::fs::write(&files.key, text).unwrap();
        }
        files
    }

    fn error(files: &TlsFiles) -> String {
        format!("{:#}", server_config(files).unwrap_err())
    }

    #[test]
    fn a_missing_or_empty_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path(), None, None);
        let e = error(&f);
        assert!(
            e.contains("certificate file") && e.contains("cert.pem"),
            "{e}"
        );
        let f = files(dir.path(), Some("not pem at all\n"), None);
        let e = error(&f);
        assert!(
            e.contains("cert.pem") && e.contains("no certificate"),
            "{e}"
        );
        let f = files(dir.path(), Some(FAKE_CERT), None);
        let e = error(&f);
        assert!(e.contains("key file") && e.contains("key.pem"), "{e}");
    }

    #[test]
    fn a_bad_key_is_refused_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        for key in [
            format!("-----BEGIN PRIVATE KEY-----\n{SECRET_B64}\n-----END PRIVATE KEY-----\n"),
            format!("-----BEGIN PRIVATE KEY-----\n{SECRET_B64}\n"),
            format!(
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\n{SECRET_B64}\n-----END ENCRYPTED PRIVATE KEY-----\n"
            ),
            format!("-----BEGIN PRIVATE KEY-----\n{SECRET_B64}*&^\n-----END PRIVATE KEY-----\n"),
        ] {
            let f = files(dir.path(), Some(FAKE_CERT), Some(key.as_str()));
            let e = error(&f);
            assert!(e.contains("TLS key file") && e.contains("key.pem"), "{e}");
            assert!(
                !e.contains(SECRET_B64) && !e.contains("TOPSECRET"),
                "the error quotes the key: {e}"
            );
        }
    }

    #[test]
    fn the_flags_go_together() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            tls: TlsArgs,
        }
        let parse = |args: &[&str]| Cli::try_parse_from(args.iter().copied());
        assert!(parse(&["x", "--tls-cert", "c.pem"]).is_err());
        assert!(parse(&["x", "--tls-key", "k.pem"]).is_err());
        let both = parse(&["x", "--tls-cert", "c.pem", "--tls-key", "k.pem"]).unwrap();
        assert_eq!(
            both.tls.files(),
            Some(TlsFiles {
                cert: "c.pem".into(),
                key: "k.pem".into()
            })
        );
        assert_eq!(parse(&["x"]).unwrap().tls.files(), None);
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        let e = format!("{:#}", client_builder(Some(path.as_path())).unwrap_err());
        assert!(e.contains("ca.pem"), "{e}");
        std::fs::write(&path, "nothing here\n").unwrap();
        let e = format!("{:#}", client_builder(Some(path.as_path())).unwrap_err());
        assert!(e.contains("ca.pem") && e.contains("no certificate"), "{e}");
        assert!(client_builder(None).is_ok());
    }
}
