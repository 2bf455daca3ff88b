//! Unauthenticated operational endpoints: liveness, readiness, metrics, the OpenAPI document.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::OpenApi;

use crate::app::App;
use crate::http::problem::ApiError;

/// Routes outside `/v1`.
pub fn routes(openapi: OpenApi) -> Router<App> {
    let doc = serde_json::to_value(&openapi).unwrap_or_default();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(move || async move { Json(doc) }))
}

async fn readyz(State(app): State<App>) -> Response {
    match app.db.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "database not reachable");
            ApiError::unavailable("the database is not reachable").into_response()
        }
    }
}

async fn metrics(State(app): State<App>) -> Response {
    let mut text = app.metrics.render();
    text.push_str(&cluster_metrics(&app).await);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// The cluster's gauges (`pdx_sandbox::cluster`): jobs queued and running per instance,
/// the instances live, and whether this one leads. Read from the database at each
/// scrape; a database error leaves them out (and is logged).
async fn cluster_metrics(app: &App) -> String {
    use std::fmt::Write as _;
    let cluster = app.sandbox.cluster();
    let (counts, instances) =
        match tokio::try_join!(app.sandbox.jobs().unfinished_counts(), cluster.instances()) {
            Ok(both) => both,
            Err(e) => {
                tracing::warn!(error = %e, "reading the cluster's gauges failed");
                return String::new();
            }
        };
    let mut out = String::new();
    out.push_str("# HELP pdx_jobs Unfinished jobs by the instance holding them and status.\n");
    out.push_str("# TYPE pdx_jobs gauge\n");
    for (instance, status, n) in counts {
        let _ = writeln!(
            out,
            "pdx_jobs{{instance=\"{}\",status=\"{}\"}} {n}",
            crate::http::metrics::escape(instance.as_deref().unwrap_or("")),
            crate::http::metrics::escape(&status)
        );
    }
    out.push_str(
        "# HELP pdx_instance_live Servers on this database, 1 while their heartbeat is fresh.\n",
    );
    out.push_str("# TYPE pdx_instance_live gauge\n");
    for instance in instances {
        let _ = writeln!(
            out,
            "pdx_instance_live{{instance=\"{}\"}} {}",
            crate::http::metrics::escape(&instance.name),
            u8::from(instance.live)
        );
    }
    out.push_str(
        "# HELP pdx_instance_leader 1 while this server leads the ledger's periodic work.\n",
    );
    out.push_str("# TYPE pdx_instance_leader gauge\n");
    let _ = writeln!(
        out,
        "pdx_instance_leader{{instance=\"{}\",role=\"{}\"}} {}",
        crate::http::metrics::escape(cluster.name()),
        pdx_sandbox::cluster::LEDGER_ROLE,
        u8::from(cluster.is_leader(pdx_sandbox::cluster::LEDGER_ROLE))
    );
    out
}
