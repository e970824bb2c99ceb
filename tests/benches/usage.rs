//! The usage figures at a million sessions: `le_admin_usage` timed straight on PostgreSQL
//! (median and p99 of repeated calls) and through the admin route in the test host, with
//! `EXPLAIN (ANALYZE, BUFFERS)` of the statements it runs, so the index use shows.
//!
//! Data, made with `generate_series` in one statement each: one organization with 100
//! licenses, 1,000,000 sessions over the last 90 days (30% of them on one large license, the
//! rest spread evenly), 5 minutes to 8 hours long, on 50,000 machines and 20,000 users; one
//! `session.acquire` audit event per session plus 100,000 refusals (`no_seats`); rate-limited
//! counts for every hour of the large license.
//!
//! Run: `scripts/bench.sh usage` (starts PostgreSQL and Redis like the tests).

use integration_tests::{
    admin_request, app, migrated_database, pg_client, redis_runtime_config, redis_url,
};
use serde_json::Value;
use std::time::{Duration, Instant};

const SESSIONS: i64 = 1_000_000;
const LICENSES: i64 = 100;
const RUNS: usize = 30;
const HOUR_MS: i64 = 3_600_000;

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn median_p99(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    let p = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
    (p(0.5), p(0.99))
}

#[tokio::main]
async fn main() {
    let db = migrated_database().await;
    let pg = pg_client(&db).await;
    let now: i64 = pg
        .query_one("SELECT le_now_ms()", &[])
        .await
        .unwrap()
        .get(0);
    let t0 = Instant::now();
    pg.batch_execute(&format!(
        "INSERT INTO organizations (id, name, created_at) VALUES ('org_bench', 'Bench', {now});
         INSERT INTO products (id, organization_id, code, name, created_at)
         VALUES ('prod_bench', 'org_bench', 'cad-pro', 'CAD Pro', {now});
         INSERT INTO licenses (id, organization_id, product_id, key_hash, max_seats, created_at, updated_at)
         SELECT 'lic_bench' || g, 'org_bench', 'prod_bench', md5('bench' || g), 500, {now}, {now}
         FROM generate_series(0, {last}) g;",
        last = LICENSES - 1
    ))
    .await
    .unwrap();
    // Session g starts at a point spread over 90 days; 30% go to lic_bench0.
    pg.batch_execute(&format!(
        "INSERT INTO sessions (id, license_id, machine_hash, metadata, started_at, last_heartbeat_at,
                               expires_at, seat_until, counted, ended_at, end_reason, user_sub)
         SELECT 'ses_' || md5(g::text),
                CASE WHEN g % 10 < 3 THEN 'lic_bench0' ELSE 'lic_bench' || (1 + g % {rest}) END,
                md5('m' || (g % 50000)), '{{}}', s, s, s + d, s + d, s + d > {now},
                CASE WHEN s + d <= {now} THEN s + d END,
                CASE WHEN s + d <= {now} THEN 'released' END,
                'user-' || (g % 20000)
         FROM (SELECT g, {start} + (g * {span} / {SESSIONS}) AS s,
                      300000 + (hashtext(g::text)::bigint & 65535) * 439 AS d
               FROM generate_series(0, {SESSIONS} - 1) g) x;",
        rest = LICENSES - 1,
        start = now - 90 * 24 * HOUR_MS,
        span = 90 * 24 * HOUR_MS,
    ))
    .await
    .unwrap();
    pg.batch_execute(
        "INSERT INTO audit_events (occurred_at, organization_id, license_id, session_id, actor, action, outcome, details)
         SELECT s.started_at, 'org_bench', s.license_id, s.id, 'client', 'session.acquire', 'created', '{}'
         FROM sessions s;
         INSERT INTO audit_events (occurred_at, organization_id, license_id, actor, action, outcome, details)
         SELECT s.started_at + 1, 'org_bench', s.license_id, 'client', 'session.acquire', 'no_seats', '{}'
         FROM sessions s WHERE hashtext(s.id) % 10 = 0;",
    )
    .await
    .unwrap();
    pg.batch_execute(&format!(
        "INSERT INTO acquire_refusals (license_id, hour_start, reason, refusals)
         SELECT 'lic_bench0', h, 'rate_limited', 3 FROM generate_series({from}, {to}, {HOUR_MS}) h;",
        from = now - now % HOUR_MS - 90 * 24 * HOUR_MS,
        to = now - now % HOUR_MS,
    ))
    .await
    .unwrap();
    // One statement each: VACUUM cannot run in the implicit transaction of a batch.
    for table in ["sessions", "audit_events", "acquire_refusals"] {
        pg.batch_execute(&format!("VACUUM ANALYZE {table}"))
            .await
            .unwrap();
    }
    let counts = pg
        .query_one(
            "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM audit_events),
                    (SELECT count(*) FROM sessions WHERE license_id = 'lic_bench0'),
                    pg_size_pretty(pg_relation_size('sessions_usage')),
                    pg_size_pretty(pg_relation_size('audit_acquires'))",
            &[],
        )
        .await
        .unwrap();
    println!(
        "data: {} sessions ({} on lic_bench0), {} audit events, made in {:.0} s; index sessions_usage {}, audit_acquires {}",
        counts.get::<_, i64>(0),
        counts.get::<_, i64>(2),
        counts.get::<_, i64>(1),
        t0.elapsed().as_secs_f64(),
        counts.get::<_, String>(3),
        counts.get::<_, String>(4),
    );

    let to = now - now % HOUR_MS + HOUR_MS;
    let cases: [(&str, &str, &str, i64); 4] = [
        (
            "license (300,000 sessions)",
            "license",
            "lic_bench0",
            7 * 24,
        ),
        (
            "license (300,000 sessions)",
            "license",
            "lic_bench0",
            30 * 24,
        ),
        (
            "small license (7,000 sessions)",
            "license",
            "lic_bench7",
            30 * 24,
        ),
        (
            "organization (100 licenses, 1M sessions)",
            "organization",
            "org_bench",
            7 * 24,
        ),
    ];
    println!("\n| scope | range | rows in range | median | p99 |");
    println!("|---|---|---:|---:|---:|");
    for (what, scope, id, hours) in cases {
        let from = to - hours * HOUR_MS;
        let stmt = pg
            .prepare("SELECT o_outcome, o_body::text FROM le_admin_usage($1, $2, $3, $4)")
            .await
            .unwrap();
        let mut times = Vec::new();
        let mut body = Value::Null;
        for _ in 0..RUNS + 2 {
            let t = Instant::now();
            let row = pg
                .query_one(&stmt, &[&scope, &id, &from, &to])
                .await
                .unwrap();
            times.push(t.elapsed());
            body = serde_json::from_str(row.get::<_, &str>(1)).unwrap();
        }
        times.drain(..2);
        let (p50, p99) = median_p99(times);
        let held: i64 = pg
            .query_one(
                "SELECT count(*) FROM sessions s JOIN licenses l ON l.id = s.license_id
                 WHERE (l.id = $1 OR l.organization_id = $1) AND s.seat_until > $2 AND s.started_at < $3",
                &[&id, &from, &to],
            )
            .await
            .unwrap()
            .get(0);
        println!(
            "| {what} | {} days | {held} | {} | {} |",
            hours / 24,
            ms(p50),
            ms(p99)
        );
        assert_eq!(body["hours"].as_array().map(Vec::len), Some(hours as usize));
    }

    // The same through the admin route (the component, the test host, PostgreSQL).
    let host = app(&db, redis_runtime_config(&redis_url()), &[]).await;
    let mut times = Vec::new();
    for _ in 0..RUNS + 2 {
        let t = Instant::now();
        let r = admin_request(
            &host,
            "GET",
            "/api/v1/admin/licenses/lic_bench0/usage",
            Value::Null,
        )
        .await;
        times.push(t.elapsed());
        assert_eq!(r.status, 200, "{}", r.text());
    }
    times.drain(..2);
    let (p50, p99) = median_p99(times);
    println!(
        "\nadmin route, license (300,000 sessions), 7 days, in-process: median {}, p99 {}",
        ms(p50),
        ms(p99)
    );

    let from = to - 7 * 24 * HOUR_MS;
    for (what, sql) in [
        (
            "sessions of the range (lic_bench0, 7 days)",
            format!(
                "SELECT count(DISTINCT x.machine_hash), count(*) FROM sessions x
                 WHERE x.license_id = ANY ('{{lic_bench0}}') AND x.seat_until > {from} AND x.started_at < {to}"
            ),
        ),
        (
            "seat decisions of the range (lic_bench0, 7 days)",
            format!(
                "SELECT e.outcome, count(*) FROM audit_events e
                 WHERE e.license_id = ANY ('{{lic_bench0}}') AND e.action = 'session.acquire'
                   AND e.occurred_at >= {from} AND e.occurred_at < {to} GROUP BY e.outcome"
            ),
        ),
        (
            "seats in use now (organization)",
            format!(
                "SELECT count(*) FROM sessions s
                 WHERE s.license_id = ANY (ARRAY(SELECT id FROM licenses WHERE organization_id = 'org_bench'))
                   AND s.counted AND s.seat_until > {now}"
            ),
        ),
    ] {
        println!("\nEXPLAIN (ANALYZE, BUFFERS) {what}:");
        for row in pg
            .query(&format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}"), &[])
            .await
            .unwrap()
        {
            println!("    {}", row.get::<_, String>(0));
        }
    }
}
