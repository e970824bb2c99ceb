//! Seats through the real acquire and validate components, with real PostgreSQL and Redis:
//! the life cycle, re-acquire, the seat limit, lapse, release, borrow, every refusal (each
//! leaving the seats and licenses untouched), rate limiting and SQL injection attempts.

use integration_tests::{pg_client, world, LicenseSpec, World};
use serde_json::{json, Value};
use spin_test_host::TestResponse;

const ACQUIRE: &str = "/api/v1/licenses/acquire/";

/// The seat routes as this suite calls them.
trait SeatCalls {
    async fn acquire(&self, key: &str, machine: &str) -> TestResponse;
    async fn session(&self, method: &str, key: &str, path: &str, body: &str) -> TestResponse;
    async fn validate(&self, token: &str) -> Value;
    async fn state(&self) -> String;
    async fn live_sessions(&self, license: &str) -> i64;
}

impl SeatCalls for World {
    async fn acquire(&self, key: &str, machine: &str) -> TestResponse {
        let auth = format!("Bearer {key}");
        let body = json!({"machine_id": machine, "metadata": {"hostname": "ws-1"}}).to_string();
        self.host
            .request(
                "POST",
                ACQUIRE,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                    ("user-agent", "cad/1.0"),
                ],
                body,
            )
            .await
            .unwrap()
    }

    async fn session(&self, method: &str, key: &str, path: &str, body: &str) -> TestResponse {
        let auth = format!("Bearer {key}");
        let url = format!("/api/v1/licenses/sessions/{path}");
        self.host
            .request(
                method,
                &url,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                body.to_owned(),
            )
            .await
            .unwrap()
    }

    async fn validate(&self, token: &str) -> Value {
        let r = self
            .host
            .request(
                "POST",
                "/api/v1/licenses/validate",
                &[],
                json!({"token": token}).to_string(),
            )
            .await
            .unwrap();
        r.json()
    }

    /// Everything but the audit trail and rate counters, to prove refusals change nothing.
    async fn state(&self) -> String {
        let c = pg_client(&self.db).await;
        let mut out = String::new();
        for sql in [
            "SELECT id, status, max_seats::text, updated_at::text FROM licenses ORDER BY id",
            "SELECT id, license_id, expires_at::text, coalesce(ended_at::text, '-'), last_heartbeat_at::text FROM sessions ORDER BY id",
        ] {
            for row in c.query(sql, &[]).await.unwrap() {
                let cols: Vec<String> = (0..row.len()).map(|i| format!("{:?}", row.get::<_, Option<String>>(i).or(Some(String::new())))).collect();
                out.push_str(&cols.join("|"));
                out.push('\n');
            }
        }
        out
    }

    async fn live_sessions(&self, license: &str) -> i64 {
        pg_client(&self.db)
            .await
            .query_one(
                "SELECT count(*) FROM sessions WHERE license_id = $1 AND ended_at IS NULL AND expires_at > $2",
                &[&license, &integration_tests::now_ms()],
            )
            .await
            .unwrap()
            .get(0)
    }
}

