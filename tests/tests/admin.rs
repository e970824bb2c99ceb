//! The admin API through the real admin, acquire and validate components, with real
//! PostgreSQL and Redis: the whole life of a license driven only through the admin and public
//! APIs, suspension seen by validate on the very next call, the key-value rebuild after a
//! flush, the admin token on every route, refusals that write nothing, lists and pages, and a
//! key-value outage during a change.

use integration_tests::servers::RedisServer;
use integration_tests::{
    admin_license, admin_operations, admin_request, app, fill_template, migrated_database,
    pg_client, redis_runtime_config, redis_url, AdminLicense, TEST_ADMIN_TOKEN,
};
use license_edge::read_model::{decode, license_key, LicenseState, LicenseStatus};
use serde_json::{json, Value};
use spin_test_host::kv::Backend;
use spin_test_host::{Host, TestResponse};

struct World {
    host: Host,
    db: String,
}

async fn world() -> World {
    world_with_redis(&redis_url()).await
}

async fn world_with_redis(url: &str) -> World {
    let db = migrated_database().await;
    let host = app(&db, redis_runtime_config(url), &[]).await;
    World { host, db }
}

impl World {
    async fn admin(&self, method: &str, path: &str, body: Value) -> TestResponse {
        admin_request(&self.host, method, path, body).await
    }

    /// An admin call that must answer `status`; its JSON body.
    #[track_caller]
    fn expect(r: TestResponse, status: u16) -> Value {
        assert_eq!(r.status, status, "{}", r.text());
        r.json()
    }

    async fn acquire(&self, key: &str, machine: &str) -> TestResponse {
        let auth = format!("Bearer {key}");
        self.host
            .request(
                "POST",
                "/api/v1/licenses/acquire/",
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                json!({"machine_id": machine}).to_string(),
            )
            .await
            .unwrap()
    }

    /// Acquires a seat; answers (session id, token).
    async fn seat(&self, key: &str, machine: &str) -> (String, String) {
        let r = self.acquire(key, machine).await;
        let v = Self::expect(r, 201);
        (
            v["session_id"].as_str().unwrap().to_owned(),
            v["license_token"].as_str().unwrap().to_owned(),
        )
    }

    async fn validate(&self, token: &str) -> (u16, Value) {
        let r = self
            .host
            .request(
                "POST",
                "/api/v1/licenses/validate/",
                &[],
                json!({"token": token}).to_string(),
            )
            .await
            .unwrap();
        (r.status, r.json())
    }

    async fn code(&self, token: &str) -> String {
        let (status, v) = self.validate(token).await;
        assert_eq!(status, 200, "{v}");
        v["code"].as_str().unwrap().to_owned()
    }

    /// Every row of every table the admin API writes, to prove a refusal changed nothing.
    async fn state(&self) -> String {
        let c = pg_client(&self.db).await;
        let mut out = String::new();
        for table in [
            "organizations",
            "products",
            "licenses",
            "sessions",
            "audit_events",
        ] {
            let rows = c
                .query(
                    &format!("SELECT to_jsonb(t)::text FROM {table} t ORDER BY 1"),
                    &[],
                )
                .await
                .unwrap();
            for row in rows {
                out.push_str(&row.get::<_, String>(0));
                out.push('\n');
            }
        }
        out
    }

