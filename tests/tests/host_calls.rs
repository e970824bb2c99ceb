//! What each hot path asks of the host per request, counted by the test host
//! (`spin_test_host::HostCalls`). On real Spin a request's cost follows these calls (each
//! variable read, store open and round trip goes through Spin's host code, with a tracing span
//! around it) far more than the Rust inside the component (BENCHMARKS.md, "Speed on real
//! Spin"), so the counts are held here: a change that adds a call to a hot path fails this suite
//! and must say why in BENCHMARKS.md.

use integration_tests::{world, LicenseSpec, World};
use serde_json::{json, Value};
use spin_test_host::HostCalls;

/// One request's calls by `component`, checked to be one request.
async fn calls_of<F: std::future::Future<Output = Value>>(
    w: &World,
    component: &str,
    request: F,
) -> (Value, HostCalls) {
    let before = w.host.host_calls()[component];
    let answer = request.await;
    let calls = w.host.host_calls()[component] - before;
    assert_eq!(calls.requests, 1, "{component}: {calls:?}");
    (answer, calls)
}

async fn send(w: &World, method: &str, path: &str, auth: &str, body: Value) -> Value {
    let mut headers = vec![("content-type", "application/json")];
    if !auth.is_empty() {
        headers.push(("authorization", auth));
    }
    let r = w
        .host
        .request(method, path, &headers, body.to_string())
        .await
        .unwrap();
    assert!(r.status < 500, "{method} {path}: {} {}", r.status, r.text());
    r.json()
}

/// Expected calls: variables, kv open, kv get, kv set, kv delete, pg open, pg query.
fn expect(v: u64, open: u64, get: u64, set: u64, del: u64, pg_open: u64, q: u64) -> HostCalls {
    HostCalls {
        requests: 1,
        variables: v,
        kv_open: open,
        kv_get: get,
        kv_set: set,
        kv_delete: del,
        pg_open,
        pg_query: q,
        ..HostCalls::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hot_path_makes_the_host_calls_benchmarks_md_lists() {
    let w = world().await;
    let lic = w.license(LicenseSpec::default()).await;
    let key = format!("Bearer {}", lic.key);
    let validate = |token: &str| {
        send(
            &w,
            "POST",
            "/api/v1/licenses/validate",
            "",
            json!({ "token": token }),
        )
    };
    let mut rows = Vec::new();

    let (granted, acquire) = calls_of(
        &w,
        "acquire",
        send(
            &w,
            "POST",
            "/api/v1/licenses/acquire",
            &key,
            json!({"machine_id": "m"}),
        ),
    )
    .await;
    let token = granted["license_token"].as_str().unwrap().to_owned();
    let session = granted["session_id"].as_str().unwrap().to_owned();
    // One variable (seat_settings: database_url, token_issuer, signer and signing_key; the
    // Cloud KMS signer's own settings are read only when signer is kms), one pooled
    // connection, two statements (the attempt, then the seat), and the machine's seat entry for
    // license-key validation (the store, one write).
    assert_eq!(acquire, expect(1, 1, 0, 1, 0, 1, 2), "acquire");
    rows.push(("acquire (granted)", acquire));

    let (first, miss) = calls_of(&w, "validate", validate(&token)).await;
    assert_eq!(first["code"], "VALID", "{first}");
    // One variable (validate_settings), the store (PING on Redis), three reads (the cache entry,
    // the license, the session's end marker) and the new cache entry.
    assert_eq!(miss, expect(1, 1, 3, 1, 0, 0, 0), "validate, first");
    rows.push(("validate (signature checked, entry written)", miss));

    let (again, hit) = calls_of(&w, "validate", validate(&token)).await;
    assert_eq!(again["code"], "VALID", "{again}");
    assert_eq!(hit, expect(1, 1, 3, 0, 0, 0, 0), "validate, cached");
    rows.push(("validate (cached)", hit));

    let (refused, malformed) = calls_of(&w, "validate", validate("x.y.z")).await;
    assert_eq!(refused["code"], "MALFORMED", "{refused}");
    // A token that does not parse never opens the store.
    assert_eq!(
        malformed,
        expect(1, 0, 0, 0, 0, 0, 0),
        "validate, malformed"
    );
    rows.push(("validate (malformed token)", malformed));

    let beat_path = format!("/api/v1/licenses/sessions/{session}/heartbeat/");
    let (renewed, heartbeat) = calls_of(
        &w,
        "acquire",
        send(&w, "PATCH", &beat_path, &key, json!({})),
    )
    .await;
    assert!(renewed["license_token"].is_string(), "{renewed}");
    // As acquire, with one statement; the seat entry's new expiry.
    assert_eq!(heartbeat, expect(1, 1, 0, 1, 0, 1, 1), "heartbeat");
    rows.push(("heartbeat", heartbeat));

    let release_path = format!("/api/v1/licenses/sessions/{session}/");
    let (released, release) = calls_of(
        &w,
        "acquire",
        send(&w, "DELETE", &release_path, &key, json!({})),
    )
    .await;
    assert_eq!(released["session_id"], session.as_str(), "{released}");
    // The end marker, then the cache entry's delete.
    assert_eq!(release, expect(1, 1, 0, 1, 1, 1, 1), "release");
    rows.push(("release", release));

    let (ended, after) = calls_of(&w, "validate", validate(&token)).await;
    assert_eq!(ended["valid"], false, "{ended}");
    assert_eq!(
        after,
        expect(1, 1, 3, 0, 0, 0, 0),
        "validate, ended session"
    );
    rows.push(("validate (ended session)", after));

    let (health, live) = calls_of(&w, "health", async {
        w.host.get("/api/v1/health").await.unwrap().json()
    })
    .await;
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(live, expect(0, 0, 0, 0, 0, 0, 0), "health");
    rows.push(("health", live));

    eprintln!("| request | host calls | variables | kv opens | kv get/set/delete | Redis round trips | pg opens | statements | PostgreSQL round trips |");
    eprintln!("|---|---:|---:|---:|---|---:|---:|---:|---:|");
    for (name, c) in rows {
        eprintln!(
            "| {name} | {} | {} | {} | {}/{}/{} | {} | {} | {} | {} |",
            c.calls(),
            c.variables,
            c.kv_open,
            c.kv_get,
            c.kv_set,
            c.kv_delete,
            c.redis_round_trips(),
            c.pg_open,
            c.pg_query + c.pg_execute,
            c.pg_round_trips()
        );
    }
}
