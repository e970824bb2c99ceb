//! Tenancy through the real admin, acquire and validate components, with real PostgreSQL and
//! Redis: two organizations, each with an admin and a read key. Every admin route tried with
//! the other organization's ids answers 404 and changes nothing; a read key is refused every
//! write; a revoked key is refused on the next request; the operator token sees both and can
//! be rotated with two values at once; a token for one organization's product never validates
//! for another's.

use integration_tests::{
    admin_operations, app, migrated_database, pg_client, redis_runtime_config, redis_url,
    test_signing_key, ISSUER, TEST_ADMIN_TOKEN,
};
use license_edge_token::{issue, Claims};
use serde_json::{json, Value};
use spin_test_host::{Host, TestResponse};

/// The operator token in these tests: two values, as during a rotation.
const OLD_OPERATOR: &str = "operator-token-old-0123456789";
const NEW_OPERATOR: &str = "operator-token-new-0123456789";

async fn send(
    host: &Host,
    credential: &str,
    method: &str,
    path: &str,
    body: Value,
) -> TestResponse {
    let auth = format!("Bearer {credential}");
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    host.request(
        method,
        path,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await
    .expect("answered")
}

/// The ids of a list answer's items, in order.
fn ids_of(page: &Value) -> Vec<&str> {
    page["data"]
        .as_array()
        .expect("a list answer has data")
        .iter()
        .map(|item| item["id"].as_str().expect("every item has an id"))
        .collect()
}

#[track_caller]
fn expect(r: TestResponse, status: u16) -> Value {
    assert_eq!(r.status, status, "{}", r.text());
    r.json()
}

/// One organization with a product `cad-pro`, a license with a live session, and its keys.
struct Org {
    id: String,
    product: String,
    license: String,
    license_key: String,
    session: String,
    token: String,
    admin_key: String,
    read_key: String,
    read_key_id: String,
}

async fn organization(host: &Host, name: &str) -> Org {
    let op = NEW_OPERATOR;
    let id = expect(
        send(
            host,
            op,
            "POST",
            "/api/v1/admin/organizations",
            json!({"name": name}),
        )
        .await,
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let product = expect(
        send(
            host,
            op,
            "POST",
            "/api/v1/admin/products",
            json!({"organization_id": id, "code": "cad-pro", "name": "CAD Pro"}),
        )
        .await,
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let lic = expect(
        send(
            host,
            op,
            "POST",
            "/api/v1/admin/licenses",
            json!({"product_id": product, "max_seats": 3}),
        )
        .await,
        201,
    );
    let license_key = lic["license_key"].as_str().unwrap().to_owned();
    let r = host
        .request(
            "POST",
            "/api/v1/licenses/acquire/",
            &[("authorization", &format!("Bearer {license_key}"))],
            json!({"machine_id": format!("{name}-m1")}).to_string(),
        )
        .await
        .unwrap();
    let granted = expect(r, 201);
    let keys = format!("/api/v1/admin/organizations/{id}/keys");
    let admin = expect(
        send(
            host,
            op,
            "POST",
            &keys,
            json!({"name": "ops", "role": "admin"}),
        )
        .await,
        201,
    );
    let read = expect(
        send(host, op, "POST", &keys, json!({"name": "dashboard"})).await,
        201,
    );
    assert_eq!(read["role"], "read", "the least role is the default");
    Org {
        id,
        product,
        license: lic["id"].as_str().unwrap().to_owned(),
        license_key,
        session: granted["session_id"].as_str().unwrap().to_owned(),
        token: granted["license_token"].as_str().unwrap().to_owned(),
        admin_key: admin["key"].as_str().unwrap().to_owned(),
        read_key: read["key"].as_str().unwrap().to_owned(),
        read_key_id: read["id"].as_str().unwrap().to_owned(),
    }
}

struct World {
    host: Host,
    db: String,
    a: Org,
    b: Org,
}

async fn world() -> World {
    let db = migrated_database().await;
    let operator = format!("{OLD_OPERATOR},{NEW_OPERATOR}");
    let host = app(
        &db,
        redis_runtime_config(&redis_url()),
        &[("admin_token", &operator)],
    )
    .await;
    let a = organization(&host, "alpha").await;
    let b = organization(&host, "beta").await;
    World { host, db, a, b }
}

impl World {
    /// Everything an admin request could change, in PostgreSQL: every row of every table
    /// (a key's `last_used_at` aside, which moves when a key is used) and the audit trail.
    async fn state(&self) -> String {
        let pg = pg_client(&self.db).await;
        let mut out = String::new();
        for sql in [
            "SELECT coalesce(string_agg(to_jsonb(o)::text, '|' ORDER BY id), '') FROM organizations o",
            "SELECT coalesce(string_agg(to_jsonb(p)::text, '|' ORDER BY id), '') FROM products p",
            "SELECT coalesce(string_agg(to_jsonb(l)::text, '|' ORDER BY id), '') FROM licenses l",
            "SELECT coalesce(string_agg(to_jsonb(s)::text, '|' ORDER BY id), '') FROM sessions s",
            "SELECT coalesce(string_agg((to_jsonb(k) - 'last_used_at')::text, '|' ORDER BY id), '') \
             FROM organization_api_keys k",
            "SELECT coalesce(string_agg(to_jsonb(e)::text, '|' ORDER BY id), '') FROM audit_events e",
        ] {
            let row = pg.query_one(sql, &[]).await.unwrap();
            out.push_str(&row.get::<_, String>(0));
            out.push('\n');
        }
        out
    }

    async fn validate(&self, token: &str, product: Option<&str>) -> Value {
        let mut body = json!({"token": token});
        if let Some(p) = product {
            body["product"] = json!(p);
        }
        let r = self
            .host
            .request("POST", "/api/v1/licenses/validate/", &[], body.to_string())
            .await
            .unwrap();
        expect(r, 200)
    }
}

/// A plausible body for each admin operation, so that a refusal is about the ids and not about
/// the body.
fn body_for(method: &str, template: &str, other: &Org) -> Value {
    match (method, template) {
        ("POST", "/api/v1/admin/products") => {
            json!({"organization_id": other.id, "code": "stolen", "name": "Stolen"})
        }
        ("POST", "/api/v1/admin/licenses") => json!({"product_id": other.product, "max_seats": 9}),
        ("PATCH", _) => json!({"max_seats": 9}),
        ("POST", t) if t.ends_with("/keys") => json!({"name": "intruder", "role": "read"}),
        ("POST", t) if t.ends_with("/suspend") || t.ends_with("/revoke") => {
            json!({"reason": "intrusion"})
        }
        _ => Value::Null,
    }
}

fn fill(template: &str, org: &Org) -> String {
    template
        .replace("{organization_id}", &org.id)
        .replace("{product_id}", &org.product)
        .replace("{license_id}", &org.license)
        .replace("{session_id}", &org.session)
        .replace("{key_id}", &org.read_key_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_with_another_organizations_ids_answers_404_and_changes_nothing() {
    let w = world().await;
    let before = w.state().await;
    let operator_only = [
        "/api/v1/admin/kv/rebuild",
        "/api/v1/admin/kv/sweep",
        "/api/v1/admin/prune",
    ];
    let mut tried = 0;
    for (method, template) in admin_operations() {
        if operator_only.contains(&template)
            || (method == "POST" && template == "/api/v1/admin/organizations")
        {
            // No ids: an organization key may not use them at all.
            let r = send(&w.host, &w.a.admin_key, method, template, Value::Null).await;
            let v = expect(r, 403);
            assert_eq!(
                v["error"]["code"], "insufficient_scope",
                "{method} {template}"
            );
            continue;
        }
        let path = match template {
            // Lists take the other organization's ids as filters.
            "/api/v1/admin/products" if method == "GET" => {
                format!("{template}?organization_id={}", w.b.id)
            }
            "/api/v1/admin/licenses" if method == "GET" => {
                format!("{template}?product_id={}", w.b.product)
            }
            "/api/v1/admin/organizations" if method == "GET" => continue,
            _ => fill(template, &w.b),
        };
        let body = body_for(method, template, &w.b);
        let r = send(&w.host, &w.a.admin_key, method, &path, body).await;
        let v = expect(r, 404);
        assert_eq!(v["error"]["code"], "not_found", "{method} {path}");
        tried += 1;
    }
    assert_eq!(tried, 20, "every route that names an id was tried");
    // The other list filter, and the organization list, which shows A alone.
    let r = send(
        &w.host,
        &w.a.read_key,
        "GET",
        &format!("/api/v1/admin/licenses?organization_id={}", w.b.id),
        Value::Null,
    )
    .await;
    expect(r, 404);
    let orgs = expect(
        send(
            &w.host,
            &w.a.read_key,
            "GET",
            "/api/v1/admin/organizations",
            Value::Null,
        )
        .await,
        200,
    );
    let ids = ids_of(&orgs);
    assert_eq!(ids, [w.a.id.as_str()]);
    let lics = expect(
        send(
            &w.host,
            &w.a.read_key,
            "GET",
            "/api/v1/admin/licenses",
            Value::Null,
        )
        .await,
        200,
    );
    let ids = ids_of(&lics);
    assert_eq!(
        ids,
        [w.a.license.as_str()],
        "unfiltered lists hold A's alone"
    );

    assert_eq!(
        w.state().await,
        before,
        "no refused request changed anything"
    );
    // B's session still validates: nothing reached the edge either.
    assert_eq!(w.validate(&w.b.token, None).await["code"], "VALID");
    // B's keys still work, and A's own routes work with A's key.
    let r = send(
        &w.host,
        &w.b.read_key,
        "GET",
        &format!("/api/v1/admin/licenses/{}", w.b.license),
        Value::Null,
    )
    .await;
    expect(r, 200);
    let r = send(
        &w.host,
        &w.a.admin_key,
        "POST",
        &format!("/api/v1/admin/licenses/{}/suspend", w.a.license),
        json!({}),
    )
    .await;
    expect(r, 200);
    assert_eq!(
        w.validate(&w.a.token, None).await["code"],
        "LICENSE_SUSPENDED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_key_is_refused_every_write_and_may_read() {
    let w = world().await;
    let before = w.state().await;
    let mut writes = 0;
    for (method, template) in admin_operations() {
        let path = fill(template, &w.a);
        let body = body_for(method, template, &w.a);
        let r = send(&w.host, &w.a.read_key, method, &path, body).await;
        if method == "GET" {
            expect(r, 200);
            continue;
        }
        let v = expect(r, 403);
        assert_eq!(v["error"]["code"], "insufficient_scope", "{method} {path}");
        assert!(v["meta"]["request_id"].is_string(), "the envelope: {v}");
        writes += 1;
    }
    assert_eq!(writes, 13);
    assert_eq!(w.state().await, before, "a refused write changes nothing");
    assert_eq!(w.validate(&w.a.token, None).await["code"], "VALID");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_on_the_next_request() {
    let w = world().await;
    let keys = format!("/api/v1/admin/organizations/{}/keys", w.a.id);
    let made = expect(
        send(
            &w.host,
            &w.a.admin_key,
            "POST",
            &keys,
            json!({"name": "ci", "role": "admin"}),
        )
        .await,
        201,
    );
    let key = made["key"].as_str().unwrap().to_owned();
    let key_id = made["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("lek_") && key.len() == 68);
    assert_eq!(made["prefix"].as_str().unwrap(), &key[..12]);
    assert_eq!(
        made["created_by"],
        format!("key:{}", key_id_of(&w, &w.a.admin_key).await)
    );
    let license = format!("/api/v1/admin/licenses/{}", w.a.license);
    expect(send(&w.host, &key, "GET", &license, Value::Null).await, 200);

    // The list names keys by prefix and never shows a key or its hash.
    let listed = expect(
        send(&w.host, &w.a.read_key, "GET", &keys, Value::Null).await,
        200,
    );
    let text = listed.to_string();
    assert!(!text.contains(&key) && !text.contains("key_hash") && !text.contains(&w.a.admin_key));
    let row = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == key_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["role"], "admin");
    assert!(row["last_used_at"].is_string(), "used once: {row}");
    assert!(row["revoked_at"].is_null());

    let revoked = expect(
        send(
            &w.host,
            &w.a.admin_key,
            "DELETE",
            &format!("/api/v1/admin/keys/{key_id}"),
            Value::Null,
        )
        .await,
        200,
    );
    assert_eq!(revoked["changed"], true);
    assert!(revoked["revoked_at"].is_string());
    let r = send(&w.host, &key, "GET", &license, Value::Null).await;
    let v = expect(r, 401);
    assert_eq!(v["error"]["code"], "unauthorized");
    // Revoking again is not an error; the other keys still work.
    let again = send(
        &w.host,
        &w.a.admin_key,
        "DELETE",
        &format!("/api/v1/admin/keys/{key_id}"),
        Value::Null,
    )
    .await;
    assert_eq!(expect(again, 200)["changed"], false);
    expect(
        send(&w.host, &w.a.read_key, "GET", &license, Value::Null).await,
        200,
    );
    // An unknown key of the right shape is the same 401 as any bad credential.
    let forged = format!("lek_{}", "0".repeat(64));
    expect(
        send(&w.host, &forged, "GET", &license, Value::Null).await,
        401,
    );
}

/// The id of the key `key` (from the audit trail of its own use: the key list of its org).
async fn key_id_of(w: &World, key: &str) -> String {
    let pg = pg_client(&w.db).await;
    let hash = license_edge::admin::org_key_hash(key);
    pg.query_one(
        "SELECT id FROM organization_api_keys WHERE key_hash = $1",
        &[&hash],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_grant_no_more_than_their_role_and_the_audit_trail_names_them() {
    let w = world().await;
    let keys = format!("/api/v1/admin/organizations/{}/keys", w.a.id);
    // A read key issues nothing; the role of a new key is checked.
    let r = send(
        &w.host,
        &w.a.read_key,
        "POST",
        &keys,
        json!({"name": "x", "role": "read"}),
    )
    .await;
    expect(r, 403);
    let r = send(
        &w.host,
        &w.a.admin_key,
        "POST",
        &keys,
        json!({"name": "x", "role": "root"}),
    )
    .await;
    assert_eq!(expect(r, 400)["error"]["details"]["field"], "role");
    // A change by a key is audited under the key; the operator's as `admin`.
    let suspend = format!("/api/v1/admin/licenses/{}/suspend", w.a.license);
    expect(
        send(&w.host, &w.a.admin_key, "POST", &suspend, json!({})).await,
        200,
    );
    let reinstate = format!("/api/v1/admin/licenses/{}/reinstate", w.a.license);
    expect(
        send(&w.host, OLD_OPERATOR, "POST", &reinstate, json!({})).await,
        200,
    );
    let trail = expect(
        send(
            &w.host,
            &w.a.read_key,
            "GET",
            &format!("/api/v1/admin/licenses/{}/audit-events", w.a.license),
            Value::Null,
        )
        .await,
        200,
    );
    let actor_of = |action: &str| -> String {
        trail["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("{action} in {trail}"))["actor"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let admin_key_id = key_id_of(&w, &w.a.admin_key).await;
    assert_eq!(actor_of("license.suspend"), format!("key:{admin_key_id}"));
    assert_eq!(actor_of("license.reinstate"), "admin");
    // A client's release keeps its own actor, whatever an admin request stated before.
    let r = w
        .host
        .request(
            "DELETE",
            &format!("/api/v1/licenses/sessions/{}/", w.a.session),
            &[("authorization", &format!("Bearer {}", w.a.license_key))],
            String::new(),
        )
        .await
        .unwrap();
    expect(r, 200);
    let pg = pg_client(&w.db).await;
    let actor: String = pg
        .query_one(
            "SELECT actor FROM audit_events WHERE action = 'session.release' AND session_id = $1",
            &[&w.a.session],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(actor, "client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_sees_both_organizations_and_rotates_with_two_tokens() {
    let w = world().await;
    for token in [OLD_OPERATOR, NEW_OPERATOR] {
        let orgs = expect(
            send(
                &w.host,
                token,
                "GET",
                "/api/v1/admin/organizations",
                Value::Null,
            )
            .await,
            200,
        );
        let ids = ids_of(&orgs);
        assert!(ids.contains(&w.a.id.as_str()) && ids.contains(&w.b.id.as_str()));
        expect(
            send(
                &w.host,
                token,
                "POST",
                "/api/v1/admin/kv/rebuild",
                Value::Null,
            )
            .await,
            200,
        );
    }
    // The rotation ends: the old value is removed from the variable, and refused.
    let host = app(
        &w.db,
        redis_runtime_config(&redis_url()),
        &[("admin_token", NEW_OPERATOR)],
    )
    .await;
    let orgs = "/api/v1/admin/organizations";
    expect(
        send(&host, OLD_OPERATOR, "GET", orgs, Value::Null).await,
        401,
    );
    expect(
        send(&host, NEW_OPERATOR, "GET", orgs, Value::Null).await,
        200,
    );
    // The default test token is not among this app's operator tokens.
    expect(
        send(&host, TEST_ADMIN_TOKEN, "GET", orgs, Value::Null).await,
        401,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_one_organizations_product_never_validates_for_anothers() {
    let w = world().await;
    let (a, b) = (&w.a, &w.b);
    let own = format!("{}/cad-pro", a.id);
    let other = format!("{}/cad-pro", b.id);
    let claims = license_edge_token::verify(
        &a.token,
        &license_edge_token::KeySet::from_jwks_json(
            &w.host
                .request("GET", "/.well-known/jwks.json", &[], String::new())
                .await
                .unwrap()
                .text(),
        )
        .unwrap(),
        &license_edge_token::ValidationOptions::new().with_issuer(ISSUER),
        integration_tests::now_ms() / 1000,
        None,
    )
    .unwrap()
    .into_claims();
    assert_eq!(claims.aud, own, "aud names the organization and the code");
    assert_eq!(w.validate(&a.token, Some(&own)).await["code"], "VALID");
    for wrong in [other.as_str(), "cad-pro", b.product.as_str()] {
        assert_eq!(
            w.validate(&a.token, Some(wrong)).await["code"],
            "WRONG_AUDIENCE",
            "{wrong}"
        );
    }
    // A token issued before the change (aud = the bare code, org = the organization) keeps
    // validating for its own product until it expires, and never for the other's.
    let now = integration_tests::now_ms() / 1000;
    let mut old = Claims::new(ISSUER, &a.license, "cad-pro", &a.session, now, 300);
    old.org = Some(a.id.clone());
    let old = issue(&test_signing_key(), &old).unwrap();
    assert_eq!(w.validate(&old, Some(&own)).await["code"], "VALID");
    assert_eq!(w.validate(&old, Some("cad-pro")).await["code"], "VALID");
    assert_eq!(
        w.validate(&old, Some(&other)).await["code"],
        "WRONG_AUDIENCE"
    );
}
