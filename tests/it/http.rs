//! The HTTP surface, exercised with `oneshot` and no port bound.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use p2p_exporter::decision::{DecisionEngine, Thresholds};
use p2p_exporter::http::{app, AppState};
use p2p_exporter::recorder::{Recorder, RecorderConfig};
use prometheus::Registry;
use tower::ServiceExt;

fn state(ready: bool) -> AppState {
    let registry = Registry::new();
    let recorder = Arc::new(Recorder::new(&registry, RecorderConfig::default()).unwrap());
    let decision = Arc::new(DecisionEngine::new(Thresholds::shipped(), recorder.clone()));
    AppState {
        registry,
        recorder,
        decision,
        ready: Arc::new(AtomicBool::new(ready)),
    }
}

async fn call(state: AppState, request: Request<Body>) -> (StatusCode, String, String) {
    let response = app(state).oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn metrics_are_served_in_the_text_format() {
    let (status, content_type, body) = call(state(true), get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/plain; version=0.0.4");
    assert!(
        body.contains("# TYPE p2p_inv_messages_total counter"),
        "{body}"
    );
    assert!(body.contains(&format!(
        "p2p_exporter_build_info{{source=\"embedded\",version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
}

#[tokio::test]
async fn the_landing_page_links_every_endpoint() {
    let (status, content_type, body) = call(state(true), get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"));
    for path in ["/metrics", "/healthz", "/readyz", "/api/v1/decision"] {
        assert!(
            body.contains(&format!("href=\"{path}\"")),
            "{path} not linked"
        );
    }
}

#[tokio::test]
async fn readiness_follows_the_source_and_health_does_not() {
    let state = state(false);
    let (status, _, _) = call(state.clone(), get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _, body) = call(state.clone(), get("/healthz")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
    state.ready.store(true, Ordering::Release);
    let (status, _, _) = call(state, get("/readyz")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_paths_methods_and_oversized_bodies_are_refused() {
    let (status, _, _) = call(state(true), get("/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let post = Request::post("/metrics").body(Body::empty()).unwrap();
    let (status, _, _) = call(state(true), post).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let big = Request::get("/metrics")
        .header(header::CONTENT_LENGTH, 1 << 20)
        .body(Body::from(vec![b'x'; 1 << 20]))
        .unwrap();
    let (status, _, _) = call(state(true), big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn the_decision_endpoint_answers_with_the_verdict_and_its_inputs() {
    let (status, content_type, body) = call(state(true), get("/api/v1/decision")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    let decision: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(decision["verdict"], "none");
    assert_eq!(decision["inputs"]["lag_ratio"]["threshold"], 0.01);
    assert_eq!(decision["inputs"]["duplicate_ratio"]["threshold"], 0.3);
    assert_eq!(decision["inputs"]["average_peers"]["threshold"], 150.0);
    assert_eq!(decision["inputs"]["lag_ratio"]["window_seconds"], 21600);
    assert!(decision["reason"].as_str().unwrap().contains("do nothing"));
}
