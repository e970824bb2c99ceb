//! Signed-in users on seats, through the real acquire and admin components in the test host,
//! against an OpenID Connect issuer of the tests' own on loopback (tests/oidc_issuer.rs): the
//! old clients' request shapes (ID token as the bearer, license key in the body), every way an
//! ID token is refused, the issuer's key set cached, rotated and unreachable, seats per user.

use integration_tests::oidc_issuer::{sign_rs256, Issuer, JwksMode};
use integration_tests::{
    admin_request, app, migrated_database, pg_client, redis_runtime_config, redis_url,
};
use serde_json::{json, Value};
use spin_test_host::{Host, TestResponse};
use std::time::{Duration, Instant};

struct World {
    host: Host,
    db: String,
    issuer: Issuer,
}

async fn world_with(issuer: Issuer, extra: &[(&str, &str)]) -> World {
    let db = migrated_database().await;
    let vars = issuer.variables();
    let mut all: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    let host = app(&db, redis_runtime_config(&redis_url()), &all).await;
    World { host, db, issuer }
}

async fn world() -> World {
    // Each world its own project, so that no two tests share a cached key set.
    let project = format!("proj-{}", integration_tests::now_ms() % 1_000_000_007);
    world_with(Issuer::start(&project).await, &[]).await
}