    async fn audit_actions(&self, path: &str) -> Vec<String> {
        let v = Self::expect(self.admin("GET", path, Value::Null).await, 200);
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_life_of_a_license() {
    let w = world().await;
    // Organization, product, license: only through the admin API.
    let org = World::expect(
        w.admin(
            "POST",
            "/api/v1/admin/organizations",
            json!({"name": "Acme Corp"}),
        )
        .await,
        201,
    );
    let org_id = org["id"].as_str().unwrap();
    assert!(org_id.starts_with("org_"));
    assert!(org["created_at"].as_str().unwrap().ends_with('Z'));
    let r = w
        .admin(
            "POST",
            "/api/v1/admin/products",
            json!({"organization_id": org_id, "code": "cad-pro", "name": "CAD Pro"}),
        )
        .await;
    assert_eq!(
        r.header("location").map(str::to_owned),
        Some(format!(
            "/api/v1/admin/products/{}",
            r.json()["id"].as_str().unwrap()
        ))
    );
    let product = World::expect(r, 201);
    let r = w
        .admin(
            "POST",
            "/api/v1/admin/licenses",
            json!({"product_id": product["id"], "max_seats": 2, "plan": "pro",
                   "features": ["export", "cloud"], "expires_at": "2099-01-01T00:00:00Z"}),
        )
        .await;
    let created = World::expect(r, 201);
    let lic = created["id"].as_str().unwrap().to_owned();
    let key = created["license_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("LE-") && key.len() == 55, "{key}");
    assert_eq!(created["status"], "active");
    assert_eq!(created["organization_id"], org_id);
    assert_eq!(created["product_code"], "cad-pro");
    assert_eq!(created["expires_at"], "2099-01-01T00:00:00.000Z");
    // Only the hash is stored, and the key is never shown again.
    let stored: String = pg_client(&w.db)
        .await
        .query_one("SELECT key_hash FROM licenses WHERE id = $1", &[&lic])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, license_edge::seats::license_key_hash(&key));
    let detail = World::expect(
        w.admin("GET", &format!("/api/v1/admin/licenses/{lic}"), Value::Null)
            .await,
        200,
    );
    assert!(!detail.to_string().contains(&key));
    assert!(detail.get("license_key").is_none());

    // A client acquires a seat; its token validates.
    let (session, token) = w.seat(&key, "machine-1").await;
    assert_eq!(w.code(&token).await, "VALID");
    let detail = World::expect(
        w.admin("GET", &format!("/api/v1/admin/licenses/{lic}"), Value::Null)
            .await,
        200,
    );
    assert_eq!(
        (
            detail["active_seats"].as_u64(),
            detail["free_seats"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(detail["sessions"][0]["id"], session.as_str());
    assert_eq!(detail["sessions"][0]["live"], true);

    // Suspension: validate sees it on the very next call; acquire is refused.
    let v = World::expect(
        w.admin(
            "POST",
            &format!("/api/v1/admin/licenses/{lic}/suspend"),
            json!({"reason": "unpaid invoice"}),
        )
        .await,
        200,
    );
    assert_eq!(
        (v["status"].as_str(), v["changed"].as_bool()),
        (Some("suspended"), Some(true))
    );
    assert_eq!(w.code(&token).await, "LICENSE_SUSPENDED");
    assert_eq!(w.acquire(&key, "machine-2").await.status, 403);
    // Suspending again changes nothing and is not an error.
    let v = World::expect(
        w.admin(
            "POST",
            &format!("/api/v1/admin/licenses/{lic}/suspend"),
            Value::Null,
        )
        .await,
        200,
    );
    assert_eq!(v["changed"], false);

    // Reinstatement.
    let v = World::expect(
        w.admin(
            "POST",
            &format!("/api/v1/admin/licenses/{lic}/reinstate"),
            Value::Null,
        )
        .await,
        200,
    );
    assert_eq!(v["status"], "active");
    assert_eq!(w.code(&token).await, "VALID");

    // Force release of another machine's session: its token is refused at once.
    let (session2, token2) = w.seat(&key, "machine-2").await;
    assert_eq!(w.code(&token2).await, "VALID");
    let v = World::expect(
        w.admin(
            "DELETE",
            &format!("/api/v1/admin/sessions/{session2}"),
            Value::Null,
        )
        .await,
        200,
    );
    assert_eq!(
        (v["outcome"].as_str(), v["license_id"].as_str()),
        (Some("released"), Some(lic.as_str()))
    );
    assert_eq!(w.code(&token2).await, "SESSION_ENDED");
    assert_eq!(w.code(&token).await, "VALID");
    let v = World::expect(
        w.admin(
            "DELETE",
            &format!("/api/v1/admin/sessions/{session2}"),
            Value::Null,
        )
        .await,
        200,
    );
    assert_eq!(v["outcome"], "already_ended");
    let ended = World::expect(
        w.admin(
            "GET",
            &format!("/api/v1/admin/licenses/{lic}/sessions?status=ended"),
            Value::Null,
        )
        .await,
        200,
    );
    assert_eq!(ended["data"][0]["id"], session2.as_str());
    assert_eq!(ended["data"][0]["end_reason"], "force_released");
    let live = World::expect(
        w.admin(
            "GET",
            &format!("/api/v1/admin/licenses/{lic}/sessions"),
            Value::Null,
        )
        .await,
        200,
    );
    assert_eq!(live["data"].as_array().unwrap().len(), 1);
    assert_eq!(live["data"][0]["id"], session.as_str());

    // Revocation is final.
    let v = World::expect(
        w.admin(
            "POST",
            &format!("/api/v1/admin/licenses/{lic}/revoke"),
            json!({"reason": "chargeback"}),
        )
        .await,
        200,
    );
    assert_eq!(v["status"], "revoked");
    assert_eq!(w.code(&token).await, "LICENSE_REVOKED");
    assert_eq!(w.acquire(&key, "machine-3").await.status, 403);
    let before = w.state().await;
    for (method, action, body) in [
        ("POST", "reinstate", Value::Null),
        ("POST", "suspend", Value::Null),
        ("PATCH", "", json!({"max_seats": 9})),
    ] {
        let path = format!(
            "/api/v1/admin/licenses/{lic}{}{action}",
            if action.is_empty() { "" } else { "/" }
        );
        let v = World::expect(w.admin(method, &path, body).await, 409);
        assert_eq!(v["error"]["code"], "revocation_is_final", "{v}");
    }
    assert_eq!(w.state().await, before, "a refused change wrote something");
    let v = World::expect(
        w.admin(
            "POST",
            &format!("/api/v1/admin/licenses/{lic}/revoke"),
            Value::Null,
        )
        .await,
        200,
    );
    assert_eq!(v["changed"], false);

    // The audit trail, newest first, by license and by organization.
    let actions = w
        .audit_actions(&format!("/api/v1/admin/licenses/{lic}/audit-events"))
        .await;
    let admin_actions: Vec<&str> = actions
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("license."))
        .collect();
    assert_eq!(
        admin_actions,
        [
            "license.revoke",
            "license.reinstate",
            "license.suspend",
            "license.create"
        ]
    );
    assert!(actions.contains(&"session.release".to_owned()));
    assert!(actions.contains(&"session.acquire".to_owned()));
    let events = World::expect(
        w.admin(
            "GET",
            &format!("/api/v1/admin/licenses/{lic}/audit-events"),
            Value::Null,
        )
        .await,
        200,
    );
    let find = |action: &str| {
        events["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == action)
            .unwrap()
            .clone()
    };
    let revoke = find("license.revoke");
    assert_eq!(
        (
            revoke["actor"].as_str(),
            revoke["details"]["reason"].as_str(),
            revoke["details"]["from"].as_str()
        ),
        (Some("admin"), Some("chargeback"), Some("active"))
    );
    let release = find("session.release");
    assert_eq!(release["actor"], "admin");
    let org_actions = w
        .audit_actions(&format!(
            "/api/v1/admin/organizations/{org_id}/audit-events"
        ))
        .await;
    assert_eq!(
        org_actions.last().map(String::as_str),
        Some("organization.create")
    );
    assert!(org_actions.contains(&"product.create".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_are_seen_by_validate_and_lowering_seats_ends_nothing() {
    let w = world().await;
    let lic = admin_license(&w.host, json!({"max_seats": 3})).await;
    let path = format!("/api/v1/admin/licenses/{}", lic.id);
    let mut tokens = Vec::new();
    for m in ["a", "b", "c"] {
        tokens.push(w.seat(&lic.key, m).await.1);
    }
    let v = World::expect(
        w.admin("PATCH", &path, json!({"max_seats": 1, "plan": "team"}))
            .await,
        200,
    );
    assert_eq!(
        (v["max_seats"].as_u64(), v["active_seats"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(v["plan"], "team");
    let warning = v["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("3 live sessions exceed max_seats 1"),
        "{warning}"
    );
    // Nothing was ended: every token still validates, and the seats stay held.
    for t in &tokens {
        assert_eq!(w.code(t).await, "VALID");
    }
    // The change is in the audit trail with what it was before.
    let events = World::expect(
        w.admin("GET", &format!("{path}/audit-events?limit=1"), Value::Null)
            .await,
        200,
    );
    assert_eq!(events["data"][0]["action"], "license.update");
    assert_eq!(
        events["data"][0]["details"]["changes"]["max_seats"],
        json!({"from": 3, "to": 1})
    );
    assert_eq!(events["data"][0]["details"]["active_seats"], 3);
    assert!(events["next_cursor"].is_string());

    let r = w.acquire(&lic.key, "d").await;
    assert_eq!(World::expect(r, 409)["error"]["code"], "no_seats_available");
    // An end date in the past is seen by validate at once; removing it restores validity.
    let v = World::expect(
        w.admin(
            "PATCH",
            &path,
            json!({"expires_at": "2020-01-01T00:00:00Z"}),
        )
        .await,
        200,
    );
    assert_eq!(v["expires_at"], "2020-01-01T00:00:00.000Z");
    assert_eq!(w.code(&tokens[0]).await, "LICENSE_EXPIRED");
    let v = World::expect(
        w.admin("PATCH", &path, json!({"expires_at": null, "max_seats": 5}))
            .await,
        200,
    );
    assert_eq!(v["expires_at"], Value::Null);
    assert_eq!(v["warnings"], json!([]));
    assert_eq!(w.code(&tokens[0]).await, "VALID");
    // A patch that changes nothing records nothing.
    let before = w.state().await;
    World::expect(w.admin("PATCH", &path, json!({"max_seats": 5})).await, 200);
    assert_eq!(w.state().await, before);
    // A past end date is taken at creation as well (issue #13): the license starts expired.
    let old = admin_license(&w.host, json!({"expires_at": "2001-01-01T00:00:00Z"})).await;
    let r = w.acquire(&old.key, "e").await;
    assert_eq!(World::expect(r, 403)["error"]["code"], "license_expired");
}

/// The same 401 on every admin route for every way of not being the admin, before routing:
/// unknown paths and wrong methods are not revealed either. Nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_needs_the_admin_token() {
    let w = world().await;
    let before = w.state().await;
    let mut requests: Vec<(String, String)> = admin_operations()
        .into_iter()
        .map(|(m, t)| (m.to_owned(), fill_template(t)))
        .collect();
    assert_eq!(requests.len(), 25);
    for (m, p) in [
        ("GET", "/api/v1/admin"),
        ("GET", "/api/v1/admin/"),
        ("GET", "/api/v1/admin/no-such-route"),
        ("DELETE", "/api/v1/admin/organizations"),
        ("PUT", "/api/v1/admin/licenses/lic_1"),
        ("GET", "/api/v1/admin/kv/rebuild"),
        ("GET", "/api/v1/admin/licenses/?limit=1"),
    ] {
        requests.push((m.to_owned(), p.to_owned()));
    }
    let near_misses = [
        None,
        Some("Bearer".to_owned()),
        Some("Bearer wrong-token".to_owned()),
        Some(format!("Bearer {TEST_ADMIN_TOKEN}x")),
        Some(format!(
            "Bearer {}",
            &TEST_ADMIN_TOKEN[..TEST_ADMIN_TOKEN.len() - 1]
        )),
        Some(format!("Basic {TEST_ADMIN_TOKEN}")),
        Some(TEST_ADMIN_TOKEN.to_owned()),
        Some(format!("Bearer {}", TEST_ADMIN_TOKEN.to_uppercase())),
    ];
    let mut bodies = std::collections::HashSet::new();
    for (method, path) in &requests {
        for auth in &near_misses {
            let mut headers = vec![("content-type", "application/json")];
            if let Some(a) = auth {
                headers.push(("authorization", a.as_str()));
            }
            let r = w
                .host
                .request(
                    method,
                    path,
                    &headers,
                    json!({"name": "x", "max_seats": 1}).to_string(),
                )
                .await
                .unwrap();
            assert_eq!(r.status, 401, "{method} {path} with {auth:?}: {}", r.text());
            assert!(r.header("allow").is_none(), "{method} {path}");
            let mut v = r.json();
            assert_eq!(v["error"]["code"], "unauthorized");
            v["meta"] = Value::Null;
            bodies.insert(v.to_string());
        }
    }
    assert_eq!(bodies.len(), 1, "401 answers differ: {bodies:?}");
    assert_eq!(
        w.state().await,
        before,
        "an unauthorized request wrote something"
    );

    // With the token, the same paths route: 404 and 405 appear only now.
    assert_eq!(
        w.admin("GET", "/api/v1/admin/no-such-route", Value::Null)
            .await
            .status,
        404
    );
    let r = w
        .admin("DELETE", "/api/v1/admin/organizations", Value::Null)
        .await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, POST")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rebuild_restores_validation_after_the_key_value_store_is_flushed() {
    // A private Redis: flushing the shared one would disturb other tests.
    let redis = RedisServer::start();
    let w = world_with_redis(&redis.url()).await;
    let kv = Backend::redis(&redis.url()).unwrap();
    let a = admin_license(&w.host, json!({})).await;
    let b = admin_license(&w.host, json!({})).await;
    let (_, token_a) = w.seat(&a.key, "m1").await;
    let (session_a2, token_a2) = w.seat(&a.key, "m2").await;
    let (_, token_b) = w.seat(&b.key, "m1").await;
    World::expect(
        w.admin(
            "DELETE",
            &format!("/api/v1/admin/sessions/{session_a2}"),
            Value::Null,
        )
        .await,
        200,
    );
    World::expect(
        w.admin(
            "POST",
            &format!("/api/v1/admin/licenses/{}/suspend", b.id),
            Value::Null,
        )
        .await,
        200,
    );
    assert_eq!(w.code(&token_a).await, "VALID");
    assert_eq!(w.code(&token_a2).await, "SESSION_ENDED");
    assert_eq!(w.code(&token_b).await, "LICENSE_SUSPENDED");

    // Redis loses everything.
    for key in kv.keys().await.unwrap() {
        kv.delete(&key).await.unwrap();
    }
    let (status, v) = w.validate(&token_a).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (503, Some("revocation_unavailable"))
    );

    let v = World::expect(
        w.admin("POST", "/api/v1/admin/kv/rebuild", Value::Null)
            .await,
        200,
    );
    assert_eq!(v["licenses_written"], 2, "{v}");
    assert_eq!(v["sessions_written"], 1, "{v}");
    // Beside them, license-key validation's entries: a key per license, a seat per live
    // session (tests/tests/key_validation.rs).
    assert_eq!(v["keys_written"], 2, "{v}");
    let seats = v["seats_written"].as_u64().unwrap();
    assert_eq!(v["entries_written"], 3 + 2 + seats, "{v}");
    assert_eq!(w.code(&token_a).await, "VALID");
    assert_eq!(w.code(&token_a2).await, "SESSION_ENDED");
    assert_eq!(w.code(&token_b).await, "LICENSE_SUSPENDED");
    // A lost end marker lets a validation cache the ended session's token again; the rebuild
    // writes the marker back and takes that entry away, as every session end does.
    kv.delete(&license_edge::read_model::session_key(&session_a2))
        .await
        .unwrap();
    assert_eq!(w.code(&token_a2).await, "VALID");
    assert!(kv
        .exists(&license_edge::read_model::verify_cache_key(&session_a2))
        .await
        .unwrap());
    World::expect(
        w.admin("POST", "/api/v1/admin/kv/rebuild", Value::Null)
            .await,
        200,
    );
    assert_eq!(w.code(&token_a2).await, "SESSION_ENDED");
    // Idempotent: the same entries again.
    let again = World::expect(
        w.admin("POST", "/api/v1/admin/kv/rebuild", Value::Null)
            .await,
        200,
    );
    assert_eq!(again["entries_written"], 3 + 2 + seats);
    let state: LicenseState = decode(&kv.get(&license_key(&b.id)).await.unwrap().unwrap()).unwrap();
    assert_eq!(state.status, LicenseStatus::Suspended);
    let mut keys: Vec<String> = kv
        .keys()
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.starts_with("lic:") || k.starts_with("sess:"))
        .collect();
    keys.sort();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert_eq!(w.code(&token_a).await, "VALID");
    // It is audited.
    let c = pg_client(&w.db).await;
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM audit_events WHERE action = 'kv.rebuild' AND actor = 'admin'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3);
}

/// Every kind of bad input gets its 4xx, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_answer_4xx_and_write_nothing() {
    let w = world().await;
    let lic = admin_license(&w.host, json!({})).await;
    let AdminLicense {
        organization_id: org,
        product_id: prod,
        id,
        ..
    } = lic.clone();
    let before = w.state().await;
    let unknown_lic = "lic_ffffffffffffffffffffffffffffffff";
    let cases: Vec<(&str, String, Value, u16, &str)> = vec![
        (
            "POST",
            "/api/v1/admin/organizations".into(),
            json!({}),
            400,
            "missing_field",
        ),
        (
            "POST",
            "/api/v1/admin/organizations".into(),
            json!({"name": ""}),
            400,
            "invalid_field",
        ),
        (
            "POST",
            "/api/v1/admin/organizations".into(),
            json!({"name": 5}),
            400,
            "invalid_field",
        ),
        (
            "POST",
            "/api/v1/admin/organizations".into(),
            serde_json::from_str(&format!(
                r#"{{"name":{}{}}}"#,
                "[".repeat(126),
                "]".repeat(126)
            ))
            .unwrap(),
            400,
            "invalid_field",
        ),
        (
            "POST",
            "/api/v1/admin/organizations".into(),
            json!({"name": "a", "extra": 1}),
            400,
            "invalid_field",
        ),
        (
            "POST",
            "/api/v1/admin/organizations?x=1".into(),
            json!({"name": "a"}),
            400,
            "invalid_field",
        ),
        (
            "POST",
            "/api/v1/admin/products".into(),
            json!({"organization_id": org, "code": "cad-pro", "name": "Dup"}),
            409,
            "duplicate_product_code",
        ),
        (
            "POST",
            "/api/v1/admin/products".into(),
            json!({"organization_id": "org_ffff", "code": "x", "name": "X"}),
            404,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/admin/products".into(),
            json!({"organization_id": org, "code": "Bad Code", "name": "X"}),
            400,
            "invalid_field",
        ),
        (
            "POST",
            "/api/v1/admin/products".into(),
            json!({"organization_id": "'; DROP TABLE products; --", "code": "x", "name": "X"}),
            400,
            "invalid_field",
        ),
        (
            "POST",
            "/api/v1/admin/licenses".into(),
            json!({"product_id": "prod_ffff", "max_seats": 1}),
            404,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/admin/licenses".into(),
            json!({"product_id": prod}),
            400,
            "missing_field",
        ),
        (
            "POST",
            "/api/v1/admin/licenses".into(),
            json!({"product_id": prod, "max_seats": -1}),
            400,
            "invalid_field",
        ),
        (
            "POST",
            "/api/v1/admin/licenses".into(),
            json!({"product_id": prod, "max_seats": 1, "expires_at": "1970-06-01T00:00:00Z"}),
            400,
            "invalid_field",
        ),
        (
            "POST",
            "/api/v1/admin/licenses".into(),
            json!({"product_id": prod, "max_seats": 1, "lease_seconds": 5}),
            400,
            "invalid_field",
        ),
        (
            "POST",
            "/api/v1/admin/licenses".into(),
            json!({"product_id": prod, "max_seats": 1, "features": [1]}),
            400,
            "invalid_field",
        ),
        (
            "POST",
            "/api/v1/admin/licenses".into(),
            json!({"product_id": prod, "max_seats": 1, "status": "revoked"}),
            400,
            "invalid_field",
        ),
        (
            "PATCH",
            format!("/api/v1/admin/licenses/{id}"),
            json!({}),
            400,
            "bad_request",
        ),
        (
            "PATCH",
            format!("/api/v1/admin/licenses/{id}"),
            json!({"max_seats": "many"}),
            400,
            "invalid_field",
        ),
        (
            "PATCH",
            format!("/api/v1/admin/licenses/{id}"),
            json!({"rate_limit_per_minute": 0}),
            400,
            "invalid_field",
        ),
        (
            "PATCH",
            format!("/api/v1/admin/licenses/{id}"),
            json!({"plan": null}),
            400,
            "invalid_field",
        ),
        (
            "PATCH",
            format!("/api/v1/admin/licenses/{unknown_lic}"),
            json!({"max_seats": 1}),
            404,
            "not_found",
        ),
        (
            "POST",
            format!("/api/v1/admin/licenses/{unknown_lic}/suspend"),
            Value::Null,
            404,
            "not_found",
        ),
        (
            "POST",
            format!("/api/v1/admin/licenses/{id}/suspend"),
            json!({"reason": 1}),
            400,
            "invalid_field",
        ),
        (
            "GET",
            format!("/api/v1/admin/licenses/{unknown_lic}"),
            Value::Null,
            404,
            "not_found",
        ),
        (
            "GET",
            "/api/v1/admin/licenses/not-an-id".into(),
            Value::Null,
            404,
            "not_found",
        ),
        (
            "GET",
            "/api/v1/admin/organizations/org_ffff".into(),
            Value::Null,
            404,
            "not_found",
        ),
        (
            "GET",
            "/api/v1/admin/products/prod_ffff".into(),
            Value::Null,
            404,
            "not_found",
        ),
        (
            "GET",
            format!("/api/v1/admin/licenses/{unknown_lic}/sessions"),
            Value::Null,
            404,
            "not_found",
        ),
        (
            "GET",
            format!("/api/v1/admin/licenses/{unknown_lic}/audit-events"),
            Value::Null,
            404,
            "not_found",
        ),
        (
            "GET",
            "/api/v1/admin/organizations/org_ffff/audit-events".into(),
            Value::Null,
            404,
            "not_found",
        ),
        (
            "DELETE",
            "/api/v1/admin/sessions/ses_ffffffffffffffffffffffffffffffff".into(),
            Value::Null,
            404,
            "not_found",
        ),
        (
            "DELETE",
            "/api/v1/admin/sessions/garbage".into(),
            Value::Null,
            404,
            "not_found",
        ),
        (
            "GET",
            "/api/v1/admin/licenses?status=gone".into(),
            Value::Null,
            400,
            "invalid_field",
        ),
        (
            "GET",
            "/api/v1/admin/licenses?limit=0".into(),
            Value::Null,
            400,
            "invalid_field",
        ),
        (
            "GET",
            "/api/v1/admin/licenses?limit=1000".into(),
            Value::Null,
            400,
            "invalid_field",
        ),
        (
            "GET",
            "/api/v1/admin/licenses?cursor=zzz".into(),
            Value::Null,
            400,
            "invalid_field",
        ),
        (
            "GET",
            "/api/v1/admin/licenses?organization_id=x".into(),
            Value::Null,
            400,
            "invalid_field",
        ),
        (
            "GET",
            "/api/v1/admin/licenses?limit=1&limit=2".into(),
            Value::Null,
            400,
            "invalid_field",
        ),
        (
            "GET",
            format!("/api/v1/admin/licenses/{id}/sessions?status=dead"),
            Value::Null,
            400,
            "invalid_field",
        ),
        (
            "GET",
            format!("/api/v1/admin/licenses/{id}/audit-events?cursor=-1"),
            Value::Null,
            400,
            "invalid_field",
        ),
        (
            "POST",
            "/api/v1/admin/kv/rebuild?force=1".into(),
            Value::Null,
            400,
            "invalid_field",
        ),
        (
            "PUT",
            format!("/api/v1/admin/licenses/{id}"),
            Value::Null,
            405,
            "method_not_allowed",
        ),
        (
            "GET",
            format!("/api/v1/admin/licenses/{id}/revoke"),
            Value::Null,
            405,
            "method_not_allowed",
        ),
        (
            "GET",
            "/api/v1/admin/nothing-here".into(),
            Value::Null,
            404,
            "not_found",
        ),
    ];
    for (method, path, body, status, code) in &cases {
        let r = w.admin(method, path, body.clone()).await;
        assert_eq!(r.status, *status, "{method} {path} {body}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], *code, "{method} {path} {body}");
    }
    // Bodies that are not JSON objects, too large, or of another type.
    let auth = integration_tests::admin_auth();
    for (body, ct, status) in [
        ("[1]", "application/json", 400),
        ("{\"name\":\"a\",\"name\":\"b\"}", "application/json", 400),
        ("name=a", "application/x-www-form-urlencoded", 415),
    ] {
        let r = w
            .host
            .request(
                "POST",
                "/api/v1/admin/organizations",
                &[("authorization", &auth), ("content-type", ct)],
                body,
            )
            .await
            .unwrap();
        assert_eq!(r.status, status, "{body}: {}", r.text());
    }
    let huge = json!({"name": "x".repeat(20_000)}).to_string();
    let r = w
        .host
        .request(
            "POST",
            "/api/v1/admin/organizations",
            &[("authorization", &auth)],
            huge,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(w.state().await, before, "a refused request wrote something");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_filter_and_page_with_cursors() {
    let w = world().await;
    let first = admin_license(&w.host, json!({})).await;
    let mut ids = vec![first.id.clone()];
    for _ in 0..4 {
        let r = w
            .admin(
                "POST",
                "/api/v1/admin/licenses",
                json!({"product_id": first.product_id, "max_seats": 1}),
            )
            .await;
        ids.push(World::expect(r, 201)["id"].as_str().unwrap().to_owned());
    }
    World::expect(
        w.admin(
            "POST",
            &format!("/api/v1/admin/licenses/{}/suspend", ids[1]),
            Value::Null,
        )
        .await,
        200,
    );
    let other = admin_license(&w.host, json!({})).await;

    // Pages of two, newest first, until the cursor runs out.
    let mut seen = Vec::new();
    let mut path = format!(
        "/api/v1/admin/licenses?product_id={}&limit=2",
        first.product_id
    );
    loop {
        let v = World::expect(w.admin("GET", &path, Value::Null).await, 200);
        let page = v["data"].as_array().unwrap();
        assert!(page.len() <= 2);
        seen.extend(page.iter().map(|l| l["id"].as_str().unwrap().to_owned()));
        match v["next_cursor"].as_str() {
            Some(c) => {
                path = format!(
                    "/api/v1/admin/licenses?product_id={}&limit=2&cursor={c}",
                    first.product_id
                )
            }
            None => break,
        }
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected);

    let v = World::expect(
        w.admin(
            "GET",
            "/api/v1/admin/licenses?status=suspended",
            Value::Null,
        )
        .await,
        200,
    );
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"][0]["id"], ids[1].as_str());
    let v = World::expect(
        w.admin(
            "GET",
            &format!(
                "/api/v1/admin/licenses?organization_id={}",
                other.organization_id
            ),
            Value::Null,
        )
        .await,
        200,
    );
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert!(v["data"][0].get("key_hash").is_none());
    let v = World::expect(
        w.admin("GET", "/api/v1/admin/licenses", Value::Null).await,
        200,
    );
    assert_eq!(v["data"].as_array().unwrap().len(), 6);
    assert_eq!(v["next_cursor"], Value::Null);

    let v = World::expect(
        w.admin("GET", "/api/v1/admin/organizations?limit=1", Value::Null)
            .await,
        200,
    );
    assert_eq!(v["data"][0]["id"], other.organization_id.as_str());
    let next = v["next_cursor"].as_str().unwrap().to_owned();
    let v = World::expect(
        w.admin(
            "GET",
            &format!("/api/v1/admin/organizations?limit=1&cursor={next}"),
            Value::Null,
        )
        .await,
        200,
    );
    assert_eq!(v["data"][0]["id"], first.organization_id.as_str());
    let v = World::expect(
        w.admin(
            "GET",
            &format!(
                "/api/v1/admin/products?organization_id={}",
                first.organization_id
            ),
            Value::Null,
        )
        .await,
        200,
    );
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"][0]["code"], "cad-pro");
    let v = World::expect(
        w.admin(
            "GET",
            &format!("/api/v1/admin/products/{}", first.product_id),
            Value::Null,
        )
        .await,
        200,
    );
    assert_eq!(v["organization_id"], first.organization_id.as_str());
    let v = World::expect(
        w.admin(
            "GET",
            &format!("/api/v1/admin/organizations/{}", other.organization_id),
            Value::Null,
        )
        .await,
        200,
    );
    assert_eq!(v["name"], "Acme");
    // An empty list is an empty page, not an error.
    let v = World::expect(
        w.admin(
            "GET",
            &format!("/api/v1/admin/licenses/{}/sessions?status=all", first.id),
            Value::Null,
        )
        .await,
        200,
    );
    assert_eq!(v["data"], json!([]));
    assert_eq!(v["next_cursor"], Value::Null);
}

/// Redis down during a change: PostgreSQL keeps it, the client is told so, and a retry once
/// Redis is back propagates it. A new license is refused whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_value_outage_during_a_change_is_reported_and_a_retry_propagates_it() {
    let mut redis = RedisServer::start();
    let w = world_with_redis(&redis.url()).await;
    let lic = admin_license(&w.host, json!({})).await;
    let (_, token) = w.seat(&lic.key, "m").await;
    redis.stop();

    let path = format!("/api/v1/admin/licenses/{}/suspend", lic.id);
    let v = World::expect(w.admin("POST", &path, Value::Null).await, 503);
    assert_eq!(v["error"]["code"], "revocation_unavailable");
    assert_eq!(v["error"]["details"]["recorded"], true);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("kv/rebuild"));
    let status: String = pg_client(&w.db)
        .await
        .query_one("SELECT status FROM licenses WHERE id = $1", &[&lic.id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "suspended");

    // A new license needs its read-model entry first: refused, nothing recorded.
    let before = w.state().await;
    let r = w
        .admin(
            "POST",
            "/api/v1/admin/licenses",
            json!({"product_id": lic.product_id, "max_seats": 1}),
        )
        .await;
    assert_eq!(
        World::expect(r, 503)["error"]["code"],
        "key_value_unavailable"
    );
    assert_eq!(w.state().await, before);

    // Redis is back, empty: the retry writes the suspension, the rebuild the rest.
    redis.start_again();
    let v = World::expect(w.admin("POST", &path, Value::Null).await, 200);
    assert_eq!(v["changed"], false);
    assert_eq!(w.code(&token).await, "LICENSE_SUSPENDED");
    World::expect(
        w.admin("POST", "/api/v1/admin/kv/rebuild", Value::Null)
            .await,
        200,
    );
    assert_eq!(w.code(&token).await, "LICENSE_SUSPENDED");
}

/// Found by schemathesis: a session whose metadata nested deeply was stored, and every admin
/// read of its license then failed to decode (503). Metadata now nests at most 16 levels, and
/// the deepest allowed reads back through the license's detail and session list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deepest_metadata_allowed_reads_back_and_deeper_is_refused() {
    let w = world().await;
    let lic = admin_license(&w.host, json!({"max_seats": 2})).await;
    let acquire = |levels: usize| {
        let metadata = format!(
            r#"{{"a":{}1{}}}"#,
            "[".repeat(levels - 1),
            "]".repeat(levels - 1)
        );
        let body = format!(r#"{{"machine_id":"m{levels}","metadata":{metadata}}}"#);
        let auth = format!("Bearer {}", lic.key);
        let host = &w.host;
        async move {
            host.request(
                "POST",
                "/api/v1/licenses/acquire/",
                &[("authorization", &auth)],
                body,
            )
            .await
            .unwrap()
        }
    };
    let refused = World::expect(acquire(100).await, 400);
    assert_eq!(refused["error"]["details"]["field"], "metadata");
    World::expect(acquire(16).await, 201);
    let detail = World::expect(
        w.admin(
            "GET",
            &format!("/api/v1/admin/licenses/{}", lic.id),
            Value::Null,
        )
        .await,
        200,
    );
    assert_eq!(detail["sessions"].as_array().unwrap().len(), 1, "{detail}");
    World::expect(
        w.admin(
            "GET",
            &format!("/api/v1/admin/licenses/{}/sessions", lic.id),
            Value::Null,
        )
        .await,
        200,
    );
}
