//! The `kms` signer (issue #21) through the real acquire component in the test host, against
//! the tests' own Cloud KMS and metadata server on loopback (`tests/google.rs`), with real
//! PostgreSQL and a private Redis per test (the cached access token is one key-value entry, so
//! tests sharing a store would share it).
//!
//! What is held: KMS-signed tokens are the same tokens (PyJWT verifies them from the served
//! JWKS); the access token is cached and refreshed once on a 401; KMS failing, slow, refusing
//! or signing wrong answers 503 `signing_unavailable` within the deadline, and no seat stays
//! taken or extended for a token that was never issued (checked through the admin API);
//! validation never depends on the signer.

use integration_tests::google::{FakeGoogle, KmsMode, MetadataMode, KEY_VERSION};
use integration_tests::servers::RedisServer;
use integration_tests::{
    admin_request, app, create_license, migrated_database, pg_client, redis_runtime_config,
    test_signing_key, LicenseSpec, TestLicense, ISSUER,
};
use le_kms::{CachedToken, KeyVersion};
use license_edge_token::encoding::base64url_decode;
use license_edge_token::KeySet;
use serde_json::{json, Value};
use spin_test_host::kv::Backend;
use spin_test_host::{Host, TestResponse};
use std::process::Command;
use std::time::{Duration, Instant};

/// The deadline the tests configure (`kms_timeout_ms`).
const DEADLINE_MS: u64 = 1_000;

struct KmsWorld {
    host: Host,
    db: String,
    kv: Backend,
    google: FakeGoogle,
    _redis: RedisServer,
}

/// The public key set with the local test key and the KMS key version's, the latter made from
/// the PEM as `licensectl kms-jwk` makes it.
fn public_keys(google: &FakeGoogle) -> String {
    let version = KeyVersion::parse(KEY_VERSION).unwrap();
    let kms = le_kms::verifying_key(&version, &google.public_key_pem()).unwrap();
    let mut set = KeySet::new();
    set.insert(test_signing_key().verifying_key()).unwrap();
    set.insert(kms).unwrap();
    set.to_text()
}

async fn kms_world_with(extra: &[(&str, &str)]) -> KmsWorld {
    let redis = RedisServer::start();
    let google = FakeGoogle::start([42; 32]).await;
    let db = migrated_database().await;
    let keys = public_keys(&google);
    let (kms, metadata) = (google.kms_endpoint(), google.metadata_endpoint());
    let timeout = DEADLINE_MS.to_string();
    let mut vars = vec![
        ("signer", "kms"),
        ("kms_key_version", KEY_VERSION),
        ("kms_endpoint", kms.as_str()),
        ("metadata_endpoint", metadata.as_str()),
        ("kms_timeout_ms", timeout.as_str()),
        ("public_keys", keys.as_str()),
    ];
    vars.extend_from_slice(extra);
    let host = app(&db, redis_runtime_config(&redis.url()), &vars).await;
    KmsWorld {
        host,
        db,
        kv: Backend::redis(&redis.url()).unwrap(),
        google,
        _redis: redis,
    }
}

async fn kms_world() -> KmsWorld {
    kms_world_with(&[]).await
}

impl KmsWorld {
    async fn license(&self, spec: LicenseSpec) -> TestLicense {
        create_license(&self.db, &self.kv, spec).await
    }

    async fn acquire(&self, lic: &TestLicense, machine: &str) -> TestResponse {
        let auth = format!("Bearer {}", lic.key);
        self.host
            .request(
                "POST",
                "/api/v1/licenses/acquire/",
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                json!({ "machine_id": machine }).to_string(),
            )
            .await
            .unwrap()
    }

    async fn session(
        &self,
        method: &str,
        lic: &TestLicense,
        path: &str,
        body: Value,
    ) -> TestResponse {
        let auth = format!("Bearer {}", lic.key);
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        self.host
            .request(
                method,
                &format!("/api/v1/licenses/sessions/{path}"),
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                body,
            )
            .await
            .unwrap()
    }

    async fn validate(&self, token: &str) -> Value {
        self.host
            .request(
                "POST",
                "/api/v1/licenses/validate/",
                &[("content-type", "application/json")],
                json!({ "token": token }).to_string(),
            )
            .await
            .unwrap()
            .json()
    }

