//! The product's two promises under hostile timing, through the real components with real
//! PostgreSQL and Redis: a license never has more seats held than it was sold, and a session
//! end or a license change is seen at the edge on the next request.
//!
//! Each test names the break it holds (issue "Seat and revocation integrity under hostile
//! timing"); each failed on the code before the fix.

use integration_tests::proxy::PausableProxy;
use integration_tests::{
    admin_license, admin_request, app, count_drift, create_license, fill_live_sessions,
    migrated_database, now_ms, pg_client, redis_runtime_config, redis_url, root, world,
    LicenseSpec, TestLicense, World, ISSUER,
};
use license_edge::read_model::{
    decode, license_key, session_key, verify_cache_key, LicenseState, SessionEnded,
};
use license_edge::seats::license_key_hash;
use license_edge_token::{machine_id_hash, verify, KeySet, ValidationOptions};
use serde_json::{json, Value};
use spin_test_host::kv::Backend;
use spin_test_host::{Host, TestResponse};
use std::sync::Arc;
use std::time::Duration;

const ACQUIRE: &str = "/api/v1/licenses/acquire/";

async fn acquire(host: &Host, key: &str, machine: &str) -> TestResponse {
    let auth = format!("Bearer {key}");
    host.request(
        "POST",
        ACQUIRE,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        json!({ "machine_id": machine }).to_string(),
    )
    .await
    .unwrap()
}

async fn session_call(
    host: &Host,
    method: &str,
    key: &str,
    path: &str,
    body: &str,
) -> TestResponse {
    let auth = format!("Bearer {key}");
    host.request(
        method,
        &format!("/api/v1/licenses/sessions/{path}"),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body.to_owned(),
    )
    .await
    .unwrap()
}

async fn validate(host: &Host, token: &str) -> Value {
    host.request(
        "POST",
        "/api/v1/licenses/validate",
        &[],
        json!({ "token": token }).to_string(),
    )
    .await
    .unwrap()
    .json()
}

/// Seats held now, by the database's own rule and clock.
async fn held(db: &str, license: &str) -> i64 {
    pg_client(db)
        .await
        .query_one(
            "SELECT count(*) FROM sessions WHERE license_id = $1 AND seat_until > le_now_ms()",
            &[&license],
        )
        .await
        .unwrap()
        .get(0)
}

fn token_of(r: &TestResponse) -> (String, String) {
    let v = r.json();
    (
        v["session_id"].as_str().expect("a session id").to_owned(),
        v["license_token"].as_str().expect("a token").to_owned(),
    )
}

// --- 1. The seat functions decide on the database's clock -------------------------------------

