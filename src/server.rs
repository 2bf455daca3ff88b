//! `pdx serve`: bootstrap, bind, register and resume jobs, serve (HTTP, or HTTPS with
//! `--tls-cert`/`--tls-key`, see [`crate::tls`]) until SIGTERM or Ctrl-C, then drain.
//! Timers run beside the server: this instance's heartbeat (with the ledger leadership,
//! `pdx_sandbox::cluster`), the poll for jobs of servers that stopped, and, on the
//! leader only, signed checkpoints and the end of emergency relaxations (XT Art.23(7)).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use pdx_sandbox::cluster::LEDGER_ROLE;
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
    let heartbeat = spawn_heartbeat(app.clone(), stop_rx.clone());
    let takeover = spawn_job_poll(app.clone(), stop_rx.clone());
    let sandbox = app.sandbox.clone();
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
        heartbeat.abort();
        takeover.abort();
        // Stopped cleanly: the other servers take this one's jobs and roles now.
        if let Err(e) = sandbox.leave().await {
            tracing::warn!(error = %e, "could not mark this instance stopped");
        }
        served.context("serving HTTP")
    });
    Ok(RunningServer {
        addr,
        scheme,
        stop: stop_tx,
        task,
    })
}

/// Whether this instance leads the deployment-wide periodic work now (see
/// `pdx_sandbox::cluster`): the heartbeat keeps the lease renewed, so this asks the
/// database only when that is not known (at start, or after losing the lease); a
/// database error counts as not leading.
async fn leading(app: &App) -> bool {
    if app.sandbox.cluster().is_leader(LEDGER_ROLE) {
        return true;
    }
    match app.sandbox.cluster().lead(LEDGER_ROLE).await {
        Ok(leading) => leading,
        Err(e) => {
            tracing::warn!(error = %e, "renewing the leader lease failed");
            false
        }
    }
}

/// Runs `tick` every `every` (the first at once, a slow tick delaying the next rather
/// than bunching them) until `stop` changes. Every timer beside the server is one.
fn spawn_every<F, Fut>(
    every: Duration,
    mut stop: watch::Receiver<bool>,
    mut tick: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => tick().await,
                _ = stop.changed() => break,
            }
        }
    })
}

/// This instance's heartbeat, every third of the lease: see `Sandbox::heartbeat`.
fn spawn_heartbeat(app: App, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    let every = (app.config.sandbox.instance_lease / 3).max(Duration::from_millis(100));
    spawn_every(every, stop, move || {
        let app = app.clone();
        async move {
            if let Err(e) = app.sandbox.heartbeat().await {
                tracing::warn!(error = %e, "the instance heartbeat failed");
            }
        }
    })
}

/// Takes over the jobs of servers that stopped, every `job_poll_interval`.
fn spawn_job_poll(app: App, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    let every = app
        .config
        .sandbox
        .job_poll_interval
        .max(Duration::from_millis(100));
    spawn_every(every, stop, move || {
        let app = app.clone();
        async move {
            if let Err(e) = app.take_over_jobs().await {
                tracing::warn!(error = %e, "looking for jobs to take over failed");
            }
        }
    })
}

/// Signs a checkpoint whenever the newest is stale (the "every T seconds" rule), on the
/// leader only: one instance at a time signs the periodic checkpoints.
fn spawn_checkpoint_timer(app: App, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    let every = app
        .config
        .ledger
        .checkpoint_interval
        .max(Duration::from_secs(1));
    spawn_every(every, stop, move || {
        let app = app.clone();
        async move {
            if !leading(&app).await {
                return;
            }
            if let Err(e) = app.ledger.checkpoint_if_stale().await {
                tracing::warn!(error = %e, "periodic checkpoint failed");
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
/// recorded at once) and every [`RELAXATION_CHECK_INTERVAL`], on the leader only.
fn spawn_relaxation_timer(app: App, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    spawn_every(RELAXATION_CHECK_INTERVAL, stop, move || {
        let app = app.clone();
        async move {
            if !leading(&app).await {
                return;
            }
            match app.sandbox.open_attributes().end_due_relaxations().await {
                Ok(0) => {}
                Ok(ended) => tracing::info!(ended, "recorded the end of emergency relaxations"),
                Err(e) => tracing::warn!(error = %e, "checking emergency relaxations failed"),
            }
        }
    })
}

/// `pdx serve`. `tls` is `app.config.tls` loaded by [`crate::tls::server_config`]
/// (before the database is opened, so that a bad file stops the start early); None
/// serves plain HTTP.
pub async fn serve(app: App, tls: Option<Arc<rustls::ServerConfig>>) -> anyhow::Result<()> {
    bootstrap_and_announce(&app).await?;
    // Bound first: a second server on the same address fails here, before it could
    // claim any job.
    let listener = TcpListener::bind(app.config.addr)
        .await
        .with_context(|| format!("binding {}", app.config.addr))?;
    app.resume_jobs(&listener.local_addr()?.to_string()).await?;
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
