//! The validate component: offline verification plus the edge read model, every answer code,
//! key rotation, JWKS, the bad-input table, and behaviour with PostgreSQL or Redis down.
//!
//! Read-model entries are written here straight into the key-value store (the write-through of
//! the acquire and admin components is tested with those components).

use integration_tests::servers::{free_port, PgServer, RedisServer};
use integration_tests::{
    app, other_signing_key, pg_port, pg_url, public_keys_text, redis_runtime_config, redis_url,
    test_signing_key, ISSUER,
};
use license_edge::read_model::{
    encode, license_key, session_key, verify_cache_key, LicenseState, LicenseStatus, SessionEnded,
};
use license_edge_token::{issue, Claims, SigningKey};
use serde_json::{json, Value};
use spin_test_host::kv::Backend;
use spin_test_host::Host;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const VALIDATE: &str = "/api/v1/licenses/validate/";
const JSON: (&str, &str) = ("content-type", "application/json");

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        now(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A license id, a session id and a token for them, signed by `key`.
fn token_with(key: &SigningKey, iat: i64, ttl: i64, machine: &str) -> (String, String, String) {
    let (license, session) = (unique("lic"), unique("sess"));
    let claims =
        Claims::new(ISSUER, &license, "cad-pro", &session, iat, ttl).with_machine_id(machine);
    (license, session, issue(key, &claims).unwrap())
}

async fn store(url: &str) -> Backend {
    Backend::redis(url).unwrap()
}

/// Ends a session in the read model as the acquire and admin components do: the marker, then
/// the session's cache entry goes (`license_edge::read_model`, the session-end protocol).
async fn end_session(kv: &Backend, session: &str, ended: &SessionEnded) {
    kv.set(&session_key(session), encode(ended)).await.unwrap();
    kv.delete(&verify_cache_key(session)).await.unwrap();
}

async fn set_license(kv: &Backend, license: &str, status: LicenseStatus, expires_at: Option<i64>) {
    let entry = LicenseState {
        status,
        expires_at,
        updated_at: now() * 1000,
        version: 0,
    };
    // The client reconnects lazily after a Redis restart: its first command may fail.
    for attempt in 0..20 {
        match kv.set(&license_key(license), encode(&entry)).await {
            Ok(()) => return,
            Err(e) if attempt < 19 => {
                eprintln!("retrying a key-value write: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("key-value write failed: {e}"),
        }
    }
}

async fn host() -> Host {
    app(
        &pg_url(pg_port(), "postgres"),
        redis_runtime_config(&redis_url()),
        &[],
    )
    .await
}

async fn validate(host: &Host, body: Value) -> (u16, Value) {
    let r = host
        .request("POST", VALIDATE, &[JSON], body.to_string())
        .await
        .unwrap();
    (r.status, r.json())
}

async fn code_of(host: &Host, body: Value) -> String {
    let (status, v) = validate(host, body).await;
    assert_eq!(status, 200, "{v}");
    v["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_token_in_force_is_valid_with_its_claims() {
    let host = host().await;
    let kv = store(&redis_url()).await;
    let (license, session, token) = token_with(&test_signing_key(), now(), 600, "machine-1");
    set_license(&kv, &license, LicenseStatus::Active, None).await;
    let (status, v) = validate(&host, json!({"token": token, "machine_id": "machine-1"})).await;
    assert_eq!(status, 200);
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["code"], "VALID");
    assert_eq!(v["license"]["sub"], license);
    assert_eq!(v["license"]["sid"], session);
    assert_eq!(v["license"]["aud"], "cad-pro");
    assert!(v["expires_at"].as_str().unwrap().ends_with('Z'));
    // The token may come as a bearer credential instead.
    let r = host
        .request(
            "POST",
            VALIDATE,
            &[("authorization", &format!("Bearer {token}"))],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.json()["code"], "VALID");
    // Without a machine id the binding is not checked; with the product it is the audience.
    assert_eq!(
        code_of(&host, json!({"token": token, "product": "cad-pro"})).await,
        "VALID"
    );
}

#[tokio::test]
async fn every_refusal_code() {
    let host = host().await;
    let kv = store(&redis_url()).await;
    let key = test_signing_key();
    let t = now();

    let (lic, _, expired) = token_with(&key, t - 7200, 600, "m");
    set_license(&kv, &lic, LicenseStatus::Active, None).await;
    assert_eq!(code_of(&host, json!({"token": expired})).await, "EXPIRED");

    let (lic, _, future) = token_with(&key, t + 3600, 600, "m");
    set_license(&kv, &lic, LicenseStatus::Active, None).await;
    let code = code_of(&host, json!({"token": future})).await;
    assert!(
        code == "NOT_YET_VALID" || code == "ISSUED_IN_FUTURE",
        "{code}"
    );

    // Same kid, different key: the signature does not verify.
    let impostor = SigningKey::from_seed(integration_tests::TEST_KID, [1; 32]).unwrap();
    let (_, _, forged) = token_with(&impostor, t, 600, "m");
    assert_eq!(
        code_of(&host, json!({"token": forged})).await,
        "BAD_SIGNATURE"
    );

    let (_, _, unknown) = token_with(&other_signing_key("retired-key"), t, 600, "m");
    assert_eq!(
        code_of(&host, json!({"token": unknown})).await,
        "UNKNOWN_KEY"
    );

    assert_eq!(
        code_of(&host, json!({"token": "not.a.token"})).await,
        "MALFORMED"
    );

    let (lic, _, bound) = token_with(&key, t, 600, "machine-a");
    set_license(&kv, &lic, LicenseStatus::Active, None).await;
    assert_eq!(
        code_of(&host, json!({"token": bound, "machine_id": "machine-b"})).await,
        "MACHINE_MISMATCH"
    );
    assert_eq!(
        code_of(&host, json!({"token": bound, "product": "other"})).await,
        "WRONG_AUDIENCE"
    );

    let (lic, _, token) = token_with(&key, t, 600, "m");
    set_license(&kv, &lic, LicenseStatus::Suspended, None).await;
    assert_eq!(
        code_of(&host, json!({"token": token})).await,
        "LICENSE_SUSPENDED"
    );
    set_license(&kv, &lic, LicenseStatus::Revoked, None).await;
    assert_eq!(
        code_of(&host, json!({"token": token})).await,
        "LICENSE_REVOKED"
    );
    set_license(&kv, &lic, LicenseStatus::Active, Some(t * 1000 - 1)).await;
    assert_eq!(
        code_of(&host, json!({"token": token})).await,
        "LICENSE_EXPIRED"
    );

    let (lic, sess, token) = token_with(&key, t, 600, "m");
    set_license(&kv, &lic, LicenseStatus::Active, None).await;
    assert_eq!(code_of(&host, json!({"token": token})).await, "VALID");
    let ended = SessionEnded {
        ended_at: t * 1000,
        token_expires_at: (t + 600) * 1000,
    };
    end_session(&kv, &sess, &ended).await;
    assert_eq!(
        code_of(&host, json!({"token": token})).await,
        "SESSION_ENDED"
    );
    // Reinstating the license is seen on the very next request, too.
    set_license(&kv, &lic, LicenseStatus::Suspended, None).await;
    assert_eq!(
        code_of(&host, json!({"token": token})).await,
        "LICENSE_SUSPENDED"
    );
}

#[tokio::test]
async fn no_read_model_entry_is_not_an_authoritative_answer() {
    let host = host().await;
    let (_, _, token) = token_with(&test_signing_key(), now(), 600, "m");
    let (status, v) = validate(&host, json!({"token": token})).await;
    assert_eq!(status, 503);
    assert_eq!(v["error"]["code"], "revocation_unavailable");
}

#[tokio::test]
async fn still_valid_with_postgres_stopped() {
    let pg = PgServer::start();
    let host = app(&pg.url("postgres"), redis_runtime_config(&redis_url()), &[]).await;
    pg.stop();
    let kv = store(&redis_url()).await;
    let (lic, _, token) = token_with(&test_signing_key(), now(), 600, "m");
    set_license(&kv, &lic, LicenseStatus::Active, None).await;
    assert_eq!(code_of(&host, json!({"token": token})).await, "VALID");
    // And with PostgreSQL never reachable at all.
    let host = app(
        &pg_url(free_port(), "postgres"),
        redis_runtime_config(&redis_url()),
        &[],
    )
    .await;
    assert_eq!(code_of(&host, json!({"token": token})).await, "VALID");
}

#[tokio::test]
async fn redis_down_is_503_revocation_unavailable_and_recovers() {
    let mut redis = RedisServer::start();
    let host = app(
        &pg_url(pg_port(), "postgres"),
        redis_runtime_config(&redis.url()),
        &[],
    )
    .await;
    let (lic, _, token) = token_with(&test_signing_key(), now(), 600, "m");
    let kv = store(&redis.url()).await;
    set_license(&kv, &lic, LicenseStatus::Active, None).await;
    assert_eq!(code_of(&host, json!({"token": token})).await, "VALID");
    redis.stop();
    let (status, v) = validate(&host, json!({"token": token})).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "revocation_unavailable");
    // A refused token needs no revocation state: it is still answered.
    assert_eq!(code_of(&host, json!({"token": "x.y.z"})).await, "MALFORMED");
    redis.start_again();
    set_license(&kv, &lic, LicenseStatus::Active, None).await;
    let mut last = String::new();
    for _ in 0..50 {
        let (status, v) = validate(&host, json!({"token": token})).await;
        if status == 200 {
            last = v["code"].as_str().unwrap().to_owned();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(last, "VALID", "validation recovers once Redis is back");
}

#[tokio::test]
async fn rotation_old_and_new_keys_verify_until_the_old_one_is_removed() {
    let old = test_signing_key();
    let new = other_signing_key("next-2027-01");
    let kv = store(&redis_url()).await;
    let (lic_old, _, old_token) = token_with(&old, now(), 600, "m");
    let (lic_new, _, new_token) = token_with(&new, now(), 600, "m");
    set_license(&kv, &lic_old, LicenseStatus::Active, None).await;
    set_license(&kv, &lic_new, LicenseStatus::Active, None).await;
    let both = public_keys_text(&[&old, &new]);
    let host = app(
        &pg_url(pg_port(), "postgres"),
        redis_runtime_config(&redis_url()),
        &[("public_keys", &both)],
    )
    .await;
    assert_eq!(code_of(&host, json!({"token": old_token})).await, "VALID");
    assert_eq!(code_of(&host, json!({"token": new_token})).await, "VALID");
    let jwks = host.get("/.well-known/jwks.json").await.unwrap().json();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);

    let only_new = public_keys_text(&[&new]);
    let host = app(
        &pg_url(pg_port(), "postgres"),
        redis_runtime_config(&redis_url()),
        &[("public_keys", &only_new)],
    )
    .await;
    assert_eq!(
        code_of(&host, json!({"token": old_token})).await,
        "UNKNOWN_KEY"
    );
    assert_eq!(code_of(&host, json!({"token": new_token})).await, "VALID");
    // The key set may also be given as JWKS JSON.
    let jwks_text = jwks.to_string();
    let host = app(
        &pg_url(pg_port(), "postgres"),
        redis_runtime_config(&redis_url()),
        &[("public_keys", &jwks_text)],
    )
    .await;
    assert_eq!(code_of(&host, json!({"token": old_token})).await, "VALID");
}

#[tokio::test]
async fn jwks_is_public_cacheable_and_get_only() {
    let host = host().await;
    let r = host.get("/.well-known/jwks.json").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("public, max-age=300"));
    let key = &r.json()["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["kid"], integration_tests::TEST_KID);
    assert!(key.get("d").is_none(), "never the private part");
    let r = host
        .request("POST", "/.well-known/jwks.json", &[], Vec::new())
        .await
        .unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["error"]["code"], "method_not_allowed");
}

/// One row of the bad-input table: method, headers, body, expected status, expected code.
type Case<'a> = (&'a str, Vec<(&'a str, String)>, String, u16, &'a str);

/// The bad-input table: every malformed request gets its documented 4xx (or a 200
/// `valid:false` for a well-formed request about a bad token), never a 500.
#[tokio::test]
async fn bad_input_table() {
    let host = host().await;
    let good = token_with(&test_signing_key(), now(), 600, "m").2;
    let (h, p, s) = {
        let mut parts = good.split('.');
        (
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
        )
    };
    let b64 = |v: &Value| {
        // URL-safe base64 without padding, written out so the table does not depend on the core.
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = v.to_string().into_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    };
    let hdr =
        |alg: &str| b64(&json!({"alg": alg, "typ": "JWT", "kid": integration_tests::TEST_KID}));
    let long_machine = "m".repeat(300);
    let huge = "a".repeat(20_000);
    // Nesting as deep as the JSON parser goes (its limit is 128) and far deeper: the parse
    // recursion must fit the component's stack, which `.cargo/config.toml` keeps small.
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let deep_header = {
        let text = format!(
            "{{\"alg\":\"EdDSA\",\"kid\":\"{}\",\"x\":{}}}",
            integration_tests::TEST_KID,
            nested(126)
        );
        b64(&serde_json::from_str::<Value>(&text).unwrap())
    };
    // Signed, so the claims are parsed too: deep, well-formed, and missing every claim.
    let deep_claims = license_edge_token::jwt::sign_jws(
        &test_signing_key(),
        json!({"alg": "EdDSA", "kid": integration_tests::TEST_KID})
            .to_string()
            .as_bytes(),
        format!("{{\"x\":{}}}", nested(126)).as_bytes(),
    );
    // (method, headers, body, expected status, expected code)
    let cases: Vec<Case> = vec![
        // No token at all, in the body or as a bearer: the missing credential (issue #13 made
        // the body optional in openapi.json, so this is no longer a malformed body).
        ("POST", vec![], "".into(), 401, "unauthorized"),
        ("POST", vec![], "{}".into(), 401, "unauthorized"),
        (
            "POST",
            vec![],
            "{\"token\":null}".into(),
            400,
            "missing_field",
        ),
        (
            "POST",
            vec![],
            "{\"token\":\"\"}".into(),
            400,
            "invalid_field",
        ),
        (
            "POST",
            vec![],
            "{\"token\":42}".into(),
            400,
            "invalid_field",
        ),
        (
            "POST",
            vec![],
            "{\"token\":[\"a\"]}".into(),
            400,
            "invalid_field",
        ),
        ("POST", vec![], "not json".into(), 400, "invalid_json"),
        ("POST", vec![], "[\"token\"]".into(), 400, "invalid_json"),
        (
            "POST",
            vec![],
            "{\"token\":\"a\",\"token\":\"b\"}".into(),
            400,
            "invalid_json",
        ),
        (
            "POST",
            vec![],
            "{\"token\":\"a\"".into(),
            400,
            "invalid_json",
        ),
        ("POST", vec![], "\u{feff}{}".into(), 400, "invalid_json"),
        (
            "POST",
            vec![("content-type", "text/plain".into())],
            "{}".into(),
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            vec![("content-type", "application/x-www-form-urlencoded".into())],
            "token=a".into(),
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            vec![],
            format!("{{\"token\":\"{huge}\"}}"),
            413,
            "payload_too_large",
        ),
        (
            "POST",
            vec![],
            format!("{{\"token\":\"{good}\",\"machine_id\":\"{long_machine}\"}}"),
            400,
            "invalid_field",
        ),
        (
            "POST",
            vec![],
            format!("{{\"token\":\"{good}\",\"machine_id\":7}}"),
            400,
            "invalid_field",
        ),
        (
            "POST",
            vec![],
            format!("{{\"token\":\"{good}\",\"product\":\"\"}}"),
            400,
            "invalid_field",
        ),
        (
            "POST",
            vec![("authorization", "Basic dXNlcjpwYXNz".into())],
            "".into(),
            400,
            "invalid_field",
        ),
        (
            "POST",
            vec![("authorization", "Bearer".into())],
            "".into(),
            400,
            "invalid_field",
        ),
        (
            "POST",
            vec![("authorization", "Bearer a.b.c".into())],
            format!("{{\"token\":\"{good}\"}}"),
            400,
            "invalid_field",
        ),
        (
            "POST",
            vec![],
            format!("{{\"token\":{}}}", nested(126)),
            400,
            "invalid_field",
        ),
        (
            "POST",
            vec![],
            format!("{{\"token\":{}}}", nested(4000)),
            400,
            "invalid_json",
        ),
        ("GET", vec![], "".into(), 405, "method_not_allowed"),
        ("PUT", vec![], "{}".into(), 405, "method_not_allowed"),
        ("DELETE", vec![], "".into(), 405, "method_not_allowed"),
        ("PATCH", vec![], "{}".into(), 405, "method_not_allowed"),
        // Well-formed requests about bad tokens.
        (
            "POST",
            vec![],
            "{\"token\":\"abc\"}".into(),
            200,
            "MALFORMED",
        ),
        (
            "POST",
            vec![],
            format!("{{\"token\":\"{h}.{p}\"}}"),
            200,
            "MALFORMED",
        ),
        (
            "POST",
            vec![],
            format!("{{\"token\":\"{h}.{p}.{s}.x\"}}"),
            200,
            "MALFORMED",
        ),
        // Padding is not base64url: malformed. An empty signature decodes but is no signature.
        (
            "POST",
            vec![],
            format!("{{\"token\":\"{h}.{p}.{s}=\"}}"),
            200,
            "MALFORMED",
        ),
        (
            "POST",
            vec![],
            format!("{{\"token\":\"{h}.{p}.\"}}"),
            200,
            "BAD_SIGNATURE",
        ),
        (
            "POST",
            vec![],
            format!("{{\"token\":\"{h}=.{p}.{s}\"}}"),
            200,
            "MALFORMED",
        ),
        (
            "POST",
            vec![],
            format!("{{\"token\":\"{h}.{p}.{}\"}}", "A".repeat(86)),
            200,
            "BAD_SIGNATURE",
        ),
        (
            "POST",
            vec![],
            format!("{{\"token\":\"{}.{p}.{s}\"}}", hdr("none")),
            200,
            "UNSUPPORTED_ALGORITHM",
        ),
        (
            "POST",
            vec![],
            format!("{{\"token\":\"{}.{p}.{s}\"}}", hdr("HS256")),
            200,
            "UNSUPPORTED_ALGORITHM",
        ),
        (
            "POST",
            vec![],
            format!("{{\"token\":\"{}.{p}.{s}\"}}", hdr("RS256")),
            200,
            "UNSUPPORTED_ALGORITHM",
        ),
        (
            "POST",
            vec![],
            format!(
                "{{\"token\":\"{}.{p}.{s}\"}}",
                b64(&json!({"alg":"EdDSA","kid":"nope"}))
            ),
            200,
            "UNKNOWN_KEY",
        ),
        (
            "POST",
            vec![],
            format!(
                "{{\"token\":\"{}.{p}.{s}\"}}",
                b64(&json!({"alg":"EdDSA","kid":integration_tests::TEST_KID,"crit":["exp"]}))
            ),
            200,
            "UNSUPPORTED_CRITICAL_HEADER",
        ),
        (
            "POST",
            vec![],
            format!(
                "{{\"token\":\"{}.{p}.{s}\"}}",
                b64(&json!({"alg":"EdDSA","typ":"JWE","kid":integration_tests::TEST_KID}))
            ),
            200,
            "UNSUPPORTED_TYPE",
        ),
        (
            "POST",
            vec![],
            format!("{{\"token\":\"{}\"}}", "a.".repeat(2500)),
            200,
            "TOKEN_TOO_LARGE",
        ),
        (
            "POST",
            vec![],
            format!("{{\"token\":\"{h}.{}.{s}\"}}", b64(&json!({"sub":"x"}))),
            200,
            "BAD_SIGNATURE",
        ),
        (
            "POST",
            vec![],
            format!("{{\"token\":\"{deep_header}.{p}.{s}\"}}"),
            200,
            "BAD_SIGNATURE",
        ),
        (
            "POST",
            vec![],
            format!("{{\"token\":\"{deep_claims}\"}}"),
            200,
            "MISSING_CLAIM",
        ),
    ];
    assert!(cases.len() >= 30);
    for (method, headers, body, status, code) in &cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = host
            .request(method, VALIDATE, &headers, body.clone())
            .await
            .unwrap();
        let v = r.json();
        let label = format!(
            "{method} {headers:?} {}",
            &body.chars().take(80).collect::<String>()
        );
        assert_eq!(r.status, *status, "{label}: {v}");
        if *status == 200 {
            assert_eq!(v["valid"], false, "{label}: {v}");
            assert_eq!(v["code"], *code, "{label}: {v}");
        } else {
            assert_eq!(v["error"]["code"], *code, "{label}: {v}");
            assert!(v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()));
        }
    }
}