/// Org, product (`sign_in_required` as given) and license (extra fields merged); the key.
async fn license(host: &Host, sign_in: bool, extra: Value) -> (String, String) {
    let r = admin_request(
        host,
        "POST",
        "/api/v1/admin/organizations",
        json!({"name": "Acme"}),
    )
    .await;
    let org = r.json()["id"].as_str().unwrap().to_owned();
    let r = admin_request(
        host,
        "POST",
        "/api/v1/admin/products",
        json!({"organization_id": org, "code": "cad", "name": "CAD", "sign_in_required": sign_in}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["sign_in_required"], sign_in);
    let product = r.json()["id"].as_str().unwrap().to_owned();
    let mut body = json!({"product_id": product, "max_seats": 5});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = admin_request(host, "POST", "/api/v1/admin/licenses", body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    (
        v["id"].as_str().unwrap().to_owned(),
        v["license_key"].as_str().unwrap().to_owned(),
    )
}

/// The old clients' acquire: ID token as the bearer, the key and `hardware_id` in the body.
async fn old_acquire(host: &Host, id_token: &str, key: &str, hardware_id: &str) -> TestResponse {
    let auth = format!("Bearer {id_token}");
    host.request(
        "POST",
        "/api/v1/licenses/acquire",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        json!({"license_key": key, "hardware_id": hardware_id, "metadata": {"app": "1.0"}})
            .to_string(),
    )
    .await
    .unwrap()
}

async fn key_acquire(host: &Host, key: &str, machine: &str) -> TestResponse {
    let auth = format!("Bearer {key}");
    host.request(
        "POST",
        "/api/v1/licenses/acquire",
        &[("authorization", &auth)],
        json!({ "machine_id": machine }).to_string(),
    )
    .await
    .unwrap()
}

async fn session_call(host: &Host, method: &str, path: &str, credential: &str) -> TestResponse {
    let auth = format!("Bearer {credential}");
    host.request(method, path, &[("authorization", &auth)], "")
        .await
        .unwrap()
}

fn code(r: &TestResponse) -> String {
    r.json()["error"]["code"].as_str().unwrap_or("").to_owned()
}

async fn session_rows(db: &str, license_id: &str) -> i64 {
    pg_client(db)
        .await
        .query_one(
            "SELECT count(*) FROM sessions WHERE license_id = $1",
            &[&license_id],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn the_old_clients_sign_in_acquire_heartbeat_and_release_as_they_always_did() {
    let w = world().await;
    let (license_id, key) = license(&w.host, true, json!({})).await;
    let token = w.issuer.token("alice");

    let r = old_acquire(&w.host, &token, &key, "hw-1").await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    let session = v["session_id"].as_str().unwrap().to_owned();
    // Today's fields, and the old ones beside them.
    assert_eq!(v["id"], session.as_str());
    assert!(v["license_token"].as_str().unwrap().split('.').count() == 3);
    assert_eq!(v["machine_id"], "hw-1");
    assert_eq!(v["started_at"], v["last_heartbeat_at"]);
    assert!(v["started_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["user"]["sub"], "alice");
    assert_eq!(v["user"]["email"], "alice@example.com");

    // The same user and machine get their live session back.
    let again = old_acquire(&w.host, &token, &key, "hw-1").await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["session_id"], session.as_str());

    // The admin session list and the audit trail name the user.
    let r = admin_request(
        &w.host,
        "GET",
        &format!("/api/v1/admin/licenses/{license_id}/sessions"),
        Value::Null,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let listed = r.json()["data"][0].clone();
    assert_eq!(listed["user_sub"], "alice");
    assert_eq!(listed["user_email"], "alice@example.com");
    let r = admin_request(
        &w.host,
        "GET",
        &format!("/api/v1/admin/licenses/{license_id}/audit-events"),
        Value::Null,
    )
    .await;
    let events = r.json()["data"].as_array().unwrap().clone();
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "session.acquire" && e["actor"] == "user:alice"),
        "{events:?}"
    );

    // Heartbeat and release with nothing but the ID token, as the old clients send them.
    let hb = session_call(
        &w.host,
        "PATCH",
        &format!("/api/v1/licenses/sessions/{session}/heartbeat"),
        &token,
    )
    .await;
    assert_eq!(hb.status, 200, "{}", hb.text());
    assert_eq!(hb.json()["id"], session.as_str());
    assert_eq!(hb.json()["user"]["sub"], "alice");
    assert!(hb.json()["last_heartbeat_at"].is_string());
    let rel = session_call(
        &w.host,
        "DELETE",
        &format!("/api/v1/licenses/sessions/{session}"),
        &token,
    )
    .await;
    assert_eq!(rel.status, 200, "{}", rel.text());
    assert!(rel.json()["ended_at"].is_string());
}

#[tokio::test]
async fn a_product_that_requires_sign_in_refuses_the_key_alone_and_other_users() {
    let w = world().await;
    let (license_id, key) = license(&w.host, true, json!({})).await;

    let r = key_acquire(&w.host, &key, "m1").await;
    assert_eq!(
        (r.status, code(&r).as_str()),
        (401, "sign_in_required"),
        "{}",
        r.text()
    );
    assert_eq!(session_rows(&w.db, &license_id).await, 0);

    let r = old_acquire(&w.host, &w.issuer.token("alice"), &key, "m1").await;
    assert_eq!(r.status, 201, "{}", r.text());
    let session = r.json()["session_id"].as_str().unwrap().to_owned();
    let heartbeat = format!("/api/v1/licenses/sessions/{session}/heartbeat");

    // The license key alone may not keep a signed-in seat alive, nor end it.
    let r = session_call(&w.host, "PATCH", &heartbeat, &key).await;
    assert_eq!(
        (r.status, code(&r).as_str()),
        (401, "sign_in_required"),
        "{}",
        r.text()
    );
    let r = session_call(
        &w.host,
        "DELETE",
        &format!("/api/v1/licenses/sessions/{session}"),
        &key,
    )
    .await;
    assert_eq!(
        (r.status, code(&r).as_str()),
        (401, "sign_in_required"),
        "{}",
        r.text()
    );
    // Another user's ID token finds no such session (as for one that does not exist).
    let bob = w.issuer.token("bob");
    let r = session_call(&w.host, "PATCH", &heartbeat, &bob).await;
    assert_eq!(
        (r.status, code(&r).as_str()),
        (404, "session_not_found"),
        "{}",
        r.text()
    );
    let r = session_call(
        &w.host,
        "DELETE",
        &format!("/api/v1/licenses/sessions/{session}"),
        &bob,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
    let r = session_call(&w.host, "PATCH", &heartbeat, &w.issuer.token("alice")).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // A signed-in request that forgot the key is told so; a key in both places is refused.
    let auth = format!("Bearer {}", w.issuer.token("alice"));
    let r = w
        .host
        .request(
            "POST",
            "/api/v1/licenses/acquire",
            &[("authorization", &auth)],
            json!({"machine_id": "m1"}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status, code(&r).as_str()),
        (400, "missing_field"),
        "{}",
        r.text()
    );
    let keyed = format!("Bearer {key}");
    let r = w
        .host
        .request(
            "POST",
            "/api/v1/licenses/acquire",
            &[("authorization", &keyed)],
            json!({"machine_id": "m1", "license_key": key}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401, "{}", r.text());
}

#[tokio::test]
async fn refused_id_tokens_write_nothing() {
    let w = world().await;
    let (license_id, key) = license(&w.host, true, json!({})).await;
    let i = &w.issuer;
    let now = integration_tests::now_ms() / 1000;

    let mut expired = i.claims("u");
    expired["exp"] = json!(now - 31);
    expired["iat"] = json!(now - 3700);
    let mut wrong_aud = i.claims("u");
    wrong_aud["aud"] = json!("another-project");
    let mut wrong_iss = i.claims("u");
    wrong_iss["iss"] = json!("https://securetoken.google.com/another-project");
    let mut future = i.claims("u");
    future["iat"] = json!(now + 120);
    let mut no_sub = i.claims("u");
    no_sub["sub"] = json!("");

    // alg confusion: "none", and HS256 keyed with the issuer's public key bytes.
    let good = i.token("u");
    let payload = good.split('.').nth(1).unwrap();
    let none = format!(
        "{}.{payload}.",
        license_edge_token::encoding::base64url_encode(r#"{"alg":"none","kid":"kid-0"}"#)
    );
    let hs = format!(
        "{}.{payload}.c2ln",
        license_edge_token::encoding::base64url_encode(r#"{"alg":"HS256","kid":"kid-0"}"#)
    );
    // RS256 under kid-0, signed with another key.
    let forged = sign_rs256(
        &integration_tests::oidc_issuer::rsa_key(3),
        &json!({"alg": "RS256", "kid": "kid-0"}),
        &i.claims("u"),
    );
    let cases = [
        (i.token_with(0, "kid-0", &expired), "expired"),
        (i.token_with(0, "kid-0", &wrong_aud), "wrong_audience"),
        (i.token_with(0, "kid-0", &wrong_iss), "wrong_issuer"),
        (i.token_with(0, "kid-0", &future), "issued_in_future"),
        (i.token_with(0, "kid-0", &no_sub), "no_subject"),
        (none, "algorithm_not_allowed"),
        (hs, "algorithm_not_allowed"),
        (forged, "bad_signature"),
        (
            i.token_with(2, "kid-unknown", &i.claims("u")),
            "unknown_key",
        ),
    ];
    for (token, reason) in cases {
        let r = old_acquire(&w.host, &token, &key, "m").await;
        assert_eq!(r.status, 401, "{reason}: {}", r.text());
        assert_eq!(code(&r), "invalid_id_token", "{reason}");
        assert_eq!(
            r.json()["error"]["details"]["reason"],
            reason,
            "{}",
            r.text()
        );
    }
    assert_eq!(session_rows(&w.db, &license_id).await, 0);
    // Refused before the rate limit: no attempt was counted either.
    let attempts: i64 = pg_client(&w.db)
        .await
        .query_one(
            "SELECT coalesce(sum(attempts), 0)::bigint FROM rate_limits WHERE license_id = $1",
            &[&license_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempts, 0);
    // A token that expired 25 s ago is still inside the 30 s leeway (the exact second is the
    // oidc crate's unit test).
    let now = integration_tests::now_ms() / 1000;
    let mut edge = i.claims("u");
    edge["exp"] = json!(now - 25);
    let r = old_acquire(&w.host, &i.token_with(0, "kid-0", &edge), &key, "m").await;
    assert_eq!(r.status, 201, "{}", r.text());
}

#[tokio::test]
async fn the_key_set_is_cached_refetched_on_rotation_and_not_flooded() {
    let w = world().await;
    let (_, key) = license(&w.host, true, json!({})).await;
    let i = &w.issuer;
    for n in 0..3 {
        let r = old_acquire(&w.host, &i.token("u"), &key, &format!("m{n}")).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    assert_eq!(i.fetches(), 1, "Cache-Control: max-age=3600 keeps the set");

    // The issuer rotates: kid-1 appears, kid-0 goes. A token under kid-1 makes one refetch.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    i.publish(&[(1, "kid-1")]);
    let rotated = i.token_with(1, "kid-1", &i.claims("u"));
    let r = old_acquire(&w.host, &rotated, &key, "m9").await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(i.fetches(), 2);
    // The retired key is refused now.
    let r = old_acquire(&w.host, &i.token("u"), &key, "m8").await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(i.fetches(), 2, "a refetch at most once a second");
    // Made-up kids cannot make the server hammer the issuer.
    for n in 0..5 {
        let t = i.token_with(1, &format!("made-up-{n}"), &i.claims("u"));
        let r = old_acquire(&w.host, &t, &key, "m").await;
        assert_eq!(r.status, 401, "{}", r.text());
    }
    assert!(i.fetches() <= 3, "fetches: {}", i.fetches());

    // no-store: fetched for every request.
    i.set_cache_control(Some("no-store"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = i.fetches();
    let made_up = i.token_with(1, "kid-new", &i.claims("u"));
    let _ = old_acquire(&w.host, &made_up, &key, "m").await;
    let r = old_acquire(&w.host, &rotated, &key, "m9").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = old_acquire(&w.host, &rotated, &key, "m9").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(i.fetches() >= before + 2, "{} -> {}", before, i.fetches());
}

#[tokio::test]
async fn an_unreachable_issuer_is_a_prompt_503_and_a_recent_set_stands_in() {
    let w = world().await;
    let (license_id, key) = license(&w.host, true, json!({})).await;
    let i = &w.issuer;

    // Nothing cached and the issuer failing: 503, nothing written.
    i.set_mode(JwksMode::Fail);
    let r = old_acquire(&w.host, &i.token("u"), &key, "m").await;
    assert_eq!(
        (r.status, code(&r).as_str()),
        (503, "identity_unavailable"),
        "{}",
        r.text()
    );
    // An issuer that accepts and never answers: still a 503, within the fetch's deadline.
    i.set_mode(JwksMode::Hang);
    let started = Instant::now();
    let r = old_acquire(&w.host, &i.token("u"), &key, "m").await;
    assert_eq!(code(&r), "identity_unavailable", "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(session_rows(&w.db, &license_id).await, 0);

    // A set fetched a moment ago, now stale, stands in while the issuer is down.
    i.set_mode(JwksMode::Serve);
    i.set_cache_control(Some("max-age=1"));
    let r = old_acquire(&w.host, &i.token("u"), &key, "m").await;
    assert_eq!(r.status, 201, "{}", r.text());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    i.set_mode(JwksMode::Fail);
    let r = old_acquire(&w.host, &i.token("v"), &key, "m2").await;
    assert_eq!(r.status, 201, "{}", r.text());
}

#[tokio::test]
async fn seats_per_user_are_limited_under_the_license_lock() {
    let w = world().await;
    let (license_id, key) = license(&w.host, true, json!({"max_seats_per_user": 1})).await;
    let i = &w.issuer;
    let r = old_acquire(&w.host, &i.token("alice"), &key, "m1").await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = old_acquire(&w.host, &i.token("alice"), &key, "m2").await;
    assert_eq!(
        (r.status, code(&r).as_str()),
        (409, "user_seat_limit"),
        "{}",
        r.text()
    );
    assert_eq!(r.json()["error"]["details"]["max_seats_per_user"], 1);
    let r = old_acquire(&w.host, &i.token("bob"), &key, "m2").await;
    assert_eq!(r.status, 201, "{}", r.text());

    // Ten of one user's machines racing for the last of two per-user seats: exactly one wins.
    let r = admin_request(
        &w.host,
        "PATCH",
        &format!("/api/v1/admin/licenses/{license_id}"),
        json!({"max_seats_per_user": 2, "max_seats": 50}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["max_seats_per_user"], 2);
    let token = i.token("alice");
    let tasks: Vec<_> = (0..10)
        .map(|n| {
            let (host, token, key) = (w.host.clone(), token.clone(), key.clone());
            tokio::spawn(async move {
                old_acquire(&host, &token, &key, &format!("race-{n}"))
                    .await
                    .status
            })
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        if t.await.unwrap() == 201 {
            granted += 1;
        }
    }
    assert_eq!(granted, 1);
    let live: i64 = pg_client(&w.db)
        .await
        .query_one(
            "SELECT count(*) FROM sessions WHERE license_id = $1 AND user_sub = 'alice' AND ended_at IS NULL",
            &[&license_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 2);
    // null removes the limit.
    let r = admin_request(
        &w.host,
        "PATCH",
        &format!("/api/v1/admin/licenses/{license_id}"),
        json!({"max_seats_per_user": null}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["max_seats_per_user"], Value::Null);
}

#[tokio::test]
async fn without_sign_in_required_keys_work_as_before_and_a_user_is_recorded_when_given() {
    let w = world().await;
    let (license_id, key) = license(&w.host, false, json!({})).await;
    let r = key_acquire(&w.host, &key, "m1").await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(r.json().get("user").is_none());
    let r = old_acquire(&w.host, &w.issuer.token("carol"), &key, "m1").await;
    // Same machine, a user this time: its own session.
    assert_eq!(r.status, 201, "{}", r.text());
    let users: Vec<Option<String>> = pg_client(&w.db)
        .await
        .query(
            "SELECT user_sub FROM sessions WHERE license_id = $1 ORDER BY started_at, user_sub NULLS FIRST",
            &[&license_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(users, [None, Some("carol".to_owned())]);
}

#[tokio::test]
async fn sign_in_not_configured_is_a_503_not_a_guess() {
    let db = migrated_database().await;
    let host = app(&db, redis_runtime_config(&redis_url()), &[]).await;
    let (_, key) = license(&host, false, json!({})).await;
    let issuer = Issuer::start("unconfigured").await;
    let r = old_acquire(&host, &issuer.token("u"), &key, "m").await;
    assert_eq!(
        (r.status, code(&r).as_str()),
        (503, "identity_unavailable"),
        "{}",
        r.text()
    );
    assert_eq!(issuer.fetches(), 0);
}
