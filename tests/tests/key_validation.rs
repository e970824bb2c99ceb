//! License-key validation at the edge (issue #14, part 3): `POST /api/v1/licenses/validate/`
//! with `{"license_key", "machine_id"?, "action"?}`, answered by the real validate component
//! from the key-value read model alone, with the entries the real admin and acquire
//! components write.
//!
//! Every test has its own Redis: the guess counter is per client address, and in-process
//! requests all come from 127.0.0.1, so a shared store would let one test's guesses limit
//! another's.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use integration_tests::servers::{PgServer, RedisServer};
use integration_tests::{
    admin_license, admin_request, app, migrated_database, pg_client, redis_runtime_config,
    AdminLicense,
};
use license_edge::key_validation::{KEY_GUESSES_PER_WINDOW, KEY_GUESS_WINDOW_MS};
use license_edge::read_model::keys::{key_entry_key, seat_key, KEY_INDEX};
use license_edge::read_model::{license_key, session_key};
use license_edge::seats::license_key_hash;
use license_edge_token::machine_id_hash;
use serde_json::{json, Value};
use spin_test_host::kv::Backend;
use spin_test_host::Host;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const VALIDATE: &str = "/api/v1/licenses/validate/";

/// The app over a fresh database and a private Redis.
struct World {
    host: Host,
    db: String,
    kv: Backend,
    redis: RedisServer,
}

async fn world() -> World {
    let db = migrated_database().await;
    world_on(db).await
}

async fn world_on(db: String) -> World {
    let redis = RedisServer::start();
    let host = app(&db, redis_runtime_config(&redis.url()), &[]).await;
    World {
        host,
        db,
        kv: Backend::redis(&redis.url()).expect("a Redis URL"),
        redis,
    }
}

/// An answer: status, `Retry-After`, body.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

impl World {
    async fn admin(&self, method: &str, path: &str, body: Value) -> Value {
        let r = admin_request(&self.host, method, path, body).await;
        assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
        r.json()
    }

    async fn rebuild(&self) -> Value {
        self.admin("POST", "/api/v1/admin/kv/rebuild", Value::Null)
            .await
    }

    /// A license made through the admin API (which writes its key entry), in a new
    /// organization.
    async fn license(&self, terms: Value) -> AdminLicense {
        admin_license(&self.host, terms).await
    }

