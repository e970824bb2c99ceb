//! Seats under concurrency and faults, over the loopback HTTP listener: the oversell test
//! (200 concurrent acquires for 5 seats, 20 times) and PostgreSQL stopped in the middle of a
//! load.

use integration_tests::servers::PgServer;
use integration_tests::{
    app, create_license, load, migrated_database, now_ms, pg_client, redis_runtime_config,
    redis_url, LicenseSpec,
};
use serde_json::json;
use spin_test_host::kv::Backend;
use std::net::SocketAddr;
use std::time::Duration;

fn acquire_request(
    addr: SocketAddr,
    key: &str,
    machine: String,
) -> hyper::Request<http_body_util::Full<bytes::Bytes>> {
    let auth = format!("Bearer {key}");
    load::request(
        "POST",
        addr,
        "/api/v1/licenses/acquire/",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        json!({"machine_id": machine}).to_string(),
    )
}

async fn live(db: &str, license: &str) -> i64 {
    pg_client(db)
        .await
        .query_one(
            "SELECT count(*) FROM sessions WHERE license_id = $1 AND ended_at IS NULL AND expires_at > $2",
            &[&license, &now_ms()],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn never_oversold_200_concurrent_acquires_for_5_seats_20_times() {
    let db = migrated_database().await;
    let kv = Backend::redis(&redis_url()).unwrap();
    let host = app(&db, redis_runtime_config(&redis_url()), &[]).await;
    let (addr, server) = host.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    for round in 0..20 {
        let lic = create_license(
            &db,
            &kv,
            LicenseSpec {
                max_seats: 5,
                ..Default::default()
            },
        )
        .await;
        let key = lic.key.clone();
        let report = load::run(addr, 200, 200, move |i| {
            acquire_request(addr, &key, format!("machine-{round}-{i}"))
        })
        .await;
        assert_eq!(report.failures, 0, "round {round}: transport failures");
        assert_eq!(report.count(201), 5, "round {round}: {:?}", report.statuses);
        assert_eq!(report.count(409), 195, "round {round}");
        assert_eq!(
            live(&db, &lic.id).await,
            5,
            "round {round}: the database holds 5 live sessions"
        );
    }
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_mid_load_gives_clean_503s_and_recovers_without_oversell() {
    let pg = PgServer::start();
    let db = pg.url("postgres");
    le_migrate::apply(&pg_client(&db).await).await.unwrap();
    let kv = Backend::redis(&redis_url()).unwrap();
    let lic = create_license(
        &db,
        &kv,
        LicenseSpec {
            max_seats: 50,
            ..Default::default()
        },
    )
    .await;
    let host = app(&db, redis_runtime_config(&redis_url()), &[]).await;
    let (addr, server) = host.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();

    let key = lic.key.clone();
    let load = tokio::spawn(async move {
        load::run(addr, 16, 3000, move |i| {
            acquire_request(addr, &key, format!("fault-{i}"))
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pg = tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = load.await.unwrap();
    assert_eq!(report.failures, 0, "every request was answered");
    assert_eq!(report.count(500), 0, "no 500s");
    let unexpected: Vec<u16> = report
        .statuses
        .iter()
        .copied()
        .filter(|s| ![201, 409, 503].contains(s))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    assert!(report.count(503) > 0, "the outage was seen");
    assert!(
        report.percentile(1.0) < Duration::from_secs(10),
        "no request hung: {:?}",
        report.percentile(1.0)
    );

    let pg = tokio::task::spawn_blocking(move || {
        pg.start_again();
        pg
    })
    .await
    .unwrap();
    // Recovery: the next requests succeed again (the pool drops its dead connections).
    let key = lic.key.clone();
    let after = load::run(addr, 4, 40, move |i| {
        acquire_request(addr, &key, format!("after-{i}"))
    })
    .await;
    let ok = after.count(201) + after.count(409);
    assert!(
        ok >= 36,
        "recovered after the restart: {:?}",
        after.statuses
    );
    // No oversell and no half-written session: live sessions within the limit, at least one
    // per 201 answered, and every session row complete.
    let live = live(&db, &lic.id).await;
    assert!(live <= 50, "oversold: {live}");
    assert!(live >= (report.count(201) + after.count(201)) as i64);
    let broken: i64 = pg_client(&db)
        .await
        .query_one(
            "SELECT count(*) FROM sessions WHERE expires_at <= started_at OR last_heartbeat_at < started_at",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(broken, 0);
    server.abort();
    drop(pg);
}