    /// The license as the admin API reports it (`active_seats`, live `sessions`).
    async fn detail(&self, lic: &TestLicense) -> Value {
        let r = admin_request(
            &self.host,
            "GET",
            &format!("/api/v1/admin/licenses/{}", lic.id),
            Value::Null,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    /// Every session of the license, live or not, from the admin API.
    async fn sessions(&self, lic: &TestLicense) -> Vec<Value> {
        let r = admin_request(
            &self.host,
            "GET",
            &format!(
                "/api/v1/admin/licenses/{}/sessions?status=all&limit=100",
                lic.id
            ),
            Value::Null,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["data"]
            .as_array()
            .cloned()
            .expect("a page of sessions")
    }

    /// A session's terms straight from PostgreSQL: expires_at, seat_until, borrowed_until.
    async fn terms(&self, session: &str) -> (i64, i64, Option<i64>) {
        let row = pg_client(&self.db)
            .await
            .query_one(
                "SELECT expires_at, seat_until, borrowed_until FROM sessions WHERE id = $1",
                &[&session],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1), row.get(2))
    }
}

fn refused_signing(r: &TestResponse) {
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(
        r.json()["error"]["code"],
        "signing_unavailable",
        "{}",
        r.text()
    );
}

fn header_of(token: &str) -> Value {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(&base64url_decode(header).unwrap()).unwrap()
}

fn python(args: &[&str]) -> Result<String, String> {
    let python = std::env::var("LE_TEST_PYTHON")
        .expect("LE_TEST_PYTHON is not set: run the tests with scripts/test.sh");
    let script = integration_tests::root().join("tests/python/jose_interop.py");
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_signed_tokens_verify_with_pyjwt_from_the_served_jwks() {
    let w = kms_world().await;
    let lic = w
        .license(LicenseSpec {
            max_borrow_seconds: 3600,
            ..Default::default()
        })
        .await;
    let (addr, _server) = w.host.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();

    let r = w.acquire(&lic, "kms-1").await;
    assert_eq!(r.status, 201, "{}", r.text());
    let token = r.json()["license_token"].as_str().unwrap().to_owned();
    let session = r.json()["session_id"].as_str().unwrap().to_owned();
    let kid = KeyVersion::parse(KEY_VERSION).unwrap().kid();
    assert_eq!(
        header_of(&token),
        json!({"alg": "EdDSA", "typ": "JWT", "kid": kid})
    );
    // KMS signed exactly the token's signing input, asked as the REST reference says.
    let seen = w.google.seen();
    assert!(seen.malformed.is_empty(), "{:?}", seen.malformed);
    let input = token.rsplit_once('.').unwrap().0;
    assert_eq!(seen.signed, vec![input.as_bytes().to_vec()]);

    // PyJWT, with nothing but the served JWKS.
    let jwks_url = format!("http://{addr}/.well-known/jwks.json");
    let audience = format!("{}/cad-pro", lic.organization_id);
    let verified = tokio::task::spawn_blocking({
        let (jwks_url, token, audience) = (jwks_url.clone(), token.clone(), audience.clone());
        move || python(&["verify", &jwks_url, &token, &audience, ISSUER])
    })
    .await
    .unwrap()
    .expect("PyJWT verifies the KMS-signed token");
    let claims: Value = serde_json::from_str(&verified).unwrap();
    assert_eq!(claims["sub"], lic.id);
    assert_eq!(claims["sid"], session);
    assert_eq!(w.validate(&token).await["code"], "VALID");

    // Heartbeat and borrow are signed the same way.
    let r = w
        .session("PATCH", &lic, &format!("{session}/heartbeat/"), Value::Null)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let renewed = r.json()["license_token"].as_str().unwrap().to_owned();
    assert_eq!(header_of(&renewed)["kid"], kid);
    assert_eq!(w.validate(&renewed).await["code"], "VALID");
    let r = w
        .session(
            "POST",
            &lic,
            &format!("{session}/borrow/"),
            json!({"duration_s": 1800}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let borrowed = r.json()["license_token"].as_str().unwrap().to_owned();
    tokio::task::spawn_blocking(move || {
        python(&["verify", &jwks_url, &borrowed, &audience, ISSUER])
    })
    .await
    .unwrap()
    .expect("PyJWT verifies the borrow token");

    // Three signatures, one access token: fetched once, then read from the key-value store.
    let seen = w.google.seen();
    assert_eq!(seen.signed.len(), 3);
    assert_eq!(seen.token_requests, 1);
    assert_eq!(seen.sign_tokens, vec!["ya29.test-1"; 3]);
    let cached = CachedToken::decode(&w.kv.get(CachedToken::KEY).await.unwrap().unwrap()).unwrap();
    assert_eq!(cached.token, "ya29.test-1");
    let lifetime = cached.expires_at_ms - integration_tests::now_ms();
    assert!((3_500_000..=3_599_000).contains(&lifetime), "{lifetime}");
    assert!(w.google.seen().malformed.is_empty());
}

/// Every way KMS can fail, through a 2-seat license: each answer is 503 `signing_unavailable`,
/// the seat the acquire took is released in the same request (the admin API counts one seat,
/// the session ended by `system`), a machine's existing session survives a failed re-acquire,
/// validation goes on, and the seats are exactly right once KMS is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_failures_answer_signing_unavailable_and_keep_no_seat() {
    let w = kms_world().await;
    let lic = w
        .license(LicenseSpec {
            max_seats: 2,
            ..Default::default()
        })
        .await;
    let first = w.acquire(&lic, "kept").await;
    assert_eq!(first.status, 201, "{}", first.text());
    let kept_token = first.json()["license_token"].as_str().unwrap().to_owned();
    let kept_session = first.json()["session_id"].as_str().unwrap().to_owned();

    let faults = [
        ("500", KmsMode::Status(500)),
        ("403", KmsMode::Status(403)),
        ("429", KmsMode::Status(429)),
        ("wrong signature", KmsMode::WrongSignature),
        ("truncated signature", KmsMode::Truncated),
    ];
    for (i, (what, mode)) in faults.into_iter().enumerate() {
        w.google.set_kms(mode);
        let r = w.acquire(&lic, &format!("failing-{i}")).await;
        refused_signing(&r);
        let detail = w.detail(&lic).await;
        assert_eq!(detail["active_seats"], 1, "{what}: {detail}");
        // The machine that holds a seat asks again: 503, and it keeps its session and token.
        refused_signing(&w.acquire(&lic, "kept").await);
        assert_eq!(w.validate(&kept_token).await["code"], "VALID", "{what}");
    }
    let sessions = w.sessions(&lic).await;
    let unissued: Vec<&Value> = sessions
        .iter()
        .filter(|s| s["id"] != kept_session.as_str())
        .collect();
    assert_eq!(unissued.len(), 5, "{sessions:?}");
    for s in unissued {
        assert_eq!(s["end_reason"], "released", "{s}");
        assert_eq!(s["live"], false, "{s}");
    }
    let actors: Vec<String> = pg_client(&w.db)
        .await
        .query(
            "SELECT actor FROM audit_events WHERE license_id = $1 AND action = 'session.release'",
            &[&lic.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(actors, vec!["system"; 5]);

    // KMS is back: one seat is free, and only one.
    w.google.set_kms(KmsMode::Sign);
    assert_eq!(w.acquire(&lic, "second").await.status, 201);
    let r = w.acquire(&lic, "third").await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(w.detail(&lic).await["active_seats"], 2);
    assert!(w.google.seen().malformed.is_empty());
    assert!(integration_tests::count_drift(&w.db).await.is_empty());
}

/// A KMS or metadata server that does not answer is cut off at the deadline: the answer comes
/// within it (plus the request's own work), and the seat is not kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_kms_or_metadata_is_cut_off_at_the_deadline() {
    let w = kms_world().await;
    let lic = w
        .license(LicenseSpec {
            max_seats: 1,
            ..Default::default()
        })
        .await;
    let bound = Duration::from_millis(DEADLINE_MS + 1_500);

    w.google
        .set_metadata(MetadataMode::Slow(Duration::from_secs(30)));
    let started = Instant::now();
    refused_signing(&w.acquire(&lic, "m").await);
    assert!(started.elapsed() < bound, "{:?}", started.elapsed());
    assert_eq!(w.detail(&lic).await["active_seats"], 0);

    w.google
        .set_metadata(MetadataMode::Token { expires_in: 3599 });
    w.google.set_kms(KmsMode::Slow(Duration::from_secs(30)));
    let started = Instant::now();
    refused_signing(&w.acquire(&lic, "m").await);
    assert!(started.elapsed() < bound, "{:?}", started.elapsed());
    assert_eq!(w.detail(&lic).await["active_seats"], 0);

    // A metadata server that refuses, then one that is gone.
    w.google.set_kms(KmsMode::Sign);
    w.kv.delete(CachedToken::KEY).await.unwrap();
    w.google.set_metadata(MetadataMode::Status(500));
    refused_signing(&w.acquire(&lic, "m").await);
    assert_eq!(w.detail(&lic).await["active_seats"], 0);

    // Back: the one seat is free.
    w.google
        .set_metadata(MetadataMode::Token { expires_in: 3599 });
    assert_eq!(w.acquire(&lic, "m").await.status, 201);
    assert!(w.google.seen().malformed.is_empty());
}

/// A 401 from KMS (the cached access token expired or was revoked early) fetches a fresh
/// token once and signs with it; a second 401 is `signing_unavailable`, not a loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_refreshes_the_access_token_once() {
    let w = kms_world().await;
    let lic = w.license(LicenseSpec::default()).await;
    assert_eq!(w.acquire(&lic, "a").await.status, 201);
    w.google.revoke_issued_tokens();
    let r = w.acquire(&lic, "b").await;
    assert_eq!(r.status, 201, "{}", r.text());
    let seen = w.google.seen();
    assert_eq!(
        seen.sign_tokens,
        vec!["ya29.test-1", "ya29.test-1", "ya29.test-2"]
    );
    assert_eq!(seen.token_requests, 2);
    let cached = CachedToken::decode(&w.kv.get(CachedToken::KEY).await.unwrap().unwrap()).unwrap();
    assert_eq!(
        cached.token, "ya29.test-2",
        "the fresh token replaces the cached one"
    );

    // KMS refuses every token: one refresh, then 503, and the seat is not kept.
    w.google.set_kms(KmsMode::Status(401));
    refused_signing(&w.acquire(&lic, "c").await);
    let seen = w.google.seen();
    assert_eq!(seen.sign_tokens.len(), 5);
    assert_eq!(seen.token_requests, 3);
    assert_eq!(w.detail(&lic).await["active_seats"], 2);
    assert!(seen.malformed.is_empty());
}

/// A cached token about to expire is not used: it is fetched again before it expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_token_near_its_expiry_is_fetched_again() {
    let w = kms_world().await;
    let lic = w.license(LicenseSpec::default()).await;
    let stale = CachedToken {
        token: "ya29.stale".into(),
        expires_at_ms: integration_tests::now_ms() + le_kms::REFRESH_MARGIN_MS - 1_000,
    };
    w.kv.set(CachedToken::KEY, stale.encode()).await.unwrap();
    assert_eq!(w.acquire(&lic, "a").await.status, 201);
    let seen = w.google.seen();
    assert_eq!(seen.sign_tokens, vec!["ya29.test-1"]);
    assert_eq!(seen.token_requests, 1);
    // Garbage in the cache entry is replaced, not trusted.
    w.kv.set(CachedToken::KEY, b"not a token entry".to_vec())
        .await
        .unwrap();
    assert_eq!(w.acquire(&lic, "b").await.status, 201);
    assert_eq!(w.google.seen().token_requests, 2);
}

/// A heartbeat or borrow whose new token cannot be signed answers 503 and is taken back: the
/// session keeps the terms of the token its client holds (which still validates), a borrow
/// never handed out does not block the client's release, and the audit trail says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_and_borrow_whose_token_cannot_be_signed_are_taken_back() {
    let w = kms_world().await;
    let lic = w
        .license(LicenseSpec {
            max_borrow_seconds: 7 * 86_400,
            lease_seconds: 60,
            ..Default::default()
        })
        .await;
    let r = w.acquire(&lic, "m").await;
    assert_eq!(r.status, 201, "{}", r.text());
    let session = r.json()["session_id"].as_str().unwrap().to_owned();
    let token = r.json()["license_token"].as_str().unwrap().to_owned();
    let before = w.terms(&session).await;
    tokio::time::sleep(Duration::from_millis(20)).await;

    w.google.set_kms(KmsMode::Status(500));
    refused_signing(
        &w.session("PATCH", &lic, &format!("{session}/heartbeat/"), Value::Null)
            .await,
    );
    assert_eq!(w.terms(&session).await, before, "the renewal is taken back");
    refused_signing(
        &w.session(
            "POST",
            &lic,
            &format!("{session}/borrow/"),
            json!({"duration_s": 86_400}),
        )
        .await,
    );
    assert_eq!(w.terms(&session).await, before, "the borrow is taken back");
    assert_eq!(w.validate(&token).await["code"], "VALID");
    let undone: Vec<(String, String)> = pg_client(&w.db)
        .await
        .query(
            "SELECT actor, outcome FROM audit_events WHERE session_id = $1 AND action = 'session.extend_undone' ORDER BY id",
            &[&session],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(undone, vec![("system".to_owned(), "undone".to_owned()); 2]);

    // The client can still hand its seat back (a borrow that stood would answer 409).
    let r = w
        .session("DELETE", &lic, &format!("{session}/"), Value::Null)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(w.detail(&lic).await["active_seats"], 0);
    assert!(w.google.seen().malformed.is_empty());
}

/// The undo is taken only while nothing else changed the session: a heartbeat that came after
/// the failed one (and may have issued a token of its own) is never undone under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_changed_since_is_not_undone() {
    let w = kms_world().await;
    let lic = w.license(LicenseSpec::default()).await;
    let r = w.acquire(&lic, "m").await;
    assert_eq!(r.status, 201, "{}", r.text());
    let session = r.json()["session_id"].as_str().unwrap().to_owned();
    let key_hash = license_edge::seats::license_key_hash(&lic.key);
    let pg = pg_client(&w.db).await;
    let first = pg
        .query_one(
            "SELECT o_outcome, o_version, o_prev_expires_at, o_prev_seat_until, o_prev_borrowed_until \
             FROM le_extend_undoable($1, $2, NULL)",
            &[&key_hash, &session],
        )
        .await
        .unwrap();
    assert_eq!(first.get::<_, String>(0), "renewed");
    // Another heartbeat lands (its token was signed and handed out).
    tokio::time::sleep(Duration::from_millis(5)).await;
    let r = w
        .session("PATCH", &lic, &format!("{session}/heartbeat/"), Value::Null)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let after_second = w.terms(&session).await;
    let undo: String = pg
        .query_one(
            "SELECT o_outcome FROM le_extend_undo($1, $2, $3, $4, $5)",
            &[
                &session,
                &first.get::<_, i64>(1),
                &first.get::<_, i64>(2),
                &first.get::<_, i64>(3),
                &first.get::<_, Option<i64>>(4),
            ],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(undo, "superseded");
    assert_eq!(w.terms(&session).await, after_second);
}

/// Validation never depends on the signer: with KMS and the metadata server both down, tokens
/// already issued validate and the JWKS is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_is_never_affected() {
    let w = kms_world().await;
    let lic = w.license(LicenseSpec::default()).await;
    let r = w.acquire(&lic, "m").await;
    let token = r.json()["license_token"].as_str().unwrap().to_owned();
    w.google.set_kms(KmsMode::Status(503));
    w.google.set_metadata(MetadataMode::Status(503));
    assert_eq!(w.validate(&token).await["code"], "VALID");
    let jwks = w.host.get("/.well-known/jwks.json").await.unwrap().json();
    let kid = KeyVersion::parse(KEY_VERSION).unwrap().kid();
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid.as_str()),
        "{jwks}"
    );
}

