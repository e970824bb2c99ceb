//! The request log: every request to every component writes exactly one JSON line to the
//! component's stderr (which Spin collects), with its request id, route, method, status, code,
//! duration and the ids it concerns, and never a secret. The test host copies the components'
//! stderr into a buffer (`ComponentLog`) that these tests read whole: the free-text
//! diagnostics beside the lines are searched for secrets too.
//!
//! The `X-Request-Id` a client sends is echoed when well formed (1-128 of `A-Za-z0-9._:-`),
//! replaced otherwise, and the same id is in the answer's header, its `meta.request_id` and the
//! log line.

use integration_tests::{
    admin_auth, admin_license, admin_request, app_with_log, migrated_database,
    redis_runtime_config, redis_url, test_signing_key, TEST_ADMIN_TOKEN, TEST_VERIFY_CACHE_KEY,
};
use serde_json::{json, Value};
use spin_test_host::{ComponentLog, Host, TestResponse};
use std::collections::BTreeMap;

/// The fields a request line may have.
const FIELDS: &[&str] = &[
    "ts",
    "level",
    "msg",
    "component",
    "request_id",
    "method",
    "route",
    "status",
    "code",
    "duration_ms",
    "organization_id",
    "license_id",
    "session_id",
    "key_id",
];

/// Every request line in the log, by request id (a list, so that duplicates show).
fn request_lines(log: &ComponentLog) -> BTreeMap<String, Vec<Value>> {
    let mut by_id: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if v["msg"] != "request" {
            continue;
        }
        let id = v["request_id"].as_str().expect("a request id").to_owned();
        by_id.entry(id).or_default().push(v);
    }
    by_id
}

/// The shape every request line has, whatever the request.
fn assert_shape(v: &Value) {
    let object = v.as_object().expect("a line is a JSON object");
    for key in object.keys() {
        assert!(FIELDS.contains(&key.as_str()), "unknown field {key} in {v}");
    }
    let ts = v["ts"].as_str().expect("ts");
    assert!(ts.len() == 24 && ts.ends_with('Z'), "{v}");
    assert!(["info", "warn", "error"].contains(&v["level"].as_str().unwrap()));
    assert!(["health", "validate", "acquire", "admin"].contains(&v["component"].as_str().unwrap()));
    let status = v["status"].as_u64().expect("status");
    let level = match status {
        500.. => "error",
        400..=499 => "warn",
        _ => "info",
    };
    assert_eq!(v["level"], level, "{v}");
    assert!(v["duration_ms"].as_f64().expect("duration") >= 0.0, "{v}");
    assert!(v["method"].is_string() && v["route"].is_string(), "{v}");
    let route = v["route"].as_str().unwrap();
    assert!(route == "unmatched" || route.starts_with('/'), "{v}");
    for id in ["organization_id", "license_id", "session_id", "key_id"] {
        if let Some(value) = v.get(id) {
            let prefix = &id[..3];
            let text = value.as_str().expect("ids are strings");
            assert!(
                text.starts_with(prefix) || (id == "session_id" && text.starts_with("ses_")),
                "{id} = {text}"
            );
        }
    }
}

struct Sent {
    id: String,
    response: TestResponse,
}

async fn send(
    host: &Host,
    id: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<bytes::Bytes>,
) -> Sent {
    let mut all = vec![("x-request-id", id)];
    all.extend_from_slice(headers);
    let response = host.request(method, path, &all, body).await.unwrap();
    assert_eq!(
        response.header("x-request-id"),
        Some(id),
        "{method} {path}: {}",
        response.text()
    );
    if let Ok(v) = serde_json::from_slice::<Value>(&response.body) {
        if v.is_object() && path != "/api/v1/openapi.json" {
            assert_eq!(v["meta"]["request_id"], id, "{method} {path}: {v}");
        }
    }
    Sent {
        id: id.to_owned(),
        response,
    }
}