/// A heartbeat reads its clock just before its lease ends, then waits on the license row lock
/// held by an acquire that saw the lease lapsed and gave the seat to another machine. With the
/// caller's clock, the heartbeat renewed the old session after that commit: two live sessions
/// on a one-seat license. On the database's clock, read after the lock, it finds the lease
/// lapsed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_heartbeat_that_waited_behind_an_acquire_cannot_revive_a_lapsed_lease() {
    let w = world().await;
    let lic = w
        .license(LicenseSpec {
            max_seats: 1,
            ..Default::default()
        })
        .await;
    let (session, _) = token_of(&acquire(&w.host, &lic.key, "machine-a").await);
    let pg = pg_client(&w.db).await;
    // The lease (and its hold) ends 1.5 s from now.
    let lapse = now_ms() + 1500;
    pg.execute(
        "UPDATE sessions SET expires_at = $1, seat_until = $1 WHERE id = $2",
        &[&lapse, &session],
    )
    .await
    .unwrap();

    // An acquire holds the license row lock; the heartbeat starts before the lapse and waits.
    let mut locker = pg_client(&w.db).await;
    let tx = locker.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM licenses WHERE id = $1 FOR UPDATE",
        &[&lic.id],
    )
    .await
    .unwrap();
    let host = Arc::new(w.host);
    let beat = {
        let (host, key, session) = (host.clone(), lic.key.clone(), session.clone());
        tokio::spawn(async move {
            session_call(&host, "PATCH", &key, &format!("{session}/heartbeat/"), "").await
        })
    };
    tokio::time::sleep(Duration::from_millis((lapse - now_ms() + 300).max(0) as u64)).await;
    // Past the lapse, the lock holder gives the seat to machine B and commits.
    let row = tx
        .query_one(
            "SELECT o_outcome FROM le_acquire($1, $2, 'ses_0123456789abcdef0123456789abcdef', NULL, '{}', $3)",
            &[
                &license_key_hash(&lic.key),
                &machine_id_hash("machine-b"),
                &now_ms(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "created", "B got the lapsed seat");
    tx.commit().await.unwrap();

    let r = beat.await.unwrap();
    assert_eq!(
        r.status,
        410,
        "the heartbeat must not revive A: {}",
        r.text()
    );
    assert_eq!(r.json()["error"]["code"], "session_expired");
    assert_eq!(held(&w.db, &lic.id).await, 1, "one seat, one session");
    let a_ended: bool = pg
        .query_one(
            "SELECT ended_at IS NOT NULL FROM sessions WHERE id = $1",
            &[&session],
        )
        .await
        .unwrap()
        .get(0);
    assert!(a_ended, "the acquire marked the lapsed session ended");
}

/// What a client of the randomized run does next.
#[derive(Clone, Copy)]
enum Exit {
    Release,
    Vanish,
    Borrow,
}

/// Many clients acquire, heartbeat at random intervals (some late, past their lease), release,
/// vanish (their leases lapse) and borrow for a moment, on licenses of 1, 2 and 3 seats with
/// leases of a few seconds, and on a large license that already holds 1,500 live sessions. A
/// sampler counts held seats every few milliseconds, and afterwards every session's seat
/// interval [started_at, seat_until) is replayed: at no instant does a license hold more seats
/// than it was sold. Each license's seat count equals its counted sessions at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn never_oversold_over_a_long_randomized_run() {
    const RUN: Duration = Duration::from_secs(75);
    let w = world().await;
    let mut licenses = Vec::new();
    for seats in 1..=3 {
        let lic = create_license(
            &w.db,
            &w.kv,
            LicenseSpec {
                max_seats: seats,
                lease_seconds: 2,
                max_borrow_seconds: 3,
                ..Default::default()
            },
        )
        .await;
        licenses.push((lic, seats as i64));
    }
    let large = w
        .license(LicenseSpec {
            max_seats: 1_504,
            lease_seconds: 2,
            max_borrow_seconds: 3,
            ..Default::default()
        })
        .await;
    fill_live_sessions(&w.db, &large.id, 1..=1_500, 600_000).await;
    licenses.push((large, 1_504));
    let host = Arc::new(w.host);
    let deadline = tokio::time::Instant::now() + RUN;

    let sampler = {
        let db = w.db.clone();
        let ids: Vec<(String, i64)> = licenses.iter().map(|(l, s)| (l.id.clone(), *s)).collect();
        tokio::spawn(async move {
            let pg = pg_client(&db).await;
            let mut samples = 0u64;
            while tokio::time::Instant::now() < deadline {
                for (id, seats) in &ids {
                    let n: i64 = pg
                        .query_one(
                            "SELECT count(*) FROM sessions WHERE license_id = $1 AND seat_until > le_now_ms()",
                            &[id],
                        )
                        .await
                        .unwrap()
                        .get(0);
                    assert!(n <= *seats, "{id}: {n} seats held of {seats}");
                }
                samples += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            samples
        })
    };

    let mut clients = Vec::new();
    for c in 0..20u64 {
        let (lic, _) = licenses[(c % 4) as usize].clone();
        let host = host.clone();
        clients.push(tokio::spawn(async move {
            // A small deterministic generator per client: the run differs by client, and a
            // failure can be replayed.
            let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (c + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            let mut next = move |n: u64| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state % n
            };
            let mut counts = [0u32; 4];
            let mut round = 0;
            while tokio::time::Instant::now() < deadline {
                round += 1;
                let r = acquire(&host, &lic.key, &format!("client-{c}-{round}")).await;
                if r.status != 201 {
                    assert_eq!(r.status, 409, "{}", r.text());
                    counts[0] += 1;
                    tokio::time::sleep(Duration::from_millis(50 + next(200))).await;
                    continue;
                }
                let (session, _) = token_of(&r);
                for _ in 0..next(4) {
                    // Mostly within the 2 s lease, sometimes past it (inside the hold).
                    tokio::time::sleep(Duration::from_millis(300 + next(2500))).await;
                    let r = session_call(
                        &host,
                        "PATCH",
                        &lic.key,
                        &format!("{session}/heartbeat/"),
                        "",
                    )
                    .await;
                    assert!(r.status == 200 || r.status == 410, "{}", r.text());
                    counts[1] += 1;
                }
                let exit = match next(10) {
                    0..=5 => Exit::Release,
                    6..=7 => Exit::Vanish,
                    _ => Exit::Borrow,
                };
                match exit {
                    Exit::Release => {
                        let r = session_call(&host, "DELETE", &lic.key, &format!("{session}/"), "")
                            .await;
                        assert_eq!(r.status, 200, "{}", r.text());
                    }
                    Exit::Vanish => counts[2] += 1,
                    Exit::Borrow => {
                        let r = session_call(
                            &host,
                            "POST",
                            &lic.key,
                            &format!("{session}/borrow/"),
                            r#"{"duration_s": 2}"#,
                        )
                        .await;
                        assert!(r.status == 200 || r.status == 410, "{}", r.text());
                        if r.status == 200 {
                            counts[3] += 1;
                            let r =
                                session_call(&host, "DELETE", &lic.key, &format!("{session}/"), "")
                                    .await;
                            assert_eq!(
                                r.status,
                                409,
                                "a borrowed seat is not released: {}",
                                r.text()
                            );
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(next(300))).await;
            }
            counts
        }));
    }
    let mut totals = [0u32; 4];
    for c in clients {
        for (t, n) in totals.iter_mut().zip(c.await.unwrap()) {
            *t += n;
        }
    }
    let samples = sampler.await.unwrap();

    let pg = pg_client(&w.db).await;
    for (lic, seats) in &licenses {
        let rows = pg
            .query(
                "SELECT started_at, seat_until FROM sessions WHERE license_id = $1",
                &[&lic.id],
            )
            .await
            .unwrap();
        let mut events: Vec<(i64, i64)> = Vec::new();
        for row in &rows {
            events.push((row.get(0), 1));
            events.push((row.get(1), -1));
        }
        // A seat given back at an instant is free for an acquire at that same instant.
        events.sort();
        let (mut now, mut most) = (0i64, 0i64);
        for (_, step) in events {
            now += step;
            most = most.max(now);
        }
        let lapsed: i64 = pg
            .query_one(
                "SELECT count(*) FROM sessions WHERE license_id = $1 AND end_reason = 'lapsed'",
                &[&lic.id],
            )
            .await
            .unwrap()
            .get(0);
        eprintln!(
            "{}: {seats} seats, {} sessions, {lapsed} reclaimed as lapsed, most held at once {most}",
            lic.id,
            rows.len()
        );
        assert!(
            most <= *seats,
            "{}: {most} seats held at once of {seats}",
            lic.id
        );
        assert!(
            rows.len() > *seats as usize,
            "{}: the run made sessions",
            lic.id
        );
    }
    assert_eq!(
        count_drift(&w.db).await,
        Vec::<String>::new(),
        "seat counts drifted"
    );
    eprintln!(
        "refused acquires {}, heartbeats {}, vanished {}, borrows {}, samples {samples}",
        totals[0], totals[1], totals[2], totals[3]
    );
    assert!(totals[0] > 0 && totals[1] > 0 && totals[2] > 0 && totals[3] > 0);
}

/// A seat decision killed between its statements (here: after reclaiming two seats, while its
/// insert waits behind another transaction) by a crash of its PostgreSQL backend: nothing of it
/// stays, so the count still equals the counted sessions, and the next decision works.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_seat_decision_killed_between_its_statements_leaves_the_count_exact() {
    let pg = integration_tests::servers::PgServer::start();
    let db = pg.url("postgres");
    le_migrate::apply(&pg_client(&db).await).await.unwrap();
    let kv = Backend::redis(&redis_url()).unwrap();
    let lic = create_license(
        &db,
        &kv,
        LicenseSpec {
            max_seats: 2,
            ..Default::default()
        },
    )
    .await;
    // Two counted sessions whose holds have passed: the next acquire reclaims them.
    fill_live_sessions(&db, &lic.id, 1..=2, -120_000).await;
    // Another transaction holds the id the acquire will insert, so the acquire waits there,
    // after its reclaim.
    // (On another license, so that the holder does not share-lock this license's row.)
    let other = create_license(&db, &kv, LicenseSpec::default()).await;
    let mut holder = pg_client(&db).await;
    let tx = holder.transaction().await.unwrap();
    let id = "ses_0000000000000000000000000000cafe";
    tx.execute(
        "INSERT INTO sessions (id, license_id, machine_hash, started_at, last_heartbeat_at, expires_at, seat_until) \
         VALUES ($1, $2, 'x', 0, 0, 0, 0)",
        &[&id, &other.id],
    )
    .await
    .unwrap();
    let acquirer = pg_client(&db).await;
    let pid: i32 = acquirer
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let (lic_id, waiting) = (lic.id.clone(), id.to_owned());
    let acquire = tokio::spawn(async move {
        acquirer
            .query_one(
                "SELECT o_outcome FROM le_acquire_seat($1, 'machine', $2, NULL, '{}')",
                &[&lic_id, &waiting],
            )
            .await
    });
    let watcher = pg_client(&db).await;
    let mut blocked = false;
    for _ in 0..200 {
        let row = watcher
            .query_one(
                "SELECT coalesce(wait_event_type, '') FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .await
            .unwrap();
        if row.get::<_, String>(0) == "Lock" {
            blocked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(blocked, "the acquire waits on its insert");
    // It waits on the holder's transaction (the duplicate id), not on a row of the license.
    let waits_on_insert: bool = watcher
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_locks w JOIN pg_locks h \
               ON h.locktype = 'transactionid' AND h.transactionid = w.transactionid AND h.granted \
             JOIN pg_stat_activity a ON a.pid = h.pid \
             WHERE w.pid = $1 AND NOT w.granted AND w.locktype = 'transactionid' \
               AND a.query LIKE 'INSERT INTO sessions%')",
            &[&pid],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        waits_on_insert,
        "the acquire waits on its insert, after its reclaim"
    );
    // The crash: the backend is killed outright; PostgreSQL restarts and recovers.
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        acquire.await.unwrap().is_err(),
        "the acquire died with its backend"
    );
    drop(tx);
    drop(holder);
    drop(watcher);
    // Until the postmaster has reset every backend, a new connection may still be cut; wait
    // for one that survives half a second of queries.
    let mut after = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok((client, conn)) = tokio_postgres::connect(&db, tokio_postgres::NoTls).await else {
            continue;
        };
        tokio::spawn(conn);
        let mut steady = true;
        for _ in 0..5 {
            steady &= client.query_one("SELECT 1", &[]).await.is_ok();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if steady {
            after = Some(client);
            break;
        }
    }
    let after = after.expect("PostgreSQL is back after its crash recovery");
    assert_eq!(count_drift(&db).await, Vec::<String>::new());
    let counted: i32 = after
        .query_one(
            "SELECT counted FROM license_seat_counts WHERE license_id = $1",
            &[&lic.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(counted, 2, "the reclaim died with the decision");
    let row = after
        .query_one(
            "SELECT o_outcome, o_active_seats FROM le_acquire_seat($1, 'machine', $2, NULL, '{}')",
            &[&lic.id, &id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "created");
    assert_eq!(row.get::<_, i32>(1), 1, "two reclaimed, one granted");
    assert_eq!(count_drift(&db).await, Vec::<String>::new());
}

// --- 2. Borrowed and lapsing seats stay counted -----------------------------------------------

/// Acquire, borrow for 30 days, release, repeat: each round used to free the seat while the
/// borrowed token kept working offline. A borrowed seat now stays counted until the borrow
/// ends: the client's release is refused (409, with the borrow's end), and an admin's force
/// release ends the session at the edge but keeps the seat counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_does_not_free_a_borrowed_seat() {
    let w = world().await;
    let lic = w
        .license(LicenseSpec {
            max_seats: 1,
            max_borrow_seconds: 30 * 24 * 3600,
            ..Default::default()
        })
        .await;
    let (session, _) = token_of(&acquire(&w.host, &lic.key, "laptop-1").await);
    let r = session_call(
        &w.host,
        "POST",
        &lic.key,
        &format!("{session}/borrow/"),
        &json!({ "duration_s": 30 * 24 * 3600 }).to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let borrowed = r.json()["license_token"].as_str().unwrap().to_owned();

    let r = session_call(&w.host, "DELETE", &lic.key, &format!("{session}/"), "").await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "session_borrowed");
    assert_eq!(acquire(&w.host, &lic.key, "laptop-2").await.status, 409);
    assert_eq!(validate(&w.host, &borrowed).await["code"], "VALID");

    let r = admin_request(
        &w.host,
        "DELETE",
        &format!("/api/v1/admin/sessions/{session}"),
        Value::Null,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(validate(&w.host, &borrowed).await["code"], "SESSION_ENDED");
    let r = acquire(&w.host, &lic.key, "laptop-2").await;
    assert_eq!(
        r.status,
        409,
        "the borrow still holds the seat: {}",
        r.text()
    );
    assert_eq!(held(&w.db, &lic.id).await, 1);
}

/// A lease that lapsed is still counted while its token can validate (its exp plus the
/// validation leeway), so a token that still validates never shares its seat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_lease_keeps_its_seat_while_its_token_still_validates() {
    let w = world().await;
    let lic = w
        .license(LicenseSpec {
            max_seats: 1,
            lease_seconds: 1,
            ..Default::default()
        })
        .await;
    // The database holds seats for the leeway validate grants (one number, two places).
    let leeway: i64 = pg_client(&w.db)
        .await
        .query_one("SELECT le_token_leeway_ms()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(leeway, license_edge::read_model::TOKEN_LEEWAY_MS);
    let (_, token) = token_of(&acquire(&w.host, &lic.key, "a").await);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        validate(&w.host, &token).await["code"],
        "VALID",
        "within the leeway after exp"
    );
    let r = acquire(&w.host, &lic.key, "b").await;
    assert_eq!(r.status, 409, "{}", r.text());
    let hint = r.json()["error"]["details"]["next_available_hint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(hint.ends_with('Z'), "{hint}");
}

// --- 3. The offline grace is the server's ---------------------------------------------------

/// The token states the license's offline grace; a verifier honouring it accepts the token
/// that long after exp offline and not a second longer, whatever leeway it would like.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_carry_the_licenses_offline_grace_and_offline_verifiers_honour_only_that() {
    let w = world().await;
    let lic = admin_license(&w.host, json!({"max_seats": 2})).await;
    assert_eq!(
        admin_request(
            &w.host,
            "GET",
            &format!("/api/v1/admin/licenses/{}", lic.id),
            Value::Null
        )
        .await
        .json()["offline_grace_seconds"],
        86_400,
        "24 hours by default"
    );
    let chosen = admin_license(
        &w.host,
        json!({"max_seats": 1, "offline_grace_seconds": 7200}),
    )
    .await;
    let r = acquire(&w.host, &chosen.key, "m").await;
    let (_, chosen_token) = token_of(&r);

    let r = acquire(&w.host, &lic.key, "m").await;
    let (session, token) = token_of(&r);
    let keys = KeySet::from_jwks_json(
        &w.host
            .request("GET", "/.well-known/jwks.json", &[], String::new())
            .await
            .unwrap()
            .text(),
    )
    .unwrap();
    let offline = ValidationOptions::new()
        .with_issuer(ISSUER)
        .with_audience(format!("{}/{}", lic.organization_id, lic.product_code))
        .honouring_offline_grace();
    let claims = verify(&token, &keys, &offline, now_ms() / 1000, Some("m"))
        .unwrap()
        .into_claims();
    assert_eq!(claims.offline_grace, Some(86_400));
    let chosen_offline = ValidationOptions::new()
        .with_issuer(ISSUER)
        .with_audience(format!(
            "{}/{}",
            chosen.organization_id, chosen.product_code
        ))
        .honouring_offline_grace();
    let chosen_claims = verify(
        &chosen_token,
        &keys,
        &chosen_offline,
        now_ms() / 1000,
        Some("m"),
    )
    .unwrap()
    .into_claims();
    assert_eq!(chosen_claims.offline_grace, Some(7200), "set at creation");

    // An admin sets a shorter grace; the next token says so.
    let r = admin_request(
        &w.host,
        "PATCH",
        &format!("/api/v1/admin/licenses/{}", lic.id),
        json!({"offline_grace_seconds": 3600}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = session_call(
        &w.host,
        "PATCH",
        &lic.key,
        &format!("{session}/heartbeat/"),
        "",
    )
    .await;
    let (_, renewed) = token_of(&r);
    let exp = verify(&renewed, &keys, &offline, now_ms() / 1000, None)
        .unwrap()
        .claims()
        .exp;
    assert!(verify(&renewed, &keys, &offline, exp + 3599, None).is_ok());
    assert!(verify(&renewed, &keys, &offline, exp + 3600, None).is_err());
    let asks_for_more = offline.clone().with_leeway_secs(60);
    assert!(verify(&renewed, &keys, &asks_for_more, exp + 3600, None).is_err());

    // Out of range: refused, nothing written.
    for bad in [json!(-1), json!(604_801), json!("1d")] {
        let r = admin_request(
            &w.host,
            "PATCH",
            &format!("/api/v1/admin/licenses/{}", lic.id),
            json!({ "offline_grace_seconds": bad }),
        )
        .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    let grace: i32 = pg_client(&w.db)
        .await
        .query_one(
            "SELECT offline_grace_seconds FROM licenses WHERE id = $1",
            &[&lic.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(grace, 3600);
}

// --- 4. The read model converges on the database ----------------------------------------------

async fn set_status(host: &Host, license: &str, action: &str) -> TestResponse {
    admin_request(
        host,
        "POST",
        &format!("/api/v1/admin/licenses/{license}/{action}"),
        Value::Null,
    )
    .await
}

async fn db_status(db: &str, license: &str) -> (String, i64) {
    let row = pg_client(db)
        .await
        .query_one(
            "SELECT status, version FROM licenses WHERE id = $1",
            &[&license],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

async fn kv_state(kv: &Backend, license: &str) -> LicenseState {
    decode(
        &kv.get(&license_key(license))
            .await
            .unwrap()
            .expect("a lic: entry"),
    )
    .unwrap()
}

/// A reinstate commits, and its key-value write is held up on the way to Redis; a suspend
/// commits after it and its write lands first. The late write used to leave `active` at the
/// edge for a suspended license, with no error anywhere. The late writer now reads the
/// license's version back and writes the latest state.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_that_lands_late_does_not_undo_a_newer_change() {
    let db = migrated_database().await;
    let upstream = redis_url()
        .trim_start_matches("redis://")
        .parse()
        .expect("a host:port");
    let proxy = PausableProxy::start(upstream).await;
    let slow = Arc::new(
        app(
            &db,
            redis_runtime_config(&format!("redis://{}", proxy.addr())),
            &[],
        )
        .await,
    );
    let fast = app(&db, redis_runtime_config(&redis_url()), &[]).await;
    let kv = Backend::redis(&redis_url()).unwrap();
    let lic = admin_license(&fast, json!({"max_seats": 1})).await;
    // The slow replica's connection to Redis is made before the pause.
    assert_eq!(set_status(&slow, &lic.id, "suspend").await.status, 200);

    proxy.pause();
    let reinstate = {
        let (slow, id) = (slow.clone(), lic.id.clone());
        tokio::spawn(async move { set_status(&slow, &id, "reinstate").await })
    };
    // Wait until the reinstate committed; its write to Redis is waiting in the proxy.
    for _ in 0..200 {
        if db_status(&db, &lic.id).await.0 == "active" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(db_status(&db, &lic.id).await.0, "active");
    assert_eq!(set_status(&fast, &lic.id, "suspend").await.status, 200);
    assert_eq!(kv_state(&kv, &lic.id).await.status.as_str(), "suspended");
    proxy.resume();
    let r = reinstate.await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());

    let (status, version) = db_status(&db, &lic.id).await;
    let entry = kv_state(&kv, &lic.id).await;
    assert_eq!(
        (entry.status.as_str(), entry.version),
        (status.as_str(), version)
    );
    let r = acquire(&fast, &lic.key, "m").await;
    assert_eq!(r.status, 403, "suspended: {}", r.text());
}

/// Many suspend, reinstate and (at the end) revoke calls on one license through two replicas
/// at once: when they settle, the edge's entry is the database's latest state.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_status_changes_settle_with_the_store_equal_to_the_database() {
    let db = migrated_database().await;
    let a = Arc::new(app(&db, redis_runtime_config(&redis_url()), &[]).await);
    let b = Arc::new(app(&db, redis_runtime_config(&redis_url()), &[]).await);
    let kv = Backend::redis(&redis_url()).unwrap();
    for round in 0..4 {
        let lic = admin_license(&a, json!({"max_seats": 1})).await;
        let mut calls = Vec::new();
        for i in 0..48 {
            let host = if i % 2 == 0 { a.clone() } else { b.clone() };
            let id = lic.id.clone();
            let action = match (i + round) % 3 {
                0 => "suspend",
                _ => "reinstate",
            };
            calls.push(tokio::spawn(async move {
                set_status(&host, &id, action).await.status
            }));
        }
        if round % 2 == 1 {
            let (host, id) = (b.clone(), lic.id.clone());
            calls.push(tokio::spawn(async move {
                set_status(&host, &id, "revoke").await.status
            }));
        }
        for c in calls {
            let status = c.await.unwrap();
            assert!(status == 200 || status == 409, "{status}");
        }
        let (status, version) = db_status(&db, &lic.id).await;
        let entry = kv_state(&kv, &lic.id).await;
        assert_eq!(
            (entry.status.as_str(), entry.version),
            (status.as_str(), version),
            "round {round}"
        );
    }
}

// --- 5. Smaller holes -------------------------------------------------------------------------

async fn table_sizes(db: &str) -> (i64, i64, i64) {
    let row = pg_client(db)
        .await
        .query_one(
            "SELECT (SELECT count(*) FROM audit_events), (SELECT count(*) FROM rate_limits), \
             (SELECT count(*) FROM sessions)",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

/// Unknown license keys used to write an audit row on every seat route: unauthenticated
/// writes without limit. They are refused with nothing written to PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_keys_write_nothing() {
    let w = world().await;
    let lic = w_license(&w, 1).await;
    let (session, _) = token_of(&acquire(&w.host, &lic.key, "m").await);
    let before = table_sizes(&w.db).await;
    for i in 0..20 {
        let key = format!("LE-NOT-A-KEY-{i}");
        assert_eq!(acquire(&w.host, &key, "m").await.status, 401);
        for (method, path, body) in [
            ("PATCH", format!("{session}/heartbeat/"), ""),
            (
                "POST",
                format!("{session}/borrow/"),
                r#"{"duration_s": 60}"#,
            ),
            ("DELETE", format!("{session}/"), ""),
        ] {
            let r = session_call(&w.host, method, &key, &path, body).await;
            assert_eq!(r.status, 401, "{method} {path}: {}", r.text());
        }
    }
    assert_eq!(table_sizes(&w.db).await, before);
}

async fn w_license(w: &World, seats: i32) -> TestLicense {
    w.license(LicenseSpec {
        max_seats: seats,
        ..Default::default()
    })
    .await
}

/// The rate limit is decided before, and apart from, the seat lock: an attempt over the limit
/// is refused while a seat decision holds the license row, instead of queueing behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_attempt_does_not_wait_for_the_seat_lock() {
    let w = world().await;
    let lic = w
        .license(LicenseSpec {
            max_seats: 5,
            rate_limit_per_minute: 1,
            ..Default::default()
        })
        .await;
    // Keep clear of a minute boundary, where the window (and the count) starts again.
    let into_minute = now_ms() % 60_000;
    if into_minute > 50_000 {
        tokio::time::sleep(Duration::from_millis(60_500 - into_minute as u64)).await;
    }
    assert_eq!(acquire(&w.host, &lic.key, "a").await.status, 201);
    let mut locker = pg_client(&w.db).await;
    let tx = locker.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM licenses WHERE id = $1 FOR UPDATE",
        &[&lic.id],
    )
    .await
    .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), acquire(&w.host, &lic.key, "b")).await;
    tx.rollback().await.unwrap();
    let r = r.expect("a refused attempt is answered while the seat lock is held");
    assert_eq!(r.status, 429, "{}", r.text());
}

/// A session end whose `vt:` delete failed (or a validation whose cache write landed after
/// the end) leaves a cache entry beside the end marker. The entry used to vouch for the ended
/// session; the marker is now read on every validation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_entry_left_beside_an_end_marker_does_not_vouch() {
    let w = world().await;
    let lic = w_license(&w, 1).await;
    let (session, token) = token_of(&acquire(&w.host, &lic.key, "m").await);
    assert_eq!(validate(&w.host, &token).await["code"], "VALID");
    assert!(
        w.kv.get(&verify_cache_key(&session))
            .await
            .unwrap()
            .is_some(),
        "the validation cached the token"
    );
    // The end's marker is written; its delete of the cache entry never happened.
    let marker = SessionEnded {
        ended_at: now_ms(),
        token_expires_at: now_ms() + 360_000,
    };
    w.kv.set(
        &session_key(&session),
        license_edge::read_model::encode(&marker),
    )
    .await
    .unwrap();
    assert!(w
        .kv
        .get(&verify_cache_key(&session))
        .await
        .unwrap()
        .is_some());
    assert_eq!(validate(&w.host, &token).await["code"], "SESSION_ENDED");
}

/// validate used to skip the issuer check when it could not read `token_issuer`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_fails_closed_without_its_issuer() {
    let db = migrated_database().await;
    let kv = Backend::redis(&redis_url()).unwrap();
    let manifest = std::fs::read_to_string(root().join("spin.toml")).unwrap();
    let without = manifest
        .replace(
            "validate_settings = \"{{ token_issuer }}\\n{{ verify_cache_key }}",
            "validate_settings = \"{{ verify_cache_key }}",
        )
        .replace(
            "source = \"target/",
            &format!("source = \"{}/target/", root().display()),
        );
    assert_ne!(
        without, manifest,
        "the manifest still has validate's token_issuer"
    );
    let path = std::env::temp_dir().join(format!("le-no-issuer-{}.toml", std::process::id()));
    std::fs::write(&path, without).unwrap();
    let normal = app(&db, redis_runtime_config(&redis_url()), &[]).await;
    let lic = create_license(&db, &kv, LicenseSpec::default()).await;
    let (_, token) = token_of(&acquire(&normal, &lic.key, "m").await);
    assert_eq!(validate(&normal, &token).await["code"], "VALID");

    let host = spin_test_host::HostBuilder::new(&path)
        .read_env(false)
        .runtime_config(redis_runtime_config(&redis_url()))
        .variable("database_url", &db)
        .variable("db_host", "127.0.0.1:1")
        .variable(
            "signing_key",
            integration_tests::test_signing_key().to_secret_text(),
        )
        .variable(
            "public_keys",
            integration_tests::public_keys_text(&[&integration_tests::test_signing_key()]),
        )
        .variable("admin_token", integration_tests::TEST_ADMIN_TOKEN)
        .build()
        .await
        .unwrap();
    let r = host
        .request(
            "POST",
            "/api/v1/licenses/validate",
            &[],
            json!({ "token": token }).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(
        r.status,
        500,
        "no answer without the issuer check: {}",
        r.text()
    );
    assert_eq!(r.json()["error"]["code"], "internal_error");
    let _ = std::fs::remove_file(path);
}

/// `sess:` and `vt:` entries used to stay in Redis for ever. The sweep deletes those of
/// sessions no token of which can validate any more, and only those, and remembers where it
/// stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_deletes_entries_no_token_can_use_and_keeps_the_rest() {
    let w = world().await;
    let lic = w_license(&w, 3).await;
    let (old, old_token) = token_of(&acquire(&w.host, &lic.key, "old").await);
    let (live, live_token) = token_of(&acquire(&w.host, &lic.key, "live").await);
    let (ended, ended_token) = token_of(&acquire(&w.host, &lic.key, "ended").await);
    for t in [&old_token, &live_token, &ended_token] {
        assert_eq!(validate(&w.host, t).await["code"], "VALID");
    }
    for s in [&old, &ended] {
        let r = session_call(&w.host, "DELETE", &lic.key, &format!("{s}/"), "").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert!(w.kv.get(&session_key(&old)).await.unwrap().is_some());
    // `old` ended long ago: its tokens expired more than the leeway ago.
    pg_client(&w.db)
        .await
        .execute(
            "UPDATE sessions SET expires_at = le_now_ms() - le_seat_hold_ms() - 1000 WHERE id = $1",
            &[&old],
        )
        .await
        .unwrap();
    w.kv.set(&verify_cache_key(&old), b"stale".to_vec())
        .await
        .unwrap();

    let r = admin_request(&w.host, "POST", "/api/v1/admin/kv/sweep", Value::Null).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert!(v["sessions_swept"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(v["more"], false);
    assert!(w.kv.get(&session_key(&old)).await.unwrap().is_none());
    assert!(w.kv.get(&verify_cache_key(&old)).await.unwrap().is_none());
    assert!(
        w.kv.get(&session_key(&ended)).await.unwrap().is_some(),
        "its token still runs"
    );
    assert!(w.kv.get(&verify_cache_key(&live)).await.unwrap().is_some());
    assert_eq!(
        validate(&w.host, &ended_token).await["code"],
        "SESSION_ENDED"
    );
    assert_eq!(validate(&w.host, &live_token).await["code"], "VALID");

    let again = admin_request(&w.host, "POST", "/api/v1/admin/kv/sweep", Value::Null).await;
    assert_eq!(
        again.json()["sessions_swept"],
        0,
        "the sweep goes on from where it stopped"
    );
    let audit_before = table_sizes(&w.db).await;
    let r = admin_request(&w.host, "POST", "/api/v1/admin/kv/sweep?x=1", Value::Null).await;
    assert_eq!(r.status, 400);
    assert_eq!(table_sizes(&w.db).await, audit_before);
}

/// Ended sessions and audit events leave the hot tables once past the retention the operator
/// gives, and nothing else does: not a session still counted for a seat, not a recent one, not
/// one whose key-value entries the sweep has not deleted yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prune_deletes_only_what_is_past_its_retention() {
    let w = world().await;
    let lic = w_license(&w, 5).await;
    let (old, _) = token_of(&acquire(&w.host, &lic.key, "old").await);
    let (recent, _) = token_of(&acquire(&w.host, &lic.key, "recent").await);
    let (live, _) = token_of(&acquire(&w.host, &lic.key, "live").await);
    for s in [&old, &recent] {
        let r = session_call(&w.host, "DELETE", &lic.key, &format!("{s}/"), "").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // The next acquire reclaims the two released sessions' seats (they are no longer counted).
    assert_eq!(acquire(&w.host, &lic.key, "next").await.status, 201);
    let pg = pg_client(&w.db).await;
    pg.execute(
        "UPDATE sessions SET expires_at = le_now_ms() - 100 * 86400000::bigint WHERE id = $1",
        &[&old],
    )
    .await
    .unwrap();
    pg.execute(
        "INSERT INTO audit_events (occurred_at, actor, action, outcome) \
         VALUES (le_now_ms() - 400 * 86400000::bigint, 'admin', 'test.old', 'ok')",
        &[],
    )
    .await
    .unwrap();
    let body = json!({"sessions_older_than_days": 90, "audit_older_than_days": 365});
    let exists = |id: String| {
        let pg = &pg;
        async move {
            pg.query_one("SELECT count(*) FROM sessions WHERE id = $1", &[&id])
                .await
                .unwrap()
                .get::<_, i64>(0)
                == 1
        }
    };

    // Before any sweep, no session goes: its entries may still be in the store.
    let r = admin_request(&w.host, "POST", "/api/v1/admin/prune", body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["sessions_deleted"], 0);
    assert_eq!(r.json()["audit_events_deleted"], 1, "{}", r.text());
    assert!(exists(old.clone()).await);

    assert_eq!(
        admin_request(&w.host, "POST", "/api/v1/admin/kv/sweep", Value::Null)
            .await
            .status,
        200
    );
    let r = admin_request(&w.host, "POST", "/api/v1/admin/prune", body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        (
            r.json()["sessions_deleted"].clone(),
            r.json()["more"].clone()
        ),
        (json!(1), json!(false)),
        "{}",
        r.text()
    );
    assert!(!exists(old).await, "past its retention");
    assert!(exists(recent).await, "ended, but recently");
    assert!(exists(live).await, "holding its seat");
    let again = admin_request(&w.host, "POST", "/api/v1/admin/prune", body).await;
    assert_eq!(again.json()["sessions_deleted"], 0);

    let before = table_sizes(&w.db).await;
    for bad in [
        json!({"sessions_older_than_days": 0}),
        json!({"audit_older_than_days": 3651}),
        json!({"days": 1}),
    ] {
        let r = admin_request(&w.host, "POST", "/api/v1/admin/prune", bad.clone()).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    assert_eq!(
        table_sizes(&w.db).await,
        before,
        "a refused prune deletes nothing"
    );
}