#[tokio::test]
async fn the_whole_life_of_a_seat() {
    let w = world().await;
    let lic = w
        .license(LicenseSpec {
            max_borrow_seconds: 7200,
            ..Default::default()
        })
        .await;

    let r = w.acquire(&lic.key, "machine-1").await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    let session = v["session_id"].as_str().unwrap().to_owned();
    let token = v["license_token"].as_str().unwrap().to_owned();
    assert!(session.starts_with("ses_"));
    assert_eq!(v["heartbeat_interval_s"], 180);
    assert_eq!(v["license"]["id"], lic.id);
    assert_eq!(v["license"]["max_seats"], 5);
    assert_eq!(v["active_seats"], 1);
    assert!(r.header("x-ratelimit-limit").is_some());
    let checked = w.validate(&token).await;
    assert_eq!(checked["code"], "VALID", "{checked}");
    assert_eq!(checked["license"]["sid"], session);
    assert_eq!(checked["license"]["org"], lic.organization_id);
    assert_eq!(checked["license"]["plan"], "pro");
    assert_eq!(checked["license"]["features"], json!(["export", "cloud"]));
    assert_eq!(checked["license"]["max_seats"], 5);
    assert_eq!(
        checked["license"]["mid"],
        license_edge_token::machine_id_hash("machine-1")
    );

    let r = w
        .session("PATCH", &lic.key, &format!("{session}/heartbeat/"), "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let renewed = r.json()["license_token"].as_str().unwrap().to_owned();
    assert_eq!(w.validate(&renewed).await["code"], "VALID");

    let r = w
        .session(
            "POST",
            &lic.key,
            &format!("{session}/borrow/"),
            r#"{"duration_s": 3600}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let borrowed = r.json();
    let borrowed_token = borrowed["license_token"].as_str().unwrap().to_owned();
    let exp = w.validate(&borrowed_token).await["license"]["exp"]
        .as_i64()
        .unwrap();
    assert!(
        exp >= integration_tests::now_ms() / 1000 + 3500,
        "the token runs to the borrow end"
    );

    // A borrowed session cannot be handed back by its client: its token works offline until
    // the borrow ends, so the seat stays counted until then.
    let r = w
        .session("DELETE", &lic.key, &format!("{session}/"), "")
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "session_borrowed");
    assert!(r.json()["error"]["details"]["borrowed_until"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(w.validate(&borrowed_token).await["code"], "VALID");
    // An admin can end it at the edge; its seat stays counted to the borrow's end.
    let r = w
        .host
        .request(
            "DELETE",
            &format!("/api/v1/admin/sessions/{session}"),
            &[("authorization", &integration_tests::admin_auth())],
            String::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["outcome"], "released");
    assert_ne!(r.json()["seat_until"], r.json()["ended_at"]);
    let r = w
        .session("DELETE", &lic.key, &format!("{session}/"), "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut first = r.json();
    assert_eq!(first["session_id"], session);
    let again = w
        .session("DELETE", &lic.key, &format!("{session}/"), "")
        .await;
    assert_eq!(again.status, 200);
    // The same answer, under its own request id.
    let mut again = again.json();
    assert_ne!(again["meta"], first["meta"]);
    for v in [&mut again, &mut first] {
        v.as_object_mut().map(|o| o.remove("meta"));
    }
    assert_eq!(again, first, "releasing again gives the same answer");

    for t in [&token, &renewed, &borrowed_token] {
        assert_eq!(w.validate(t).await["code"], "SESSION_ENDED");
    }
    let r = w
        .session("PATCH", &lic.key, &format!("{session}/heartbeat/"), "")
        .await;
    assert_eq!(r.status, 410);
    assert_eq!(r.json()["error"]["code"], "session_expired");
    assert_eq!(w.live_sessions(&lic.id).await, 0);
    let held: i64 = pg_client(&w.db)
        .await
        .query_one(
            "SELECT count(*) FROM sessions WHERE license_id = $1 AND seat_until > le_now_ms()",
            &[&lic.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(held, 1, "the borrowed seat is still counted");

    let audit: Vec<String> = pg_client(&w.db)
        .await
        .query(
            "SELECT action || ':' || outcome FROM audit_events WHERE license_id = $1 ORDER BY id",
            &[&lic.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        audit,
        vec![
            "session.acquire:created",
            "session.heartbeat:renewed",
            "session.borrow:borrowed",
            "session.release:borrowed",
            "session.release:released",
            "session.release:already_ended",
            "session.release:already_ended",
            "session.heartbeat:session_expired",
        ]
    );
}

#[tokio::test]
async fn the_same_machine_gets_its_live_session_back() {
    let w = world().await;
    let lic = w
        .license(LicenseSpec {
            max_seats: 1,
            ..Default::default()
        })
        .await;
    let first = w.acquire(&lic.key, "m").await;
    assert_eq!(first.status, 201);
    let again = w.acquire(&lic.key, "m").await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["session_id"], first.json()["session_id"]);
    assert!(again.json()["license_token"].is_string());
    assert_eq!(w.live_sessions(&lic.id).await, 1);
}

#[tokio::test]
async fn a_full_license_answers_409_and_a_release_frees_the_seat_at_once() {
    let w = world().await;
    let lic = w
        .license(LicenseSpec {
            max_seats: 2,
            ..Default::default()
        })
        .await;
    let a = w.acquire(&lic.key, "a").await.json();
    assert_eq!(w.acquire(&lic.key, "b").await.status, 201);
    let before = w.state().await;
    let r = w.acquire(&lic.key, "c").await;
    assert_eq!(r.status, 409);
    let v = r.json();
    assert_eq!(v["error"]["code"], "no_seats_available");
    assert_eq!(v["error"]["details"]["max_seats"], 2);
    assert_eq!(v["error"]["details"]["active_seats"], 2);
    assert!(v["error"]["details"]["next_available_hint"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(w.state().await, before, "a refused acquire changes nothing");
    let session = a["session_id"].as_str().unwrap();
    assert_eq!(w.session("DELETE", &lic.key, session, "").await.status, 200);
    assert_eq!(w.acquire(&lic.key, "c").await.status, 201);
}

#[tokio::test]
async fn a_lease_not_renewed_lapses_and_frees_its_seat() {
    let w = world().await;
    let lic = w
        .license(LicenseSpec {
            max_seats: 1,
            ..Default::default()
        })
        .await;
    let v = w.acquire(&lic.key, "a").await.json();
    let session = v["session_id"].as_str().unwrap().to_owned();
    assert_eq!(w.acquire(&lic.key, "b").await.status, 409);
    // Move the lease end into the past, as if six minutes and the validation leeway had gone
    // by without a heartbeat.
    pg_client(&w.db)
        .await
        .execute(
            "UPDATE sessions SET expires_at = le_now_ms() - le_seat_hold_ms() - 1, \
             seat_until = le_now_ms() - 1 WHERE id = $1",
            &[&session],
        )
        .await
        .unwrap();
    let r = w
        .session("PATCH", &lic.key, &format!("{session}/heartbeat"), "")
        .await;
    assert_eq!(r.status, 410, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "session_expired");
    assert_eq!(
        w.acquire(&lic.key, "b").await.status,
        201,
        "the lapsed seat is free with no job"
    );
}

#[tokio::test]
async fn borrow_rules() {
    let w = world().await;
    let no_borrow = w.license(LicenseSpec::default()).await;
    let s = w.acquire(&no_borrow.key, "m").await.json()["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = w
        .session(
            "POST",
            &no_borrow.key,
            &format!("{s}/borrow"),
            r#"{"duration_s":60}"#,
        )
        .await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (403, Some("borrow_not_allowed"))
    );

    let lic = w
        .license(LicenseSpec {
            max_borrow_seconds: 600,
            ..Default::default()
        })
        .await;
    let s = w.acquire(&lic.key, "m").await.json()["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = w.state().await;
    let r = w
        .session(
            "POST",
            &lic.key,
            &format!("{s}/borrow"),
            r#"{"duration_s":601}"#,
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "borrow_too_long");
    assert_eq!(r.json()["error"]["details"]["max_seconds"], 600);
    for bad in [
        "",
        "{}",
        r#"{"duration_s":0}"#,
        r#"{"duration_s":"1"}"#,
        "nope",
    ] {
        let r = w
            .session("POST", &lic.key, &format!("{s}/borrow"), bad)
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    assert_eq!(w.state().await, before);
    let r = w
        .session(
            "POST",
            &lic.key,
            &format!("{s}/borrow"),
            r#"{"duration_s":600}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// One refusal: method, path, authorization, content type, body, status, code.
type Case<'a> = (
    &'a str,
    String,
    Option<String>,
    Option<&'a str>,
    String,
    u16,
    &'a str,
);

#[tokio::test]
async fn every_refusal_leaves_seats_and_licenses_unchanged() {
    let w = world().await;
    let lic = w
        .license(LicenseSpec {
            max_seats: 1,
            ..Default::default()
        })
        .await;
    let held = w.acquire(&lic.key, "holder").await.json()["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let suspended = w
        .license(LicenseSpec {
            status: "suspended",
            ..Default::default()
        })
        .await;
    let revoked = w
        .license(LicenseSpec {
            status: "revoked",
            ..Default::default()
        })
        .await;
    let expired = w
        .license(LicenseSpec {
            expires_at: Some(integration_tests::now_ms() - 1000),
            ..Default::default()
        })
        .await;
    let other = w.license(LicenseSpec::default()).await;
    let before = w.state().await;

    let body = json!({"machine_id": "m2"}).to_string();
    let key = format!("Bearer {}", lic.key);
    // (method, path, authorization, content type, body, status, code)
    let cases: Vec<Case> = vec![
        (
            "POST",
            ACQUIRE.into(),
            None,
            Some("application/json"),
            body.clone(),
            401,
            "unauthorized",
        ),
        (
            "POST",
            ACQUIRE.into(),
            Some("Bearer".into()),
            Some("application/json"),
            body.clone(),
            401,
            "unauthorized",
        ),
        (
            "POST",
            ACQUIRE.into(),
            Some(format!("Basic {}", lic.key)),
            Some("application/json"),
            body.clone(),
            401,
            "unauthorized",
        ),
        (
            "POST",
            ACQUIRE.into(),
            Some("Bearer LE-NOT-A-KEY".into()),
            Some("application/json"),
            body.clone(),
            401,
            "unauthorized",
        ),
        (
            "POST",
            ACQUIRE.into(),
            Some(format!("Bearer {}", "x".repeat(300))),
            Some("application/json"),
            body.clone(),
            401,
            "unauthorized",
        ),
        (
            "POST",
            ACQUIRE.into(),
            Some(format!("Bearer {}", suspended.key)),
            Some("application/json"),
            body.clone(),
            403,
            "license_suspended",
        ),
        (
            "POST",
            ACQUIRE.into(),
            Some(format!("Bearer {}", revoked.key)),
            Some("application/json"),
            body.clone(),
            403,
            "license_revoked",
        ),
        (
            "POST",
            ACQUIRE.into(),
            Some(format!("Bearer {}", expired.key)),
            Some("application/json"),
            body.clone(),
            403,
            "license_expired",
        ),
        (
            "POST",
            ACQUIRE.into(),
            Some(key.clone()),
            Some("application/json"),
            "not json".into(),
            400,
            "invalid_json",
        ),
        (
            "POST",
            ACQUIRE.into(),
            Some(key.clone()),
            Some("application/json"),
            "{}".into(),
            400,
            "missing_field",
        ),
        (
            "POST",
            ACQUIRE.into(),
            Some(key.clone()),
            Some("application/json"),
            r#"{"machine_id":""}"#.into(),
            400,
            "invalid_field",
        ),
        (
            "POST",
            ACQUIRE.into(),
            Some(key.clone()),
            Some("application/json"),
            r#"{"machine_id":5}"#.into(),
            400,
            "invalid_field",
        ),
        (
            "POST",
            ACQUIRE.into(),
            Some(key.clone()),
            Some("application/json"),
            r#"{"machine_id":"m","metadata":"x"}"#.into(),
            400,
            "invalid_field",
        ),
        // As deep as the JSON parser goes, and deeper: the component's small stack holds both.
        (
            "POST",
            ACQUIRE.into(),
            Some(key.clone()),
            Some("application/json"),
            format!(
                r#"{{"machine_id":"m","metadata":"x","deep":{}{}}}"#,
                "[".repeat(126),
                "]".repeat(126)
            ),
            400,
            "invalid_field",
        ),
        (
            "POST",
            ACQUIRE.into(),
            Some(key.clone()),
            Some("application/json"),
            format!(r#"{{"machine_id":"m","deep":{}}}"#, "[".repeat(4000)),
            400,
            "invalid_json",
        ),
        (
            "POST",
            ACQUIRE.into(),
            Some(key.clone()),
            Some("application/json"),
            format!(r#"{{"machine_id":"{}"}}"#, "m".repeat(20_000)),
            413,
            "payload_too_large",
        ),
        (
            "POST",
            ACQUIRE.into(),
            Some(key.clone()),
            Some("text/plain"),
            body.clone(),
            415,
            "unsupported_media_type",
        ),
        (
            "GET",
            ACQUIRE.into(),
            Some(key.clone()),
            None,
            String::new(),
            405,
            "method_not_allowed",
        ),
        (
            "PUT",
            ACQUIRE.into(),
            Some(key.clone()),
            Some("application/json"),
            body.clone(),
            405,
            "method_not_allowed",
        ),
        (
            "POST",
            ACQUIRE.into(),
            Some(key.clone()),
            Some("application/json"),
            body.clone(),
            409,
            "no_seats_available",
        ),
        (
            "PATCH",
            format!("/api/v1/licenses/sessions/{held}/heartbeat"),
            None,
            None,
            String::new(),
            401,
            "unauthorized",
        ),
        (
            "PATCH",
            format!("/api/v1/licenses/sessions/{held}/heartbeat"),
            Some(format!("Bearer {}", other.key)),
            None,
            String::new(),
            404,
            "session_not_found",
        ),
        (
            "PATCH",
            "/api/v1/licenses/sessions/not-a-session/heartbeat".into(),
            Some(key.clone()),
            None,
            String::new(),
            404,
            "session_not_found",
        ),
        (
            "PATCH",
            format!("/api/v1/licenses/sessions/ses_{}/heartbeat", "0".repeat(32)),
            Some(key.clone()),
            None,
            String::new(),
            404,
            "session_not_found",
        ),
        (
            "GET",
            format!("/api/v1/licenses/sessions/{held}/heartbeat"),
            Some(key.clone()),
            None,
            String::new(),
            405,
            "method_not_allowed",
        ),
        (
            "DELETE",
            format!("/api/v1/licenses/sessions/{held}"),
            Some(format!("Bearer {}", other.key)),
            None,
            String::new(),
            404,
            "session_not_found",
        ),
        (
            "DELETE",
            format!("/api/v1/licenses/sessions/{held}"),
            None,
            None,
            String::new(),
            401,
            "unauthorized",
        ),
        (
            "POST",
            format!("/api/v1/licenses/sessions/{held}"),
            Some(key.clone()),
            None,
            String::new(),
            405,
            "method_not_allowed",
        ),
        (
            "GET",
            format!("/api/v1/licenses/sessions/{held}/nothing"),
            Some(key.clone()),
            None,
            String::new(),
            404,
            "not_found",
        ),
        (
            "POST",
            format!("/api/v1/licenses/sessions/{held}/borrow"),
            Some(key.clone()),
            Some("application/json"),
            r#"{"duration_s":60}"#.into(),
            403,
            "borrow_not_allowed",
        ),
    ];
    let mut errors = Vec::new();
    for (method, path, auth, ct, body, status, code) in &cases {
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = auth {
            headers.push(("authorization", a));
        }
        if let Some(c) = ct {
            headers.push(("content-type", c));
        }
        let r = w
            .host
            .request(method, path, &headers, body.clone())
            .await
            .unwrap();
        let label = format!(
            "{method} {path} {auth:?} {}",
            &body.chars().take(60).collect::<String>()
        );
        assert_eq!(r.status, *status, "{label}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], *code, "{label}");
        assert_eq!(w.state().await, before, "{label} changed the database");
        errors.push(r.json()["error"].clone());
    }
    // One answer for missing, malformed and unknown keys: nothing tells which keys exist.
    assert!(
        errors[..5].windows(2).all(|pair| pair[0] == pair[1]),
        "{errors:?}"
    );
}

#[tokio::test]
async fn acquire_attempts_are_rate_limited_per_license() {
    let w = world().await;
    let lic = w
        .license(LicenseSpec {
            rate_limit_per_minute: 3,
            max_seats: 10,
            ..Default::default()
        })
        .await;
    for i in 0..3 {
        let r = w.acquire(&lic.key, &format!("m{i}")).await;
        assert_eq!(r.status, 201);
        assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            Some(&*(2 - i).to_string())
        );
    }
    let before = w.state().await;
    let r = w.acquire(&lic.key, "m9").await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "rate_limited");
    let retry: u32 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    let reset: i64 = r.header("x-ratelimit-reset").unwrap().parse().unwrap();
    assert!(reset * 1000 > integration_tests::now_ms());
    assert_eq!(w.state().await, before);
    // Another license is not affected.
    let other = w.license(LicenseSpec::default()).await;
    assert_eq!(w.acquire(&other.key, "m").await.status, 201);
}

#[tokio::test]
async fn sql_injection_strings_are_only_data() {
    let w = world().await;
    let lic = w
        .license(LicenseSpec {
            max_seats: 20,
            ..Default::default()
        })
        .await;
    let evil = [
        "'; DROP TABLE sessions; --",
        "\" OR 1=1 --",
        "m' OR '1'='1",
        "$1); DELETE FROM licenses; --",
        "\\'; SELECT pg_sleep(10); --",
        "ses_'||(SELECT key_hash FROM licenses LIMIT 1)||'",
    ];
    for (i, machine) in evil.iter().enumerate() {
        let r = w.acquire(&lic.key, machine).await;
        assert_eq!(r.status, 201, "{machine}: {}", r.text());
        assert_eq!(w.live_sessions(&lic.id).await, i as i64 + 1);
        let r = w.acquire(machine, "m").await;
        assert_eq!(r.status, 401, "{machine} as a key");
        let r = w
            .session("DELETE", &lic.key, &integration_tests::encode(machine), "")
            .await;
        assert_eq!(r.status, 404, "{machine} as a session id");
    }
    let c = pg_client(&w.db).await;
    let tables: i64 = c
        .query_one("SELECT count(*) FROM information_schema.tables WHERE table_name IN ('sessions','licenses')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 2);
}