/// The verified-token cache: a second validation of a token uses the session's sealed entry,
/// which never skips the license check, never outlives the key, and cannot be forged without
/// the key; ending the session takes the entry away.
#[tokio::test]
async fn the_verified_token_cache_skips_only_the_signature_check() {
    let host = host().await;
    let kv = store(&redis_url()).await;
    let (lic, sess, token) = token_with(&test_signing_key(), now(), 600, "m");
    set_license(&kv, &lic, LicenseStatus::Active, None).await;
    let cache_key = verify_cache_key(&sess);
    assert_eq!(code_of(&host, json!({"token": token})).await, "VALID");
    let first = kv.get(&cache_key).await.unwrap();
    assert!(first.is_some(), "the first validation seals an entry");
    assert_eq!(
        code_of(&host, json!({"token": token, "machine_id": "m"})).await,
        "VALID"
    );
    assert_eq!(
        code_of(&host, json!({"token": token, "machine_id": "x"})).await,
        "MACHINE_MISMATCH"
    );
    // The license is checked on every request, hit or not.
    set_license(&kv, &lic, LicenseStatus::Suspended, None).await;
    assert_eq!(
        code_of(&host, json!({"token": token})).await,
        "LICENSE_SUSPENDED"
    );
    set_license(&kv, &lic, LicenseStatus::Active, None).await;

    // A new token of the same session takes the session's one entry.
    let claims = Claims::new(ISSUER, &lic, "cad-pro", &sess, now(), 900);
    let next = issue(&test_signing_key(), &claims).unwrap();
    assert_eq!(code_of(&host, json!({"token": next})).await, "VALID");
    let second = kv.get(&cache_key).await.unwrap();
    assert!(
        second.is_some() && second != first,
        "the entry is the new token's"
    );

    // Ending the session takes the entry away, so the marker is seen at once.
    let ended = SessionEnded {
        ended_at: now() * 1000,
        token_expires_at: (now() + 900) * 1000,
    };
    end_session(&kv, &sess, &ended).await;
    for t in [&token, &next] {
        assert_eq!(code_of(&host, json!({"token": t})).await, "SESSION_ENDED");
    }
    assert!(
        kv.get(&cache_key).await.unwrap().is_none(),
        "no entry is written for an ended session"
    );

    // An entry written without the sealing key is ignored: a forged token stays forged.
    let impostor = SigningKey::from_seed(integration_tests::TEST_KID, [1; 32]).unwrap();
    let (lic2, sess2, forged) = token_with(&impostor, now(), 600, "m");
    set_license(&kv, &lic2, LicenseStatus::Active, None).await;
    // (An entry is an HMAC in hex; this one has the right shape and a guessed value.)
    kv.set(&verify_cache_key(&sess2), "0".repeat(64).into_bytes())
        .await
        .unwrap();
    assert_eq!(
        code_of(&host, json!({"token": forged})).await,
        "BAD_SIGNATURE"
    );

    // With the cache off (no key), validation works the same.
    let plain = app(
        &pg_url(pg_port(), "postgres"),
        redis_runtime_config(&redis_url()),
        &[("verify_cache_key", "")],
    )
    .await;
    let (lic3, fresh_session, fresh) = token_with(&test_signing_key(), now(), 600, "m");
    set_license(&kv, &lic3, LicenseStatus::Active, None).await;
    assert_eq!(code_of(&plain, json!({"token": fresh})).await, "VALID");
    assert!(kv
        .get(&verify_cache_key(&fresh_session))
        .await
        .unwrap()
        .is_none());
}
