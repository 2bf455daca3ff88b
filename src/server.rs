//! `pdx serve`: bind, bootstrap, serve (HTTP, or HTTPS with `--tls-cert`/`--tls-key`,
//! see [`crate::tls`]) until SIGTERM or Ctrl-C, then drain. Two timers run beside the
//! server: signed checkpoints, and the end of emergency relaxations (XT Art.23(7)).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::rustls;

use crate::app::App;
use crate::tls::TlsListener;

/// A server running in the background (the demo and the tests use this).
pub struct RunningServer {
    /// Bound address.
    pub addr: SocketAddr,
    /// `http` or `https`.
    scheme: &'static str,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningServer {
    /// Base URL, e.g. `http://127.0.0.1:40123` (`https://` under TLS).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Stops accepting, drains in-flight requests and waits.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await.context("server task")?
    }
}

/// Prints the bootstrap admin key once, if this is the first start.
pub async fn bootstrap_and_announce(app: &App) -> anyhow::Result<()> {
    if let Some(key) = app.bootstrap().await? {
        // The one time the secret is shown (stderr, not the log).
        eprintln!(
            "pdx: bootstrapped organisation pdx-platform with an admin key (also written to {}):\n{}",
            app.config.admin_key_path().display(),
            key.key
        );
    }
    Ok(())
}

/// Starts serving plain HTTP on `listener` until `stop` turns true.
pub fn spawn(app: App, listener: TcpListener) -> anyhow::Result<RunningServer> {
    spawn_on(app, Bound::Plain(listener))
}

/// Starts serving HTTPS on `listener` with `tls` (see [`crate::tls::server_config`]).
pub fn spawn_tls(
    app: App,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
) -> anyhow::Result<RunningServer> {
    spawn_on(app, Bound::Tls(TlsListener::new(listener, tls)?))
}

enum Bound {
    Plain(TcpListener),
    Tls(TlsListener),
}

fn spawn_on(app: App, listener: Bound) -> anyhow::Result<RunningServer> {
    let (addr, scheme) = match &listener {
        Bound::Plain(l) => (l.local_addr()?, "http"),
        Bound::Tls(l) => (axum::serve::Listener::local_addr(l)?, "https"),
    };
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let router = crate::http::router(app.clone());
    let timer = spawn_checkpoint_timer(app.clone(), stop_rx.clone());
    let relaxations = spawn_relaxation_timer(app.clone(), stop_rx.clone());
    let task = tokio::spawn(async move {
        // The peer address reaches the handlers: the lock-out after failed keys counts
        // per client address (`http::limits`).
        let make_service = router.into_make_service_with_connect_info::<SocketAddr>();
        let stopped = async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        };
        let served = match listener {
            Bound::Plain(l) => {
                axum::serve(l, make_service)
                    .with_graceful_shutdown(stopped)
                    .await
            }
            // axum gives `ConnectInfo<SocketAddr>` to its own TCP listener and to any
            // listener wrapped by `tap_io`; the tap itself does nothing.
            Bound::Tls(l) => {
                axum::serve(l.tap_io(|_| {}), make_service)
                    .with_graceful_shutdown(stopped)
                    .await
            }
        };
        timer.abort();
        relaxations.abort();
        served.context("serving HTTP")
    });
    Ok(RunningServer {
        addr,
        scheme,
        stop: stop_tx,
        task,
    })
}

/// Signs a checkpoint whenever the newest is stale (the "every T seconds" rule).
fn spawn_checkpoint_timer(
    app: App,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let every = app
        .config
        .ledger
        .checkpoint_interval
        .max(Duration::from_secs(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = app.ledger.checkpoint_if_stale().await {
                        tracing::warn!(error = %e, "periodic checkpoint failed");
                    }
                }
                _ = stop.changed() => break,
            }
        }
    })
}

/// How often the server records the end of emergency relaxations past their end date
/// (XT Art.23(7)). Nothing waits for it: every read computes a dataset's attribute in
/// force from the relaxation's end (`pdx_sandbox::open_attributes`).
const RELAXATION_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// Records the end of emergency relaxations (the `ended` ledger entry, and the
/// suspension of grants on data that is not open again) when the server starts (the
/// interval's first tick is immediate, so one that ended while the server was down is
/// recorded at once) and every [`RELAXATION_CHECK_INTERVAL`].
fn spawn_relaxation_timer(
    app: App,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RELAXATION_CHECK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    match app.sandbox.open_attributes().end_due_relaxations().await {
                        Ok(0) => {}
                        Ok(ended) => tracing::info!(ended, "recorded the end of emergency relaxations"),
                        Err(e) => tracing::warn!(error = %e, "checking emergency relaxations failed"),
                    }
                }
                _ = stop.changed() => break,
            }
        }
    })
}

/// `pdx serve`. `tls` is `app.config.tls` loaded by [`crate::tls::server_config`]
/// (before the database is opened, so that a bad file stops the start early); None
/// serves plain HTTP.
pub async fn serve(app: App, tls: Option<Arc<rustls::ServerConfig>>) -> anyhow::Result<()> {
    bootstrap_and_announce(&app).await?;
    app.resume_jobs().await?;
    let listener = TcpListener::bind(app.config.addr)
        .await
        .with_context(|| format!("binding {}", app.config.addr))?;
    let server = match tls {
        Some(tls) => spawn_tls(app, listener, tls)?,
        None => spawn(app, listener)?,
    };
    tracing::info!(addr = %server.addr, url = %server.url(), "pdx listening");
    shutdown_signal().await;
    tracing::info!("shutting down: draining in-flight requests");
    server.shutdown().await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