/// Without the KMS settings, acquire's only HTTP hosts are reserved names that never resolve:
/// nothing can be reached. The local signer sends nothing anywhere, and `signer = kms` with the
/// default endpoint fails closed (503, no seat).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_hosts_are_reachable_only_when_configured() {
    let manifest =
        spin_test_host::manifest::Manifest::load(&integration_tests::root().join("spin.toml"))
            .unwrap();
    let acquire = &manifest.components["acquire"];
    assert_eq!(
        acquire.allowed_outbound_hosts,
        vec![
            "postgres://{{ db_host }}",
            "{{ oidc_jwks_origin }}",
            "{{ kms_endpoint }}",
            "{{ metadata_endpoint }}"
        ]
    );
    for name in ["kms_endpoint", "metadata_endpoint"] {
        let default = manifest.variables[name].default.clone().unwrap();
        assert!(default.ends_with(".invalid"), "{name} = {default}");
    }

    // The local signer, with a fake Google listening: nothing reaches it.
    let redis = RedisServer::start();
    let google = FakeGoogle::start([42; 32]).await;
    let db = migrated_database().await;
    let host = app(&db, redis_runtime_config(&redis.url()), &[]).await;
    let kv = Backend::redis(&redis.url()).unwrap();
    let lic = create_license(&db, &kv, LicenseSpec::default()).await;
    let token = integration_tests::acquire_token(&host, &lic, "m").await;
    assert_eq!(header_of(&token)["kid"], integration_tests::TEST_KID);
    let seen = google.seen();
    assert_eq!((seen.token_requests, seen.sign_tokens.len()), (0, 0));

    // signer = kms, KMS endpoint left at its default: refused, no seat kept.
    let w = kms_world_with(&[("kms_endpoint", "https://kms-not-configured.invalid")]).await;
    let lic = w.license(LicenseSpec::default()).await;
    refused_signing(&w.acquire(&lic, "m").await);
    assert_eq!(w.detail(&lic).await["active_seats"], 0);
}
