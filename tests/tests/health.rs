//! The health component: liveness touches nothing; readiness is a key-value round trip only
//! (200, or a prompt 503 naming it), so PostgreSQL stopped leaves it 200; the database check
//! (`/api/v1/health/db`) is `SELECT 1`, 200 or 503 `database_unavailable` in the envelope.

use integration_tests::servers::{free_port, PgServer, RedisServer};
use integration_tests::{app, pg_port, pg_url, redis_runtime_config, redis_url};
use spin_test_host::runtime_config::RuntimeConfig;
use std::time::{Duration, Instant};

/// Readiness must answer, not hang: this bound is a hang check, not a speed assertion.
const NO_HANG: Duration = Duration::from_secs(15);

#[tokio::test]
async fn liveness_answers_with_and_without_trailing_slash() {
    let host = app(&pg_url(1, "nowhere"), RuntimeConfig::default(), &[]).await;
    for path in [
        "/api/v1/health",
        "/api/v1/health/",
        "//api/v1/health/?probe=1",
    ] {
        let r = host.get(path).await.unwrap();
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let v = r.json();
        assert_eq!(v["status"], "healthy");
        assert_eq!(v["service"], "license-edge");
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
        let ts = v["timestamp"].as_str().unwrap();
        assert!(
            ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
            "{ts}"
        );
    }
}

#[tokio::test]
async fn other_methods_get_405_with_the_envelope() {
    let host = app(
        &pg_url(pg_port(), "postgres"),
        RuntimeConfig::default(),
        &[],
    )
    .await;
    for path in [
        "/api/v1/health/",
        "/api/v1/health/ready/",
        "/api/v1/health/db/",
    ] {
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let r = host.request(method, path, &[], Vec::new()).await.unwrap();
            assert_eq!(r.status, 405, "{method} {path}");
            assert_eq!(r.header("allow"), Some("GET"));
            let v = r.json();
            assert_eq!(v["error"]["code"], "method_not_allowed");
            assert_eq!(v["error"]["details"]["allowed"][0], "GET");
            assert!(v["meta"]["request_id"].is_string());
        }
    }
    let r = host
        .request("HEAD", "/api/v1/health", &[], Vec::new())
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn ready_when_postgres_and_redis_answer() {
    let host = app(
        &pg_url(pg_port(), "postgres"),
        redis_runtime_config(&redis_url()),
        &[],
    )
    .await;
    for path in ["/api/v1/health/ready", "/api/v1/health/ready/"] {
        let r = host.get(path).await.unwrap();
        let v = r.json();
        assert_eq!(r.status, 200, "{v}");
        assert_eq!(v["status"], "ready");
        assert_eq!(v["checks"], serde_json::json!({"key_value": "connected"}));
    }
    for path in ["/api/v1/health/db", "/api/v1/health/db/"] {
        let r = host.get(path).await.unwrap();
        let v = r.json();
        assert_eq!(r.status, 200, "{v}");
        assert_eq!(v["status"], "ok");
        assert_eq!(v["checks"]["database"], "connected");
        assert!(v["meta"]["request_id"].is_string(), "{v}");
    }
}

#[tokio::test]
async fn ready_with_the_default_spin_store() {
    let host = app(
        &pg_url(pg_port(), "postgres"),
        RuntimeConfig::default(),
        &[],
    )
    .await;
    assert_eq!(host.get("/api/v1/health/ready").await.unwrap().status, 200);
}

async fn assert_not_ready(host: &spin_test_host::Host) {
    let t0 = Instant::now();
    let r = host.get("/api/v1/health/ready/").await.unwrap();
    assert!(t0.elapsed() < NO_HANG, "readiness took {:?}", t0.elapsed());
    let v = r.json();
    assert_eq!(r.status, 503, "{v}");
    assert_eq!(v["status"], "not_ready");
    assert_eq!(v["checks"]["key_value"], "unavailable", "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(error.starts_with("key_value"), "{error}");
}

/// Readiness answers 200 (the key-value store works) while the database check answers 503.
async fn assert_ready_without_the_database(host: &spin_test_host::Host) {
    let r = host.get("/api/v1/health/ready/").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let t0 = Instant::now();
    let r = host.get("/api/v1/health/db/").await.unwrap();
    assert!(
        t0.elapsed() < NO_HANG,
        "the database check took {:?}",
        t0.elapsed()
    );
    assert_eq!(r.status, 503, "{}", r.text());
    let text = r.text();
    assert_eq!(r.json()["error"]["code"], "database_unavailable", "{text}");
    assert!(
        !text.contains("postgres://"),
        "never leak the connection string: {text}"
    );
}

#[tokio::test]
async fn ready_but_the_database_check_fails_when_postgres_is_at_a_closed_port() {
    let closed = free_port();
    let host = app(
        &pg_url(closed, "postgres"),
        redis_runtime_config(&redis_url()),
        &[],
    )
    .await;
    assert_ready_without_the_database(&host).await;
}

#[tokio::test]
async fn not_ready_when_redis_is_at_a_closed_port() {
    let redis = format!("redis://127.0.0.1:{}", free_port());
    let host = app(
        &pg_url(pg_port(), "postgres"),
        redis_runtime_config(&redis),
        &[],
    )
    .await;
    assert_not_ready(&host).await;
    assert_eq!(host.get("/api/v1/health/db").await.unwrap().status, 200);
}

#[tokio::test]
async fn postgres_stopped_leaves_readiness_and_fails_only_the_database_check() {
    let pg = PgServer::start();
    let host = app(&pg.url("postgres"), redis_runtime_config(&redis_url()), &[]).await;
    assert_eq!(host.get("/api/v1/health/ready").await.unwrap().status, 200);
    assert_eq!(host.get("/api/v1/health/db").await.unwrap().status, 200);
    pg.stop();
    assert_ready_without_the_database(&host).await;
    pg.start_again();
    // The pool drops the dead connection; the next request opens a new one.
    let mut status = 0;
    for _ in 0..3 {
        status = host.get("/api/v1/health/db").await.unwrap().status;
        if status == 200 {
            break;
        }
    }
    assert_eq!(status, 200);
    assert_eq!(host.get("/api/v1/health/ready").await.unwrap().status, 200);
}

#[tokio::test]
async fn readiness_follows_redis_stopping_and_coming_back() {
    let mut redis = RedisServer::start();
    let host = app(
        &pg_url(pg_port(), "postgres"),
        redis_runtime_config(&redis.url()),
        &[],
    )
    .await;
    assert_eq!(host.get("/api/v1/health/ready").await.unwrap().status, 200);
    redis.stop();
    assert_not_ready(&host).await;
    assert_eq!(host.get("/api/v1/health/db").await.unwrap().status, 200);
    redis.start_again();
    let deadline = Instant::now() + NO_HANG;
    loop {
        let status = host.get("/api/v1/health/ready").await.unwrap().status;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readiness did not recover after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