fn only_line<'a>(lines: &'a BTreeMap<String, Vec<Value>>, sent: &Sent) -> &'a Value {
    let found = lines
        .get(&sent.id)
        .unwrap_or_else(|| panic!("no log line for {}", sent.id));
    assert_eq!(found.len(), 1, "one line per request: {found:?}");
    assert_eq!(
        found[0]["status"].as_u64(),
        Some(u64::from(sent.response.status)),
        "{}",
        found[0]
    );
    &found[0]
}

#[tokio::test]
async fn every_request_writes_one_line_with_its_ids_and_never_a_secret() {
    let db = migrated_database().await;
    let (host, log) = app_with_log(&db, redis_runtime_config(&redis_url()), &[]).await;
    let lic = admin_license(&host, json!({"max_seats": 1})).await;
    let r = admin_request(
        &host,
        "POST",
        &format!("/api/v1/admin/organizations/{}/keys", lic.organization_id),
        json!({"name": "ops", "role": "read"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let org_key = r.json()["key"].as_str().unwrap().to_owned();
    let org_key_id = r.json()["id"].as_str().unwrap().to_owned();
    let machine = "raw-machine-id-7f3a9c-do-not-log";
    let other_machine = "raw-machine-id-b21e-do-not-log";
    let unknown_key = "LE-UNKNOWN-0123456789abcdef-do-not-log";
    let wrong_admin = "wrong-admin-token-0123456789-do-not-log";
    let license_auth = format!("Bearer {}", lic.key);
    let json_type = ("content-type", "application/json");

    let health = send(&host, "t-health", "GET", "/api/v1/health/", &[], "").await;
    let ready = send(&host, "t-ready", "GET", "/api/v1/health/ready", &[], "").await;
    let db_check = send(&host, "t-db", "GET", "/api/v1/health/db", &[], "").await;
    let openapi = send(&host, "t-openapi", "GET", "/api/v1/openapi.json", &[], "").await;
    let acquired = send(
        &host,
        "t-acquire",
        "POST",
        "/api/v1/licenses/acquire",
        &[("authorization", &license_auth), json_type],
        json!({"machine_id": machine}).to_string(),
    )
    .await;
    assert_eq!(
        acquired.response.status,
        201,
        "{}",
        acquired.response.text()
    );
    let granted = acquired.response.json();
    let token = granted["license_token"].as_str().unwrap().to_owned();
    let session = granted["session_id"].as_str().unwrap().to_owned();
    let refused = send(
        &host,
        "t-no-seat",
        "POST",
        "/api/v1/licenses/acquire",
        &[("authorization", &license_auth), json_type],
        json!({"machine_id": other_machine}).to_string(),
    )
    .await;
    assert_eq!(refused.response.status, 409);
    let valid = send(
        &host,
        "t-valid",
        "POST",
        "/api/v1/licenses/validate",
        &[json_type],
        json!({"token": token, "machine_id": machine}).to_string(),
    )
    .await;
    assert_eq!(valid.response.json()["code"], "VALID");
    let malformed = send(
        &host,
        "t-malformed",
        "POST",
        "/api/v1/licenses/validate",
        &[json_type],
        json!({"token": "not.a.token"}).to_string(),
    )
    .await;
    let heartbeat = send(
        &host,
        "t-heartbeat",
        "PATCH",
        &format!("/api/v1/licenses/sessions/{session}/heartbeat"),
        &[("authorization", &license_auth)],
        "",
    )
    .await;
    assert_eq!(
        heartbeat.response.status,
        200,
        "{}",
        heartbeat.response.text()
    );
    let released = send(
        &host,
        "t-release",
        "DELETE",
        &format!("/api/v1/licenses/sessions/{session}"),
        &[("authorization", &license_auth)],
        "",
    )
    .await;
    assert_eq!(released.response.status, 200);
    let ended = send(
        &host,
        "t-ended",
        "POST",
        "/api/v1/licenses/validate",
        &[json_type],
        json!({"token": token, "machine_id": machine}).to_string(),
    )
    .await;
    assert_eq!(ended.response.json()["code"], "SESSION_ENDED");
    let unknown = send(
        &host,
        "t-unknown-key",
        "POST",
        "/api/v1/licenses/acquire",
        &[
            ("authorization", &format!("Bearer {unknown_key}")),
            json_type,
        ],
        json!({"machine_id": machine}).to_string(),
    )
    .await;
    assert_eq!(unknown.response.status, 401);
    let org_auth = format!("Bearer {org_key}");
    let by_key = send(
        &host,
        "t-org-key",
        "GET",
        &format!("/api/v1/admin/licenses/{}", lic.id),
        &[("authorization", &org_auth)],
        "",
    )
    .await;
    assert_eq!(by_key.response.status, 200);
    let bad_admin = send(
        &host,
        "t-bad-admin",
        "GET",
        "/api/v1/admin/organizations",
        &[("authorization", &format!("Bearer {wrong_admin}"))],
        "",
    )
    .await;
    assert_eq!(bad_admin.response.status, 401);
    let usage = send(
        &host,
        "t-usage",
        "GET",
        &format!("/api/v1/admin/licenses/{}/usage", lic.id),
        &[("authorization", &admin_auth())],
        "",
    )
    .await;
    assert_eq!(usage.response.status, 200, "{}", usage.response.text());
    let nowhere = send(
        &host,
        "t-nowhere",
        "GET",
        "/api/v1/licenses/sessions/x/explode",
        &[],
        "",
    )
    .await;
    assert_eq!(nowhere.response.status, 404);

    let lines = request_lines(&log);
    for v in lines.values().flatten() {
        assert_shape(v);
    }
    let line = |sent: &Sent| only_line(&lines, sent).clone();
    for (sent, component, route) in [
        (&health, "health", "/api/v1/health"),
        (&ready, "health", "/api/v1/health/ready"),
        (&db_check, "health", "/api/v1/health/db"),
        (&openapi, "health", "/api/v1/openapi.json"),
        (&valid, "validate", "/api/v1/licenses/validate"),
        (&acquired, "acquire", "/api/v1/licenses/acquire"),
        (
            &heartbeat,
            "acquire",
            "/api/v1/licenses/sessions/{session_id}/heartbeat",
        ),
        (
            &released,
            "acquire",
            "/api/v1/licenses/sessions/{session_id}",
        ),
        (&by_key, "admin", "/api/v1/admin/licenses/{license_id}"),
        (&usage, "admin", "/api/v1/admin/licenses/{license_id}/usage"),
        (&nowhere, "acquire", "unmatched"),
    ] {
        let v = line(sent);
        assert_eq!(v["component"], component, "{v}");
        assert_eq!(v["route"], route, "{v}");
    }
    let v = line(&acquired);
    assert_eq!(v["method"], "POST");
    assert_eq!(v["license_id"], lic.id.as_str(), "{v}");
    assert_eq!(v["organization_id"], lic.organization_id.as_str(), "{v}");
    assert_eq!(v["session_id"], session.as_str(), "{v}");
    let v = line(&refused);
    assert_eq!(v["code"], "no_seats_available", "{v}");
    assert_eq!(v["license_id"], lic.id.as_str(), "{v}");
    let v = line(&valid);
    assert_eq!(v["code"], "VALID", "{v}");
    assert_eq!(v["license_id"], lic.id.as_str(), "{v}");
    assert_eq!(v["session_id"], session.as_str(), "{v}");
    assert_eq!(line(&malformed)["code"], "MALFORMED");
    assert_eq!(line(&ended)["code"], "SESSION_ENDED");
    assert_eq!(line(&heartbeat)["session_id"], session.as_str());
    assert_eq!(line(&unknown)["code"], "unauthorized");
    assert!(line(&unknown).get("license_id").is_none());
    let v = line(&by_key);
    assert_eq!(v["key_id"], org_key_id.as_str(), "{v}");
    assert_eq!(v["organization_id"], lic.organization_id.as_str(), "{v}");
    assert_eq!(v["license_id"], lic.id.as_str(), "{v}");
    assert_eq!(line(&bad_admin)["code"], "unauthorized");
    assert_eq!(line(&nowhere)["code"], "not_found");

    // Not one secret of the fixtures, anywhere in what the components wrote.
    let text = log.text();
    let signature = token.rsplit('.').next().unwrap().to_owned();
    let signing_key = test_signing_key().to_secret_text();
    for (what, secret) in [
        ("the license key", lic.key.as_str()),
        ("the license token", token.as_str()),
        ("the token's signature", signature.as_str()),
        ("the operator token", TEST_ADMIN_TOKEN),
        ("a wrong admin token", wrong_admin),
        ("the organization API key", org_key.as_str()),
        ("an unknown license key", unknown_key),
        ("a machine id", machine),
        ("another machine id", other_machine),
        ("the verify-cache key", TEST_VERIFY_CACHE_KEY),
        ("the signing key", signing_key.as_str()),
    ] {
        assert!(!text.contains(secret), "{what} is in the log:\n{text}");
    }
}

#[tokio::test]
async fn request_ids_are_echoed_only_when_well_formed() {
    let db = migrated_database().await;
    let (host, log) = app_with_log(&db, redis_runtime_config(&redis_url()), &[]).await;
    let mut answered: BTreeMap<String, usize> = BTreeMap::new();
    let long_ok = "a".repeat(128);
    let too_long = "a".repeat(129);
    for (sent, echoed) in [
        (Some("abc-123_x.y:z"), true),
        (Some(long_ok.as_str()), true),
        (Some(too_long.as_str()), false),
        (Some("has space"), false),
        (Some("quote\"brace}"), false),
        (Some(""), false),
        (None, false),
    ] {
        for path in ["/api/v1/health", "/api/v1/licenses/validate"] {
            let headers: Vec<(&str, &str)> =
                sent.map(|s| ("x-request-id", s)).into_iter().collect();
            let r = host.request("GET", path, &headers, "").await.unwrap();
            let id = r
                .header("x-request-id")
                .expect("every answer has an id")
                .to_owned();
            if echoed {
                assert_eq!(Some(id.as_str()), sent, "{path}");
            } else {
                assert!(
                    id.starts_with("req_") && id.len() == 36,
                    "{path}: {sent:?} gave {id}"
                );
            }
            assert_eq!(r.json()["meta"]["request_id"], id.as_str(), "{path}");
            // One line per request: an id echoed twice has two.
            let times = answered.entry(id.clone()).or_default();
            *times += 1;
            let lines = request_lines(&log);
            assert_eq!(lines.get(&id).map(Vec::len), Some(*times), "{path}: {id}");
        }
    }
    // Two ids in one request: neither is taken.
    let r = host
        .request(
            "GET",
            "/api/v1/health",
            &[("x-request-id", "one"), ("x-request-id", "two")],
            "",
        )
        .await
        .unwrap();
    assert!(r.header("x-request-id").unwrap().starts_with("req_"));
}

#[tokio::test]
async fn concurrent_requests_write_whole_lines() {
    let db = migrated_database().await;
    let (host, log) = app_with_log(&db, redis_runtime_config(&redis_url()), &[]).await;
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let host = host.clone();
            tokio::spawn(async move {
                let id = format!("c-{i}");
                let path = if i % 2 == 0 {
                    "/api/v1/health/ready"
                } else {
                    "/api/v1/licenses/validate"
                };
                host.request("POST", path, &[("x-request-id", &id)], "{}")
                    .await
                    .unwrap();
                id
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    let lines = request_lines(&log);
    for id in ids {
        assert_eq!(lines.get(&id).map(Vec::len), Some(1), "{id}");
    }
    for line in log.lines().iter().filter(|l| l.starts_with('{')) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_shape(&v);
    }
}
