//! The sidecar's HTTP surface.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use prometheus::{Encoder, Registry, TextEncoder};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::decision::{Decision, DecisionEngine};
use crate::recorder::Recorder;

/// The exporter's documented default port.
pub const DEFAULT_PORT: u16 = 9730;

/// No endpoint takes a body; anything larger than this is refused before it is read.
const MAX_REQUEST_BODY_BYTES: usize = 16 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct AppState {
    pub registry: Registry,
    pub recorder: Arc<Recorder>,
    pub decision: Arc<DecisionEngine>,
    /// Set once the observation source is running.
    pub ready: Arc<AtomicBool>,
}

pub fn app(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/decision", get(decision))
        .fallback(not_found)
        .layer((
            TraceLayer::new_for_http(),
            TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT),
            RequestBodyLimitLayer::new(MAX_REQUEST_BODY_BYTES),
        ))
        .with_state(state)
}

async fn index() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><html><head><title>p2p-exporter</title></head><body>",
        "<h1>p2p-exporter ",
        env!("CARGO_PKG_VERSION"),
        "</h1><p>Sidecar exporter for the node's P2P event router.</p><ul>",
        "<li><a href=\"/metrics\">/metrics</a>: Prometheus metrics</li>",
        "<li><a href=\"/healthz\">/healthz</a>: the process is alive</li>",
        "<li><a href=\"/readyz\">/readyz</a>: the observation source is running</li>",
        "<li><a href=\"/api/v1/decision\">/api/v1/decision</a>: the decision framework's verdict</li>",
        "</ul></body></html>"
    ))
}

async fn metrics(State(state): State<AppState>) -> Response {
    state.recorder.refresh();
    let mut body = Vec::with_capacity(16 * 1024);
    let encoder = TextEncoder::new();
    match encoder.encode(&state.registry.gather(), &mut body) {
        Ok(()) => ([(header::CONTENT_TYPE, encoder.format_type())], body).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "encoding metrics failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding metrics failed\n",
            )
                .into_response()
        }
    }
}

async fn decision(State(state): State<AppState>) -> Json<Decision> {
    Json(state.decision.evaluate())
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found; see /\n")
}
