//! Usage figures (`GET /api/v1/admin/licenses/{id}/usage`, `/organizations/{id}/usage`),
//! computed in PostgreSQL from the sessions and seat decisions these tests make: peaks per
//! hour across hour boundaries (sessions that started earlier and still hold count in every
//! hour they span; a seat handed over at one instant is one seat), refusals by reason (the
//! rate-limited ones, which leave no audit event, counted by `le_acquire_attempt`), unique
//! machines and users, and tenancy (a key sees only its organization).

use integration_tests::{
    admin_license, admin_request, app, migrated_database, pg_client, redis_runtime_config,
    redis_url, AdminLicense,
};
use license_edge::admin::usage::HOUR_MS;
use license_edge::time::rfc3339_from_millis;
use serde_json::{json, Value};
use spin_test_host::Host;

const MIN: i64 = 60_000;

struct Session<'a> {
    license: &'a str,
    name: &'a str,
    machine: &'a str,
    user: Option<&'a str>,
    start: i64,
    end: i64,
    live: bool,
}

/// Inserts a session that held its seat over `[start, end)` (its `seat_until` is `end`).
async fn insert(db: &str, s: Session<'_>) {
    let pg = pg_client(db).await;
    let id = format!("ses_{:0>32}", s.name);
    let (ended, reason) = if s.live {
        (None, None)
    } else {
        (Some(s.end), Some("released"))
    };
    pg.execute(
        "INSERT INTO sessions (id, license_id, machine_hash, metadata, started_at, last_heartbeat_at, \
         expires_at, seat_until, counted, ended_at, end_reason, user_sub) \
         VALUES ($1, $2, md5($3), '{}', $4, $4, $5, $5, $6, $7, $8, $9)",
        &[
            &id, &s.license, &s.machine, &s.start, &s.end, &s.live, &ended, &reason, &s.user,
        ],
    )
    .await
    .unwrap();
}

async fn usage(host: &Host, path: &str) -> Value {
    let r = admin_request(host, "GET", path, Value::Null).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

fn peaks(v: &Value, series: &str) -> Vec<u64> {
    v[series]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["peak_seats"].as_u64().unwrap())
        .collect()
}