    /// A key validation from the in-process client (127.0.0.1:40000).
    async fn check(&self, body: Value) -> Answer {
        self.send_from(
            "127.0.0.1:40000",
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await
    }

    /// The code a key validation answers (200 expected).
    async fn code(&self, body: Value) -> String {
        let a = self.check(body).await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body["code"].as_str().expect("a code").to_owned()
    }

    /// A validate request from the client at `client`, as Spin hands it to the component.
    async fn send_from(&self, client: &str, headers: &[(&str, &str)], body: String) -> Answer {
        let mut req = hyper::Request::builder()
            .method("POST")
            .uri(VALIDATE)
            .header("host", "127.0.0.1:3000");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        let client: SocketAddr = client.parse().unwrap();
        let resp = self.host.handle(req, client).await;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        Answer {
            status: parts.status.as_u16(),
            retry_after: parts
                .headers
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn seat_call(&self, method: &str, path: &str, key: &str, body: Value) -> (u16, Value) {
        let auth = format!("Bearer {key}");
        let r = self
            .host
            .request(
                method,
                path,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                if body.is_null() {
                    String::new()
                } else {
                    body.to_string()
                },
            )
            .await
            .unwrap();
        (r.status, r.json())
    }

    /// Acquires a seat; answers the session id.
    async fn acquire(&self, key: &str, machine: &str) -> String {
        let (status, v) = self
            .seat_call(
                "POST",
                "/api/v1/licenses/acquire/",
                key,
                json!({ "machine_id": machine }),
            )
            .await;
        assert!(status == 201 || status == 200, "acquire: {status} {v}");
        v["session_id"].as_str().unwrap().to_owned()
    }

    async fn release(&self, key: &str, session: &str) {
        let path = format!("/api/v1/licenses/sessions/{session}/");
        let (status, v) = self.seat_call("DELETE", &path, key, Value::Null).await;
        assert_eq!(status, 200, "release: {v}");
    }

    async fn heartbeat(&self, key: &str, session: &str) -> (u16, Value) {
        let path = format!("/api/v1/licenses/sessions/{session}/heartbeat/");
        self.seat_call("PATCH", &path, key, Value::Null).await
    }

    /// Every key in the store, sorted.
    async fn keys(&self) -> Vec<String> {
        let mut keys = self.kv.keys().await.unwrap();
        keys.sort();
        keys
    }

    /// Sends one command to the private Redis (inline protocol) and answers its reply line.
    async fn redis_command(&self, command: &str) -> String {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", self.redis.port))
            .await
            .unwrap();
        conn.write_all(format!("{command}\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = vec![0u8; 256];
        let n = conn.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).trim().to_owned()
    }
}

fn key_body(key: &str, machine: Option<&str>) -> Value {
    match machine {
        Some(m) => json!({ "license_key": key, "machine_id": m }),
        None => json!({ "license_key": key }),
    }
}

/// Every field but the request id, which differs per request.
fn without_request_id(mut v: Value) -> Value {
    v["meta"]["request_id"] = Value::Null;
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_code_and_admin_changes_are_seen_on_the_next_call() {
    let w = world().await;
    w.rebuild().await;
    let lic = w
        .license(json!({"expires_at": "2099-01-01T00:00:00Z"}))
        .await;
    let a = w.check(key_body(&lic.key, None)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let v = &a.body;
    assert_eq!(v["valid"], true);
    assert_eq!(v["code"], "VALID");
    assert_eq!(v["status"], "valid");
    assert_eq!(v["license_id"], lic.id.as_str());
    assert_eq!(v["license_status"], "active");
    assert_eq!(v["expires_at"], "2099-01-01T00:00:00.000Z");
    let days = v["days_remaining"].as_i64().unwrap();
    assert!((26_000..27_000).contains(&days), "{v}");

    let path = |action: &str| format!("/api/v1/admin/licenses/{}/{action}", lic.id);
    w.admin("POST", &path("suspend"), Value::Null).await;
    let v = w.check(key_body(&lic.key, None)).await.body;
    assert_eq!(
        (&v["valid"], &v["code"], &v["status"], &v["license_status"]),
        (
            &json!(false),
            &json!("SUSPENDED"),
            &json!("suspended"),
            &json!("suspended")
        )
    );
    w.admin("POST", &path("reinstate"), Value::Null).await;
    assert_eq!(w.code(key_body(&lic.key, None)).await, "VALID");

    // Expired: an update moves the end date into the past, and back.
    let update = format!("/api/v1/admin/licenses/{}", lic.id);
    w.admin(
        "PATCH",
        &update,
        json!({"expires_at": "2020-01-01T00:00:00Z"}),
    )
    .await;
    let v = w.check(key_body(&lic.key, None)).await.body;
    assert_eq!(
        (&v["code"], &v["status"]),
        (&json!("EXPIRED"), &json!("expired"))
    );
    assert_eq!(
        (&v["days_remaining"], &v["license_status"]),
        (&json!(0), &json!("active"))
    );
    w.admin("PATCH", &update, json!({"expires_at": null})).await;
    let v = w.check(key_body(&lic.key, None)).await.body;
    assert_eq!(v["code"], "VALID");
    assert!(
        v["expires_at"].is_null() && v["days_remaining"].is_null(),
        "{v}"
    );

    w.admin("POST", &path("revoke"), Value::Null).await;
    let v = w.check(key_body(&lic.key, Some("m1"))).await.body;
    assert_eq!(
        (&v["code"], &v["status"], &v["license_status"]),
        (&json!("REVOKED"), &json!("revoked"), &json!("revoked"))
    );

    let v = w.check(key_body("LE-no-such-key", None)).await.body;
    assert_eq!(
        (&v["valid"], &v["code"], &v["status"]),
        (&json!(false), &json!("NOT_FOUND"), &json!("not_found"))
    );
}

/// The old service's clients send `{"license_key","action","machine_id"}` and read `status` and
/// `days_remaining`; the answer carries both beside the new fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_shape_is_answered_as_old_clients_read_it() {
    let w = world().await;
    w.rebuild().await;
    let lic = w
        .license(json!({"expires_at": "2099-06-01T00:00:00Z"}))
        .await;
    let machine = "3f2a9c1e-old-client";
    w.acquire(&lic.key, machine).await;
    for action in ["validate", "check", "activate"] {
        // As the old clients send it: the fields in their order, with and without a
        // content type.
        let body = format!(
            r#"{{"license_key": "{}", "action": "{action}", "machine_id": "{machine}"}}"#,
            lic.key
        );
        for headers in [&[("content-type", "application/json")][..], &[][..]] {
            let a = w.send_from("127.0.0.1:40000", headers, body.clone()).await;
            assert_eq!(a.status, 200, "{}", a.body);
            assert_eq!(a.body["status"], "valid", "{}", a.body);
            assert!(a.body["days_remaining"].as_i64().unwrap() > 26_000);
            assert_eq!(a.body["code"], "VALID");
        }
    }
    let old = format!(
        r#"{{"license_key": "{}", "action": "validate", "machine_id": "another"}}"#,
        lic.key
    );
    let a = w.send_from("127.0.0.1:40000", &[], old).await;
    assert_eq!(
        (a.body["status"].as_str(), a.body["valid"].as_bool()),
        (Some("no_seat"), Some(false))
    );
    let a = w
        .send_from(
            "127.0.0.1:40000",
            &[],
            r#"{"license_key": "LE-WRONG", "action": "validate"}"#.into(),
        )
        .await;
    assert_eq!(
        (a.status, a.body["status"].as_str()),
        (200, Some("not_found"))
    );
    assert!(a.body["days_remaining"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_validation_answers_with_postgresql_stopped() {
    let pg = PgServer::start();
    let db = pg.url("postgres");
    le_migrate::apply(&pg_client(&db).await).await.unwrap();
    let w = world_on(db).await;
    let lic = w.license(json!({})).await;
    let suspended = w.license(json!({})).await;
    w.admin(
        "POST",
        &format!("/api/v1/admin/licenses/{}/suspend", suspended.id),
        Value::Null,
    )
    .await;
    w.acquire(&lic.key, "m1").await;
    w.rebuild().await;
    pg.stop();
    // The admin API cannot work now; key validation does.
    let r = admin_request(&w.host, "GET", "/api/v1/admin/licenses", Value::Null).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(w.code(key_body(&lic.key, None)).await, "VALID");
    assert_eq!(w.code(key_body(&lic.key, Some("m1"))).await, "VALID");
    assert_eq!(w.code(key_body(&lic.key, Some("m2"))).await, "NO_SEAT");
    assert_eq!(w.code(key_body(&suspended.key, None)).await, "SUSPENDED");
    assert_eq!(w.code(key_body("LE-unknown", None)).await, "NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_seat_until_a_machine_holds_a_live_session_and_again_once_it_released() {
    let w = world().await;
    w.rebuild().await;
    let lic = w
        .license(json!({"max_seats": 2, "max_borrow_seconds": 86400}))
        .await;
    assert_eq!(w.code(key_body(&lic.key, Some("m1"))).await, "NO_SEAT");
    let s1 = w.acquire(&lic.key, "m1").await;
    assert_eq!(w.code(key_body(&lic.key, Some("m1"))).await, "VALID");
    assert_eq!(w.code(key_body(&lic.key, Some("m2"))).await, "NO_SEAT");
    assert_eq!(
        w.code(key_body(&lic.key, None)).await,
        "VALID",
        "no machine named"
    );
    // Heartbeat and borrow keep it seated; the entry follows the lease's end.
    let (status, _) = w.heartbeat(&lic.key, &s1).await;
    assert_eq!(status, 200);
    let entry =
        w.kv.get(&seat_key(&lic.id, &machine_id_hash("m1")))
            .await
            .unwrap()
            .unwrap();
    let entry: Value = serde_json::from_slice(&entry).unwrap();
    assert_eq!(entry["session_id"], s1.as_str());
    assert_eq!(w.code(key_body(&lic.key, Some("m1"))).await, "VALID");
    w.release(&lic.key, &s1).await;
    assert_eq!(
        w.code(key_body(&lic.key, Some("m1"))).await,
        "NO_SEAT",
        "seen on the next call"
    );
    // A new session for the machine seats it again.
    let s2 = w.acquire(&lic.key, "m1").await;
    assert_ne!(s1, s2);
    assert_eq!(w.code(key_body(&lic.key, Some("m1"))).await, "VALID");
    // An admin's force release is seen on the next call too.
    w.admin(
        "DELETE",
        &format!("/api/v1/admin/sessions/{s2}"),
        Value::Null,
    )
    .await;
    assert_eq!(w.code(key_body(&lic.key, Some("m1"))).await, "NO_SEAT");
    // A lapsed lease: the entry's end plus the leeway has passed.
    let s3 = w.acquire(&lic.key, "m3").await;
    let key = seat_key(&lic.id, &machine_id_hash("m3"));
    let lapsed = json!({"session_id": s3, "expires_at": integration_tests::now_ms() - 61_000});
    w.kv.set(&key, lapsed.to_string().into_bytes())
        .await
        .unwrap();
    assert_eq!(w.code(key_body(&lic.key, Some("m3"))).await, "NO_SEAT");
}

/// Release writes the session's end marker before it answers, and key validation reads that
/// marker with the seat entry, so a seat write of the same session that lands after the
/// release (an acquire's or a heartbeat's, delayed) cannot seat the machine again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_write_landing_after_the_release_does_not_seat_the_machine() {
    let w = world().await;
    w.rebuild().await;
    let lic = w.license(json!({})).await;
    let session = w.acquire(&lic.key, "m1").await;
    let key = seat_key(&lic.id, &machine_id_hash("m1"));
    let (status, _) = w.heartbeat(&lic.key, &session).await;
    assert_eq!(status, 200);
    // The write the heartbeat made, as it would land if it were delayed.
    let late =
        w.kv.get(&key)
            .await
            .unwrap()
            .expect("the heartbeat wrote the seat");
    w.release(&lic.key, &session).await;
    assert!(w.kv.get(&session_key(&session)).await.unwrap().is_some());
    w.kv.set(&key, late.clone()).await.unwrap();
    assert_eq!(w.code(key_body(&lic.key, Some("m1"))).await, "NO_SEAT");
    // Even a late entry claiming a far end changes nothing: the marker decides.
    let far =
        json!({"session_id": session, "expires_at": integration_tests::now_ms() + 86_400_000});
    w.kv.set(&key, far.to_string().into_bytes()).await.unwrap();
    assert_eq!(w.code(key_body(&lic.key, Some("m1"))).await, "NO_SEAT");
}

/// A seat write that fails never fails the grant: the seat is PostgreSQL's. The machine then
/// reads as holding no seat (the safe side) until a heartbeat writes the entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_seat_write_keeps_the_grant_and_reads_as_no_seat() {
    let w = world().await;
    w.rebuild().await;
    let lic = w.license(json!({})).await;
    // Redis refuses every write from now on (it wants a replica that does not exist); reads
    // still work.
    assert_eq!(
        w.redis_command("CONFIG SET min-replicas-to-write 1").await,
        "+OK"
    );
    let (status, v) = w
        .seat_call(
            "POST",
            "/api/v1/licenses/acquire/",
            &lic.key,
            json!({"machine_id": "m1"}),
        )
        .await;
    assert_eq!(status, 201, "the grant stands: {v}");
    let session = v["session_id"].as_str().unwrap().to_owned();
    assert!(w
        .kv
        .get(&seat_key(&lic.id, &machine_id_hash("m1")))
        .await
        .unwrap()
        .is_none());
    assert_eq!(w.code(key_body(&lic.key, Some("m1"))).await, "NO_SEAT");
    assert_eq!(
        w.redis_command("CONFIG SET min-replicas-to-write 0").await,
        "+OK"
    );
    let (status, _) = w.heartbeat(&lic.key, &session).await;
    assert_eq!(status, 200);
    assert_eq!(w.code(key_body(&lic.key, Some("m1"))).await, "VALID");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_is_limited_per_client_address_before_any_lookup() {
    let w = world().await;
    w.rebuild().await;
    let lic = w.license(json!({})).await;
    // Known keys never count.
    for _ in 0..(KEY_GUESSES_PER_WINDOW + 5) {
        assert_eq!(w.code(key_body(&lic.key, None)).await, "VALID");
    }
    // Guesses near a window's end would spill into the next one: start in a fresh window.
    let into = integration_tests::now_ms() % KEY_GUESS_WINDOW_MS;
    if into > KEY_GUESS_WINDOW_MS - 15_000 {
        tokio::time::sleep(std::time::Duration::from_millis(
            (KEY_GUESS_WINDOW_MS - into + 200) as u64,
        ))
        .await;
    }
    for i in 0..KEY_GUESSES_PER_WINDOW {
        // A different port each time, as new connections have: the address is what counts.
        let client = format!("127.0.0.1:{}", 41_000 + i);
        let a = w
            .send_from(
                &client,
                &[],
                key_body(&format!("LE-guess-{i}"), None).to_string(),
            )
            .await;
        assert_eq!(
            (a.status, a.body["code"].as_str()),
            (200, Some("NOT_FOUND")),
            "guess {i}"
        );
    }
    let refused = w.check(key_body("LE-guess-last", None)).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "rate_limited");
    assert_eq!(
        refused.body["error"]["details"]["limit"],
        KEY_GUESSES_PER_WINDOW
    );
    let retry: u64 = refused
        .retry_after
        .as_deref()
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(refused.body["error"]["details"]["retry_after_s"], retry);
    assert!(refused.body["meta"]["request_id"]
        .as_str()
        .unwrap()
        .starts_with("req_"));
    // Checked before the lookup: a valid key from that address is refused too, so the limit
    // cannot be stepped around by telling found from not found.
    assert_eq!(w.check(key_body(&lic.key, None)).await.status, 429);
    // A spin-client-addr the client writes itself does not move it to another address:
    // Spin's value comes last and is the one read.
    let spoofed = w
        .send_from(
            "127.0.0.1:40001",
            &[
                ("spin-client-addr", "203.0.113.9:1234"),
                ("x-forwarded-for", "198.51.100.7"),
            ],
            key_body("LE-guess-spoofed", None).to_string(),
        )
        .await;
    assert_eq!(spoofed.status, 429);
    // Another address has its own budget; an IPv6 client counts per /64.
    let other = w
        .send_from("127.0.0.2:5000", &[], key_body(&lic.key, None).to_string())
        .await;
    assert_eq!(other.body["code"], "VALID");
    for i in 0..KEY_GUESSES_PER_WINDOW {
        let client = format!("[2001:db8:0:1::{:x}]:443", i + 1);
        let a = w
            .send_from(&client, &[], key_body("LE-v6", None).to_string())
            .await;
        assert_eq!(a.status, 200, "{i}");
    }
    let a = w
        .send_from(
            "[2001:db8:0:1:ffff::9]:1",
            &[],
            key_body("LE-v6", None).to_string(),
        )
        .await;
    assert_eq!(a.status, 429, "the same /64");
    let a = w
        .send_from(
            "[2001:db8:0:2::1]:1",
            &[],
            key_body("LE-v6", None).to_string(),
        )
        .await;
    assert_eq!(a.status, 200, "another /64");
    // The refusals wrote nothing: one counter per address, no more.
    let counters: Vec<String> = w
        .keys()
        .await
        .into_iter()
        .filter(|k| k.starts_with("rl:kv:"))
        .collect();
    assert_eq!(
        counters,
        vec![
            "rl:kv:127.0.0.1",
            "rl:kv:2001:db8:0:1::/64",
            "rl:kv:2001:db8:0:2::/64"
        ]
    );
}

/// A key is global (no organization scoping): another organization's key validates as its own
/// license. Unknown keys, whatever they look like, answer the same status and the same body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_keys_answer_alike_and_keys_are_global() {
    let w = world().await;
    w.rebuild().await;
    let mine = w.license(json!({})).await;
    let theirs = w.license(json!({})).await;
    assert_ne!(mine.organization_id, theirs.organization_id);
    let v = w.check(key_body(&theirs.key, None)).await.body;
    assert_eq!(
        (v["code"].as_str(), v["license_id"].as_str()),
        (Some("VALID"), Some(theirs.id.as_str()))
    );

    let unknown = [
        "LE-0000000000000000000000000000000000000000000000000000000000000000".to_owned(),
        format!("{}x", mine.key),
        mine.key[..mine.key.len() - 1].to_owned(),
        mine.key.to_lowercase(),
        "k".to_owned(),
        "é".repeat(256),
        " ".to_owned(),
    ];
    let mut answers = Vec::new();
    for key in &unknown {
        let a = w
            .check(json!({"license_key": key, "machine_id": "m1", "action": "validate"}))
            .await;
        assert_eq!(a.status, 200, "{key}: {}", a.body);
        answers.push(without_request_id(a.body));
    }
    for (key, a) in unknown.iter().zip(&answers) {
        assert_eq!(a, &answers[0], "{key}");
    }
    assert_eq!(answers[0]["code"], "NOT_FOUND");
    let known = w.check(key_body(&mine.key, None)).await.body;
    let fields = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        fields(&known),
        fields(&answers[0]),
        "every answer has every field"
    );
}

/// The rebuild writes every key entry, every live seat and `key:index`; without the index (the
/// store flushed, or never built since an upgrade) a key without an entry is not reported
/// unknown but unavailable. A flush then a rebuild restores key validation. The sweep deletes
/// expired seat entries and never a key entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rebuild_writes_key_entries_and_a_flush_then_rebuild_restores_them() {
    let w = world().await;
    let a = w.license(json!({})).await;
    let b = w.license(json!({})).await;
    // Never rebuilt: a key made by the admin API works; an unknown one is not called unknown.
    assert_eq!(w.code(key_body(&a.key, None)).await, "VALID");
    let v = w.check(key_body("LE-unknown", None)).await;
    assert_eq!(
        (v.status, v.body["error"]["code"].as_str()),
        (503, Some("revocation_unavailable"))
    );
    let s1 = w.acquire(&a.key, "m1").await;
    w.acquire(&b.key, "m1").await;
    w.admin(
        "POST",
        &format!("/api/v1/admin/licenses/{}/suspend", b.id),
        Value::Null,
    )
    .await;
    let built = w.rebuild().await;
    assert_eq!(
        (
            built["keys_written"].as_u64(),
            built["seats_written"].as_u64()
        ),
        (Some(2), Some(2)),
        "{built}"
    );
    assert_eq!(w.code(key_body("LE-unknown", None)).await, "NOT_FOUND");

    assert_eq!(w.redis_command("FLUSHALL").await, "+OK");
    for body in [key_body(&a.key, Some("m1")), key_body("LE-unknown", None)] {
        let v = w.check(body).await;
        assert_eq!(
            (v.status, v.body["error"]["code"].as_str()),
            (503, Some("revocation_unavailable"))
        );
    }
    let rebuilt = w.rebuild().await;
    assert_eq!(rebuilt["keys_written"], 2);
    assert_eq!(w.code(key_body(&a.key, Some("m1"))).await, "VALID");
    assert_eq!(w.code(key_body(&a.key, Some("m2"))).await, "NO_SEAT");
    assert_eq!(w.code(key_body(&b.key, Some("m1"))).await, "SUSPENDED");
    assert_eq!(w.code(key_body("LE-unknown", None)).await, "NOT_FOUND");
    let entry =
        w.kv.get(&key_entry_key(&license_key_hash(&a.key)))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&entry).unwrap(),
        json!({"license_id": a.id})
    );
    // A key entry without its license's state is a lost read model, not an answer.
    w.kv.delete(&license_key(&a.id)).await.unwrap();
    let v = w.check(key_body(&a.key, None)).await;
    assert_eq!(
        (v.status, v.body["error"]["code"].as_str()),
        (503, Some("revocation_unavailable"))
    );
    w.rebuild().await;

    // The sweep: m1's session on `a` ended long ago; its seat entry goes, the key entries and
    // the other live seat stay.
    w.release(&a.key, &s1).await;
    pg_client(&w.db)
        .await
        .execute(
            "UPDATE sessions SET expires_at = le_now_ms() - le_seat_hold_ms() - 1000 WHERE id = $1",
            &[&s1],
        )
        .await
        .unwrap();
    let stale = json!({"session_id": s1, "expires_at": integration_tests::now_ms() - 120_000});
    let a_seat = seat_key(&a.id, &machine_id_hash("m1"));
    w.kv.set(&a_seat, stale.to_string().into_bytes())
        .await
        .unwrap();
    let before: Vec<String> = w
        .keys()
        .await
        .into_iter()
        .filter(|k| k.starts_with("key:"))
        .collect();
    assert_eq!(before.len(), 3, "two keys and the index: {before:?}");
    let swept = w.admin("POST", "/api/v1/admin/kv/sweep", Value::Null).await;
    assert_eq!(swept["seat_entries_deleted"], 1, "{swept}");
    assert!(w.kv.get(&a_seat).await.unwrap().is_none());
    assert!(w
        .kv
        .get(&seat_key(&b.id, &machine_id_hash("m1")))
        .await
        .unwrap()
        .is_some());
    let after: Vec<String> = w
        .keys()
        .await
        .into_iter()
        .filter(|k| k.starts_with("key:"))
        .collect();
    assert_eq!(after, before);
    assert!(w.kv.get(KEY_INDEX).await.unwrap().is_some());
    assert_eq!(w.code(key_body(&a.key, None)).await, "VALID");
}

/// Bad input is a 4xx with the envelope, and nothing is written when a request is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_key_requests_are_refused_and_write_nothing() {
    let w = world().await;
    w.rebuild().await;
    let before = w.keys().await;
    let long = "k".repeat(257);
    let cases: Vec<(String, u16, &str)> = vec![
        (r#"{"license_key": null}"#.into(), 400, "missing_field"),
        (r#"{"license_key": ""}"#.into(), 400, "invalid_field"),
        (r#"{"license_key": 12}"#.into(), 400, "invalid_field"),
        (
            format!(r#"{{"license_key": "{long}"}}"#),
            400,
            "invalid_field",
        ),
        (
            r#"{"license_key": "k", "token": "t"}"#.into(),
            400,
            "invalid_field",
        ),
        (
            r#"{"license_key": "k", "machine_id": 5}"#.into(),
            400,
            "invalid_field",
        ),
        (
            r#"{"license_key": "k", "action": {}}"#.into(),
            400,
            "invalid_field",
        ),
        (
            format!(r#"{{"license_key": "k", "action": "{}"}}"#, "a".repeat(65)),
            400,
            "invalid_field",
        ),
        (
            r#"{"license_key": "k", "license_key": "j"}"#.into(),
            400,
            "invalid_json",
        ),
        (r#"{"license_key": "k""#.into(), 400, "invalid_json"),
        (
            format!(r#"{{"license_key": "{}"}}"#, "k".repeat(9000)),
            413,
            "payload_too_large",
        ),
    ];
    for (body, status, code) in &cases {
        let a = w.send_from("127.0.0.1:40000", &[], body.clone()).await;
        assert_eq!(
            (a.status, a.body["error"]["code"].as_str()),
            (*status, Some(*code)),
            "{body}"
        );
    }
    let a = w
        .send_from(
            "127.0.0.1:40000",
            &[("content-type", "text/plain")],
            r#"{"license_key":"k"}"#.into(),
        )
        .await;
    assert_eq!(a.status, 415);
    assert_eq!(w.keys().await, before, "refusals wrote nothing");
}
