//! The HTTP endpoint of `forewarn run` and `forewarn demo`: `/metrics`
//! (Prometheus text format), `/healthz` (the process is alive), `/readyz`
//! (partitions are assigned and the pipeline is polling), `/api/v1/alerts`
//! (current pending and firing alerts, in the shape of Prometheus's alerts API),
//! `/api/v1/rules` (the rules with their alerts, in the shape of Prometheus's
//! rules API), `/api/v1/risk` (each service's risk score and its contributions), `/rules/NAME` (one rule: where every alert's `generatorURL`
//! points) and `POST /-/reload` (re-read the config file, as `SIGHUP` does).

use std::net::SocketAddr;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use forewarn_kafka::{ActiveAlerts, Metrics};
use prometheus::{Encoder, IntGaugeVec, Opts, TextEncoder};

/// What the handlers read.
#[derive(Clone)]
pub struct Endpoint {
    /// Pipeline metrics (and the registry they live in).
    pub metrics: Metrics,
    /// Current alerts.
    pub alerts: ActiveAlerts,
    /// Re-reads and applies the config file (`forewarn run`; `None` in the
    /// demo, whose config is built in).
    pub reload: Option<Reload>,
}

/// A config reload: what changed, or why it was refused.
pub type Reload = std::sync::Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// Registers `forewarn_build_info{version}` = 1 and the standard `process_*`
/// metrics in the pipeline's registry.
pub fn register_build_info(metrics: &Metrics) {
    let info = IntGaugeVec::new(
        Opts::new("forewarn_build_info", "forewarn version; always 1."),
        &["version"],
    )
    .expect("valid metric");
    info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    // Registering twice (a second pipeline in one process) keeps the first.
    let _ = metrics.registry.register(Box::new(info));
    // process_cpu_seconds_total, process_resident_memory_bytes, open fds …
    #[cfg(target_os = "linux")]
    let _ = metrics.registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ));
}

async fn metrics(State(e): State<Endpoint>) -> Response {
    // Current alerts, signal values and risk are published by every worker
    // at scrape time.
    let view = e.alerts.clone();
    if let Ok(current) = tokio::task::spawn_blocking(move || view.view()).await {
        e.metrics.set_active(&current.alerts);
        e.metrics.set_readings(&current.readings);
    }
    let mut buf = Vec::new();
    match TextEncoder::new().encode(&e.metrics.registry.gather(), &mut buf) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            buf,
        )
            .into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