async fn second_license(host: &Host, first: &AdminLicense) -> String {
    let r = admin_request(
        host,
        "POST",
        "/api/v1/admin/licenses",
        json!({"product_id": first.product_id, "max_seats": 3}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn peak_seats_per_hour_follow_overlapping_sessions_across_hour_boundaries() {
    let db = migrated_database().await;
    let host = app(&db, redis_runtime_config(&redis_url()), &[]).await;
    let lic = admin_license(&host, json!({"max_seats": 10})).await;
    let other = second_license(&host, &lic).await;
    let now = integration_tests::now_ms();
    let h = now - now.rem_euclid(HOUR_MS) - 10 * HOUR_MS;
    let l = lic.id.as_str();
    let s = |name, machine, user, start, end| Session {
        license: l,
        name,
        machine,
        user,
        start,
        end,
        live: false,
    };
    for session in [
        // Ended before the range: counts nowhere.
        s("g", "m-g", None, h - 3 * HOUR_MS, h - HOUR_MS),
        // Started before the range, runs into hour 2.
        s("f", "m-f", None, h - 2 * HOUR_MS, h + 150 * MIN),
        // Started before the range, ends in hour 1.
        s("a", "m-a", Some("user-1"), h - 30 * MIN, h + 90 * MIN),
        s("b", "m-a", Some("user-2"), h + 10 * MIN, h + 20 * MIN),
        // Takes its seat at the instant b ends: one seat, not two.
        s("c", "m-c", Some("user-1"), h + 20 * MIN, h + 70 * MIN),
        // Crosses from hour 0 into hour 1.
        s("d", "m-d", None, h + 55 * MIN, h + 65 * MIN),
        s("e", "m-e", None, h + 3 * HOUR_MS, h + 3 * HOUR_MS + MIN),
        // Takes e's seat at the instant it ends: hour 3's peak stays 1.
        s(
            "e2",
            "m-e2",
            None,
            h + 3 * HOUR_MS + MIN,
            h + 3 * HOUR_MS + 2 * MIN,
        ),
        // Ends at the instant hour 2 starts: not in hour 2.
        s("z", "m-z", None, h + 90 * MIN, h + 2 * HOUR_MS),
    ] {
        insert(&db, session).await;
    }
    // Still holding its seat now: counts in hour 4 and in the seats in use.
    insert(
        &db,
        Session {
            live: true,
            ..s("l", "m-l", None, h + 4 * HOUR_MS + 30 * MIN, now + 5 * MIN)
        },
    )
    .await;
    // On the organization's other license, inside hour 0's busiest minutes.
    insert(
        &db,
        Session {
            license: &other,
            ..s("m", "m-m", None, h + 56 * MIN, h + 58 * MIN)
        },
    )
    .await;

    let range = format!(
        "from={}&to={}",
        rfc3339_from_millis(h),
        rfc3339_from_millis(h + 5 * HOUR_MS)
    );
    let v = usage(&host, &format!("/api/v1/admin/licenses/{l}/usage?{range}")).await;
    assert_eq!(peaks(&v, "hours"), [4, 4, 1, 1, 1], "{v}");
    assert_eq!(v["hours"][0]["start"], rfc3339_from_millis(h));
    assert_eq!(v["peak_seats"], 4);
    assert_eq!(peaks(&v, "days").iter().max(), Some(&4), "{}", v["days"]);
    assert_eq!(v["seats_in_use"], 1, "{v}");
    assert_eq!(v["max_seats"], 10);
    // a and b share a machine; g held no seat in the range.
    assert_eq!(v["unique_machines"], 8, "{v}");
    assert_eq!(v["unique_users"], 2, "{v}");

    let org = format!(
        "/api/v1/admin/organizations/{}/usage?{range}",
        lic.organization_id
    );
    let v = usage(&host, &org).await;
    assert_eq!(peaks(&v, "hours"), [5, 4, 1, 1, 1], "{v}");
    assert_eq!(v["licenses"], 2);
    assert_eq!(v["max_seats"], 13);
    assert_eq!(v["unique_machines"], 9);

    // A range that starts inside a session's hold counts it from the range's first instant.
    let from_mid = format!(
        "from={}&to={}",
        rfc3339_from_millis(h + 2 * HOUR_MS),
        rfc3339_from_millis(h + 3 * HOUR_MS)
    );
    let v = usage(
        &host,
        &format!("/api/v1/admin/licenses/{l}/usage?{from_mid}"),
    )
    .await;
    assert_eq!(peaks(&v, "hours"), [1], "{v}");
    assert_eq!(v["unique_machines"], 1);
}

#[tokio::test]
async fn acquires_and_refusals_are_counted_by_reason() {
    let db = migrated_database().await;
    let host = app(&db, redis_runtime_config(&redis_url()), &[]).await;
    let lic = admin_license(&host, json!({"max_seats": 1, "rate_limit_per_minute": 3})).await;
    let suspended = second_license(&host, &lic).await;
    let acquire = |key: String, machine: &'static str| {
        let host = host.clone();
        async move {
            host.request(
                "POST",
                "/api/v1/licenses/acquire",
                &[("authorization", &format!("Bearer {key}"))],
                json!({"machine_id": machine}).to_string(),
            )
            .await
            .unwrap()
            .status
        }
    };
    let mut statuses = Vec::new();
    statuses.push(acquire(lic.key.clone(), "m1").await);
    statuses.push(acquire(lic.key.clone(), "m1").await);
    // Until two attempts were rate limited (a minute boundary may reset the window once).
    while statuses.iter().filter(|s| **s == 429).count() < 2 {
        statuses.push(acquire(lic.key.clone(), "m2").await);
        assert!(statuses.len() < 20, "{statuses:?}");
    }
    assert_eq!(&statuses[..2], &[201, 200], "{statuses:?}");
    let count = |status: u16| statuses.iter().filter(|s| **s == status).count() as u64;

    let v = usage(&host, &format!("/api/v1/admin/licenses/{}/usage", lic.id)).await;
    assert_eq!(v["acquires"], 2, "{v}");
    assert_eq!(v["new_sessions"], 1, "{v}");
    assert_eq!(v["refusals"]["no_seats_available"], count(409), "{v}");
    assert_eq!(v["refusals"]["rate_limited"], count(429), "{v}");
    assert_eq!(v["refusals"]["license_suspended"], 0);
    assert_eq!(v["seats_in_use"], 1);
    assert_eq!(v["unique_machines"], 1);
    assert_eq!(peaks(&v, "hours").last(), Some(&1), "{v}");
    assert_eq!(v["hours"].as_array().unwrap().len(), 7 * 24);

    // The rate-limited attempts left no audit event: only their hourly count.
    let pg = pg_client(&db).await;
    let row = pg
        .query_one(
            "SELECT (SELECT count(*) FROM audit_events WHERE license_id = $1 AND action = 'session.acquire'), \
                    (SELECT coalesce(sum(refusals), 0)::bigint FROM acquire_refusals WHERE license_id = $1)",
            &[&lic.id],
        )
        .await
        .unwrap();
    let (events, refused): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(events as u64, statuses.len() as u64 - count(429));
    assert_eq!(refused as u64, count(429));

    let r = admin_request(
        &host,
        "POST",
        &format!("/api/v1/admin/licenses/{suspended}/suspend"),
        json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = usage(
        &host,
        &format!("/api/v1/admin/organizations/{}/usage", lic.organization_id),
    )
    .await;
    assert_eq!(v["refusals"]["rate_limited"], count(429), "{v}");
    assert_eq!(v["licenses"], 2);
    // The suspended license's seats no longer count among the organization's.
    assert_eq!(v["max_seats"], 1, "{v}");
}

#[tokio::test]
async fn a_key_sees_only_its_own_organizations_usage() {
    let db = migrated_database().await;
    let host = app(&db, redis_runtime_config(&redis_url()), &[]).await;
    let mine = admin_license(&host, json!({})).await;
    let theirs = admin_license(&host, json!({})).await;
    let r = admin_request(
        &host,
        "POST",
        &format!("/api/v1/admin/organizations/{}/keys", mine.organization_id),
        json!({"name": "reader", "role": "read"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let auth = format!("Bearer {}", r.json()["key"].as_str().unwrap());
    let get = |path: String| {
        let host = host.clone();
        let auth = auth.clone();
        async move {
            host.request("GET", &path, &[("authorization", &auth)], "")
                .await
                .unwrap()
        }
    };
    for path in [
        format!("/api/v1/admin/licenses/{}/usage", mine.id),
        format!("/api/v1/admin/organizations/{}/usage", mine.organization_id),
    ] {
        let r = get(path.clone()).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    for (path, resource) in [
        (
            format!("/api/v1/admin/licenses/{}/usage", theirs.id),
            "license",
        ),
        (
            format!(
                "/api/v1/admin/organizations/{}/usage",
                theirs.organization_id
            ),
            "organization",
        ),
    ] {
        let r = get(path.clone()).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert_eq!(r.json()["error"]["details"]["resource"], resource);
        // The operator sees it.
        assert_eq!(
            admin_request(&host, "GET", &path, Value::Null).await.status,
            200
        );
    }
}

#[tokio::test]
async fn bad_ranges_and_unknown_ids_are_refused() {
    let db = migrated_database().await;
    let host = app(&db, redis_runtime_config(&redis_url()), &[]).await;
    let lic = admin_license(&host, json!({})).await;
    let base = format!("/api/v1/admin/licenses/{}/usage", lic.id);
    for (query, field) in [
        ("from=last-week", "from"),
        ("from=1970-06-01T00:00:00Z", "from"),
        ("to=2026-02-30T00:00:00Z", "to"),
        ("since=2026-01-01T00:00:00Z", "since"),
        (
            "from=2026-01-01T00:00:00Z&from=2026-01-01T00:00:00Z",
            "from",
        ),
    ] {
        let r = admin_request(&host, "GET", &format!("{base}?{query}"), Value::Null).await;
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        let v = r.json();
        assert_eq!(v["error"]["code"], "invalid_field", "{query}: {v}");
        assert_eq!(v["error"]["details"]["field"], field, "{query}: {v}");
    }
    // What JSON Schema cannot say is no refusal: a backward range is empty, a long one keeps
    // its last 93 days.
    let v = usage(
        &host,
        &format!("{base}?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(v["hours"], json!([]));
    assert_eq!(v["peak_seats"], 0);
    let v = usage(
        &host,
        &format!("{base}?from=1971-01-01T00:00:00Z&to=2026-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(v["hours"].as_array().unwrap().len(), 93 * 24);
    assert_eq!(v["from"], "2025-09-30T00:00:00.000Z");
    for path in [
        "/api/v1/admin/licenses/lic_0123456789abcdef0123456789abcdef/usage",
        "/api/v1/admin/licenses/nonsense/usage",
        "/api/v1/admin/organizations/org_0123456789abcdef0123456789abcdef/usage",
    ] {
        let r = admin_request(&host, "GET", path, Value::Null).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
    let r = admin_request(&host, "POST", &base, json!({})).await;
    assert_eq!(r.status, 405);
}
