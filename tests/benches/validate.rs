//! Validate throughput and latency over loopback HTTP at concurrency 1, 16 and 64, beside the
//! health route in the same run, and the in-process cost of one validation: token validation,
//! and license-key validation in the old clients' shape (`{"license_key", "action",
//! "machine_id"}` for a machine holding a seat: the guess counter, the key, the license, the
//! seat and the session's end marker, five key-value reads).
//!
//! Run: `scripts/bench.sh validate` (starts PostgreSQL and Redis like the tests).

use integration_tests::{
    acquire_token, admin_request, app, create_license, load, migrated_database,
    redis_runtime_config, redis_url, LicenseSpec,
};
use serde_json::json;
use spin_test_host::kv::Backend;
use std::time::{Duration, Instant};

/// Measured requests per row.
const REQUESTS: usize = 40_000;
/// The target rate at 64 connections, validations a second.
const TARGET_RATE: f64 = 6_500.0;
/// Unmeasured requests before each row.
const WARM_UP: usize = 4_000;

fn us(d: Duration) -> String {
    format!("{:.0} us", d.as_secs_f64() * 1e6)
}

#[tokio::main]
async fn main() {
    let db = migrated_database().await;
    let kv = Backend::redis(&redis_url()).unwrap();
    let lic = create_license(
        &db,
        &kv,
        LicenseSpec {
            max_seats: 1000,
            ..Default::default()
        },
    )
    .await;
    let host = app(&db, redis_runtime_config(&redis_url()), &[]).await;
    let token = acquire_token(&host, &lic, "bench").await;
    let body = json!({"token": token, "machine_id": "bench"}).to_string();
    // The fixture writes the license straight into the database: the rebuild writes its key
    // entry (and the seat, and `key:index`), as after an upgrade.
    let rebuilt = admin_request(
        &host,
        "POST",
        "/api/v1/admin/kv/rebuild",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(rebuilt.status, 200, "{}", rebuilt.text());
    let key_body =
        json!({"license_key": lic.key, "action": "validate", "machine_id": "bench"}).to_string();

    // In-process: the whole request through the host, sequentially, with the verified-token
    // cache (every request after the first uses it) and without (every request verifies).
    let uncached = app(
        &db,
        redis_runtime_config(&redis_url()),
        &[("verify_cache_key", "")],
    )
    .await;
    for (name, h, body) in [
        ("validate, cached", &host, &body),
        ("validate, signature checked", &uncached, &body),
        ("key validation", &host, &key_body),
    ] {
        let mut lat = Vec::with_capacity(5000);
        for i in 0..5500 {
            let t = Instant::now();
            let r = h
                .request("POST", "/api/v1/licenses/validate", &[], body.clone())
                .await
                .unwrap();
            assert_eq!(r.json()["code"], "VALID");
            // The first 500 warm up.
            if i >= 500 {
                lat.push(t.elapsed());
            }
        }
        lat.sort();
        println!(
            "in-process {name}: p50 {} p99 {}",
            us(lat[lat.len() / 2]),
            us(lat[lat.len() * 99 / 100])
        );
    }

    let (addr, server) = host.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let health = move |_: usize| load::request("GET", addr, "/api/v1/health/", &[], Vec::new());
    let validate = move |_: usize| {
        load::request(
            "POST",
            addr,
            "/api/v1/licenses/validate/",
            &[("content-type", "application/json")],
            body.clone(),
        )
    };
    let key = move |_: usize| {
        load::request(
            "POST",
            addr,
            "/api/v1/licenses/validate/",
            &[("content-type", "application/json")],
            key_body.clone(),
        )
    };
    println!("| route | connections | requests | req/s | p50 | p99 |");
    println!("|---|---:|---:|---:|---:|---:|");
    for concurrency in [1, 16, 64] {
        // Warm-up at this concurrency, not measured: the instance pool fills its slots, the
        // connections open, the caches settle.
        load::run(addr, concurrency, WARM_UP, health).await;
        load::run(addr, concurrency, WARM_UP, validate.clone()).await;
        load::run(addr, concurrency, WARM_UP, key.clone()).await;
        let health = load::run(addr, concurrency, REQUESTS, health).await;
        assert_eq!(health.count(200), REQUESTS);
        let validate = load::run(addr, concurrency, REQUESTS, validate.clone()).await;
        assert_eq!(validate.count(200), REQUESTS);
        let keyed = load::run(addr, concurrency, REQUESTS, key.clone()).await;
        assert_eq!(keyed.count(200), REQUESTS);
        for (name, r) in [
            ("health", &health),
            ("validate (token)", &validate),
            ("validate (license key)", &keyed),
        ] {
            println!(
                "| {name} | {concurrency} | {REQUESTS} | {:.0} | {} | {} |",
                r.per_second(),
                us(r.percentile(0.5)),
                us(r.percentile(0.99))
            );
        }
        println!(
            "| validate / health throughput | {concurrency} | | {:.2} | | |",
            validate.per_second() / health.per_second()
        );
        println!(
            "| key / token validation throughput | {concurrency} | | {:.2} | | |",
            keyed.per_second() / validate.per_second()
        );
    }
    // The target as an offered load: 64 connections sending 6,500 validations a second
    // between them, latency counted from when each request was due.
    let paced = load::run_at_rate(addr, 64, REQUESTS, TARGET_RATE, validate).await;
    assert_eq!(paced.count(200), REQUESTS);
    println!(
        "| validate at {TARGET_RATE:.0}/s offered | 64 | {REQUESTS} | {:.0} | {} | {} |",
        paced.per_second(),
        us(paced.percentile(0.5)),
        us(paced.percentile(0.99))
    );
    server.abort();
}