/// `POST /-/reload`: 200 with what changed, or 400 with why the new config was
/// refused (the running one is kept).
async fn reload(State(e): State<Endpoint>) -> Response {
    let Some(reload) = e.reload.clone() else {
        return (
            StatusCode::NOT_FOUND,
            "reload: this process has no config file to re-read\n",
        )
            .into_response();
    };
    match tokio::task::spawn_blocking(move || reload()).await {
        Ok(Ok(what)) => (StatusCode::OK, format!("{what}\n")).into_response(),
        Ok(Err(why)) => (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// The pipeline loop polls at least every 100 ms; this much silence means it is stuck.
const STALLED_AFTER_SECS: i64 = 30;

async fn readyz(State(e): State<Endpoint>) -> Response {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let silent = now - e.metrics.last_poll.get();
    readiness(e.metrics.assigned_partitions.get(), silent).into_response()
}

/// Ready means consuming: partitions assigned, and the pipeline loop polled
/// within the last [`STALLED_AFTER_SECS`] (a stuck loop stops taking traffic).
fn readiness(assigned: i64, silent_secs: i64) -> (StatusCode, String) {
    if assigned == 0 {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no partitions assigned\n".to_string(),
        )
    } else if silent_secs > STALLED_AFTER_SECS {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the pipeline has not polled for {silent_secs} s\n"),
        )
    } else {
        (
            StatusCode::OK,
            format!("ready: {assigned} partitions assigned\n"),
        )
    }
}

async fn alerts(State(e): State<Endpoint>) -> Response {
    // Rendering takes the pipeline's lock briefly; keep it off the async workers.
    let view = e.alerts.clone();
    match tokio::task::spawn_blocking(move || view.list()).await {
        Ok(list) => Json(serde_json::json!({
            "status": "success",
            "data": { "alerts": list.iter().map(prometheus_shape).collect::<Vec<_>>() },
        }))
        .into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

/// `GET /api/v1/risk[?service=NAME]`: see [`crate::risk_api`].
async fn risk(
    State(e): State<Endpoint>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let view = e.alerts.clone();
    match tokio::task::spawn_blocking(move || view.view()).await {
        Ok(current) => {
            let only = q.get("service").map(String::as_str);
            Json(crate::risk_api::document(&current.readings, only)).into_response()
        }
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

/// The rules in Prometheus's `/api/v1/rules` shape (one group, `forewarn`),
/// each with its current alerts.
async fn rules(State(e): State<Endpoint>) -> Response {
    let view = e.alerts.clone();
    match tokio::task::spawn_blocking(move || (view.config(), view.list())).await {
        Ok((cfg, alerts)) => {
            let rules: Vec<serde_json::Value> = cfg
                .rules
                .iter()
                .map(|r| rule_json(&cfg, r, &alerts))
                .collect();
            Json(serde_json::json!({
                "status": "success",
                "data": { "groups": [{ "name": "forewarn", "file": "", "rules": rules }] },
            }))
            .into_response()
        }
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

/// One rule (every alert's `generatorURL` points here), with its alerts.
async fn rule(State(e): State<Endpoint>, Path(name): Path<String>) -> Response {
    let view = e.alerts.clone();
    match tokio::task::spawn_blocking(move || (view.config(), view.list())).await {
        Ok((cfg, alerts)) => match cfg.rules.iter().find(|r| r.name == name) {
            Some(r) => Json(rule_json(&cfg, r, &alerts)).into_response(),
            None => (
                StatusCode::NOT_FOUND,
                format!("no rule `{name}`; GET /api/v1/rules lists them\n"),
            )
                .into_response(),
        },
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

fn rule_json(
    cfg: &forewarn_core::Config,
    r: &forewarn_core::config::RuleDef,
    alerts: &[forewarn_core::Alert],
) -> serde_json::Value {
    let mine: Vec<serde_json::Value> = alerts
        .iter()
        .filter(|a| a.labels.get("alertname") == Some(&r.name))
        .map(prometheus_shape)
        .collect();
    let state = if mine.iter().any(|a| a["state"] == "firing") {
        "firing"
    } else if mine.is_empty() {
        "inactive"
    } else {
        "pending"
    };
    serde_json::json!({
        "name": r.name,
        "type": "alerting",
        "health": "ok",
        "state": state,
        "query": r.spec.describe(&cfg.signals),
        "signal": r.signal_name(&cfg.signals),
        "labels": r.labels,
        "annotations": { "summary": r.summary },
        "category": r.category.map(|c| c.as_str()),
        "alerts": mine,
    })
}

/// An alert as Prometheus's `/api/v1/alerts` shows one (`labels`,
/// `annotations`, `state`, `activeAt`, `value`), so tooling written for it reads
/// forewarn's too; forewarn's own fields (`fingerprint`, `episode`,
/// `generatorURL`, `status`) come along.
fn prometheus_shape(a: &forewarn_core::Alert) -> serde_json::Value {
    serde_json::json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "state": a.status,
        "activeAt": a.starts_at,
        "value": a.annotations.get("value").cloned().unwrap_or_default(),
        "status": a.status,
        "fingerprint": a.fingerprint,
        "episode": a.episode,
        "generatorURL": a.generator_url,
    })
}

/// Binds `addr` and serves until the runtime stops; returns the bound address
/// (useful with port 0).
pub async fn serve(addr: &str, endpoint: Endpoint) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/risk", get(risk))
        .route("/rules/{name}", get(rule))
        .route("/-/reload", post(reload))
        .with_state(endpoint);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "http endpoint stopped");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_while_assigned_and_polling() {
        assert_eq!(readiness(2, 0).0, StatusCode::OK);
        assert_eq!(readiness(2, STALLED_AFTER_SECS).0, StatusCode::OK);
        let (status, text) = readiness(0, 0);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(text.contains("no partitions assigned"), "{text}");
        let (status, text) = readiness(2, STALLED_AFTER_SECS + 1);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(text.contains("has not polled for 31 s"), "{text}");
    }
}
