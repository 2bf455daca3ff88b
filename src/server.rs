//! `pdx serve`: bind, bootstrap, serve until SIGTERM or Ctrl-C, then drain.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::App;

/// A server running in the background (the demo and the tests use this).
pub struct RunningServer {
    /// Bound address.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningServer {
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
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

/// Starts serving on `listener` until `stop` turns true.
pub fn spawn(app: App, listener: TcpListener) -> anyhow::Result<RunningServer> {
    let addr = listener.local_addr()?;
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let router = crate::http::router(app.clone());
    let timer = spawn_checkpoint_timer(app.clone(), stop_rx.clone());
    let task = tokio::spawn(async move {
        // The peer address reaches the handlers: the lock-out after failed keys counts
        // per client address (`http::limits`).
        let served = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        })
        .await;
        timer.abort();
        served.context("serving HTTP")
    });
    Ok(RunningServer {
        addr,
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

/// `pdx serve`.
pub async fn serve(app: App) -> anyhow::Result<()> {
    bootstrap_and_announce(&app).await?;
    app.resume_jobs().await?;
    let listener = TcpListener::bind(app.config.addr)
        .await
        .with_context(|| format!("binding {}", app.config.addr))?;
    let server = spawn(app, listener)?;
    tracing::info!(addr = %server.addr, "pdx listening");
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
