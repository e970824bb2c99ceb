//! Acquire + release cycles per second and their latency over loopback HTTP with real
//! PostgreSQL, at concurrency 1, 16 and 64, on one license with many seats.
//!
//! With `LE_SEATS_SCALE=1`: cycles at 32 connections on ONE license that already holds 1,
//! 1,000, 10,000 and 50,000 live sessions, beside the same work spread over 32 licenses (one
//! per connection), measured first and last.
//!
//! With `LE_SEATS_KMS=1`: the same cycles with the local signer and with the `kms` signer
//! against the tests' own KMS and metadata server on loopback (`tests/google.rs`), in one run,
//! alternating, at 1 and 16 connections.
//!
//! Run: `scripts/bench.sh seats` (starts PostgreSQL and Redis like the tests).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use integration_tests::{
    app, create_license, fill_live_sessions, load, migrated_database, redis_runtime_config,
    redis_url, LicenseSpec,
};
use serde_json::json;
use spin_test_host::kv::Backend;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CYCLES: usize = 6_000;

fn us(d: Duration) -> String {
    format!("{:.0} us", d.as_secs_f64() * 1e6)
}

async fn send(
    s: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    req: hyper::Request<Full<Bytes>>,
) -> (u16, Bytes) {
    let resp = s.send_request(req).await.expect("a response");
    let status = resp.status().as_u16();
    (
        status,
        resp.into_body().collect().await.expect("a body").to_bytes(),
    )
}

/// One cycle on connection `s`: acquire a seat for `machine`, then release it.
async fn cycle(
    s: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    auth: &str,
    machine: &str,
) {
    let body = json!({ "machine_id": machine }).to_string();
    let req = load::request(
        "POST",
        addr,
        "/api/v1/licenses/acquire",
        &[
            ("authorization", auth),
            ("content-type", "application/json"),
        ],
        body,
    );
    let (status, body) = send(s, req).await;
    assert!(
        status == 201 || status == 200,
        "acquire answered {status}: {body:?}"
    );
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let path = format!(
        "/api/v1/licenses/sessions/{}",
        v["session_id"].as_str().unwrap()
    );
    let req = load::request(
        "DELETE",
        addr,
        &path,
        &[("authorization", auth)],
        Vec::new(),
    );
    assert_eq!(send(s, req).await.0, 200);
}

async fn cycles(addr: SocketAddr, key: Arc<String>, concurrency: usize) -> (f64, Vec<Duration>) {
    cycles_over(addr, &[key], concurrency).await
}

/// Cycles at `concurrency` connections, connection `w` on license `keys[w % keys.len()]`.
async fn cycles_over(
    addr: SocketAddr,
    keys: &[Arc<String>],
    concurrency: usize,
) -> (f64, Vec<Duration>) {
    let next = Arc::new(AtomicUsize::new(0));
    let lat = Arc::new(Mutex::new(Vec::with_capacity(CYCLES)));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (next, lat, key) = (next.clone(), lat.clone(), keys[w % keys.len()].clone());
        tasks.push(tokio::spawn(async move {
            let mut s = load::connect(addr).await.expect("connect");
            let auth = format!("Bearer {key}");
            while next.fetch_add(1, Ordering::Relaxed) < CYCLES {
                let t = Instant::now();
                cycle(&mut s, addr, &auth, &format!("bench-{w}")).await;
                lat.lock().unwrap().push(t.elapsed());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed();
    let mut lat = std::mem::take(&mut *lat.lock().unwrap());
    lat.sort();
    (lat.len() as f64 / elapsed.as_secs_f64(), lat)
}

/// Open loop: cycles start on a fixed schedule of `rate` a second for `seconds`, each on one of
/// `connections` keep-alive connections (waiting for a free one if all are busy). Latency is
/// measured from the scheduled start, so a slow server cannot hide queueing (no coordinated
/// omission).
async fn open_loop(
    addr: SocketAddr,
    key: Arc<String>,
    rate: u32,
    seconds: u32,
    connections: usize,
) -> (usize, Vec<Duration>) {
    let (tx, rx) = tokio::sync::mpsc::channel(connections);
    for _ in 0..connections {
        tx.send(load::connect(addr).await.expect("connect"))
            .await
            .unwrap();
    }
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let lat = Arc::new(Mutex::new(Vec::new()));
    let total = (rate * seconds) as usize;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / f64::from(rate));
        tokio::time::sleep_until(due.into()).await;
        let (rx, tx, lat, key) = (rx.clone(), tx.clone(), lat.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = rx.lock().await.recv().await.expect("a connection");
            let auth = format!("Bearer {key}");
            cycle(&mut s, addr, &auth, &format!("open-{i}")).await;
            lat.lock().unwrap().push(due.elapsed());
            tx.send(s).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut lat = std::mem::take(&mut *lat.lock().unwrap());
    lat.sort();
    (total, lat)
}

/// The scale table (see the module docs).
async fn scale(db: &str, kv: &Backend, addr: SocketAddr) {
    let many = LicenseSpec {
        max_seats: 1_000_000,
        rate_limit_per_minute: 1_000_000_000,
        ..Default::default()
    };
    let big = create_license(db, kv, many.clone()).await;
    let mut spread = Vec::new();
    for _ in 0..32 {
        spread.push(Arc::new(create_license(db, kv, many.clone()).await.key));
    }
    let one = [Arc::new(big.key.clone())];
    cycles_over(addr, &spread, 32).await; // warm up
    println!("| case | connections | cycles | cycles/s | p50 cycle | p99 cycle |");
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |name: String, (rate, lat): (f64, Vec<Duration>)| {
        println!(
            "| {name} | 32 | {} | {rate:.0} | {} | {} |",
            lat.len(),
            us(lat[lat.len() / 2]),
            us(lat[(lat.len() * 99 / 100).min(lat.len() - 1)])
        );
    };
    row(
        "spread: 32 licenses".into(),
        cycles_over(addr, &spread, 32).await,
    );
    let mut live = 0;
    for n in [1, 1_000, 10_000, 50_000] {
        fill_live_sessions(db, &big.id, live + 1..=n, 3_600_000).await;
        live = n;
        integration_tests::pg_client(db)
            .await
            .batch_execute("ANALYZE sessions")
            .await
            .unwrap();
        row(
            format!("one license, {n} live sessions"),
            cycles_over(addr, &one, 32).await,
        );
    }
    row("spread again".into(), cycles_over(addr, &spread, 32).await);
}

/// The signer table (see the module docs).
async fn signers(db: &str, kv: &Backend) {
    use integration_tests::google::{FakeGoogle, KEY_VERSION};
    let google = FakeGoogle::start([42; 32]).await;
    let version = le_kms::KeyVersion::parse(KEY_VERSION).unwrap();
    let mut keys = license_edge_token::KeySet::new();
    keys.insert(integration_tests::test_signing_key().verifying_key())
        .unwrap();
    keys.insert(le_kms::verifying_key(&version, &google.public_key_pem()).unwrap())
        .unwrap();
    let keys = keys.to_text();
    let (kms_endpoint, metadata_endpoint) = (google.kms_endpoint(), google.metadata_endpoint());
    let local = app(
        db,
        redis_runtime_config(&redis_url()),
        &[("public_keys", keys.as_str())],
    )
    .await;
    let kms = app(
        db,
        redis_runtime_config(&redis_url()),
        &[
            ("public_keys", keys.as_str()),
            ("signer", "kms"),
            ("kms_key_version", KEY_VERSION),
            ("kms_endpoint", kms_endpoint.as_str()),
            ("metadata_endpoint", metadata_endpoint.as_str()),
        ],
    )
    .await;
    let (local_addr, a) = local.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (kms_addr, b) = kms.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let spec = LicenseSpec {
        max_seats: 10_000,
        rate_limit_per_minute: 1_000_000_000,
        ..Default::default()
    };
    let key = Arc::new(create_license(db, kv, spec).await.key);
    cycles(local_addr, key.clone(), 4).await; // warm up both
    cycles(kms_addr, key.clone(), 4).await;
    println!("| signer | connections | cycles | cycles/s | p50 cycle | p99 cycle |");
    println!("|---|---:|---:|---:|---:|---:|");
    for concurrency in [1, 16] {
        for round in 0..2 {
            for (name, addr) in [("local", local_addr), ("kms (loopback)", kms_addr)] {
                let (rate, lat) = cycles(addr, key.clone(), concurrency).await;
                println!(
                    "| {name} (round {}) | {concurrency} | {} | {rate:.0} | {} | {} |",
                    round + 1,
                    lat.len(),
                    us(lat[lat.len() / 2]),
                    us(lat[(lat.len() * 99 / 100).min(lat.len() - 1)])
                );
            }
        }
    }
    let seen = google.seen();
    println!(
        "\nKMS signatures: {}; metadata token requests: {}; malformed requests: {}",
        seen.signed.len(),
        seen.token_requests,
        seen.malformed.len()
    );
    a.abort();
    b.abort();
}

#[tokio::main]
async fn main() {
    let db = migrated_database().await;
    let kv = Backend::redis(&redis_url()).unwrap();
    if std::env::var("LE_SEATS_KMS").is_ok_and(|v| v == "1") {
        signers(&db, &kv).await;
        return;
    }
    if std::env::var("LE_SEATS_SCALE").is_ok_and(|v| v == "1") {
        let host = app(&db, redis_runtime_config(&redis_url()), &[]).await;
        let (addr, server) = host.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
        scale(&db, &kv, addr).await;
        server.abort();
        return;
    }
    let spec = LicenseSpec {
        max_seats: 10_000,
        rate_limit_per_minute: 1_000_000_000,
        ..Default::default()
    };
    let lic = create_license(&db, &kv, spec).await;
    let host = app(&db, redis_runtime_config(&redis_url()), &[]).await;
    // In-process, sequential: what one acquire and one release cost through the host.
    let auth = format!("Bearer {}", lic.key);
    let (mut acq, mut rel, mut health) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..std::env::var("LE_INPROC_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3000)
    {
        let t = Instant::now();
        let body = json!({"machine_id": format!("inproc-{i}")}).to_string();
        let r = host
            .request(
                "POST",
                "/api/v1/licenses/acquire",
                &[("authorization", &auth)],
                body,
            )
            .await
            .unwrap();
        acq.push(t.elapsed());
        let path = format!(
            "/api/v1/licenses/sessions/{}",
            r.json()["session_id"].as_str().unwrap()
        );
        let t = Instant::now();
        assert_eq!(
            host.request("DELETE", &path, &[("authorization", &auth)], Vec::new())
                .await
                .unwrap()
                .status,
            200
        );
        rel.push(t.elapsed());
        let t = Instant::now();
        host.get("/api/v1/health").await.unwrap();
        health.push(t.elapsed());
    }
    for (name, lat) in [
        ("acquire", &mut acq),
        ("release", &mut rel),
        ("health", &mut health),
    ] {
        lat.sort();
        println!(
            "in-process {name}: p50 {} p99 {}",
            us(lat[lat.len() / 2]),
            us(lat[lat.len() * 99 / 100])
        );
    }

    let (addr, server) = host.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let key = Arc::new(lic.key.clone());
    cycles(addr, key.clone(), 8).await; // warm up: pools, instances, plans
    println!("| connections | cycles | cycles/s | p50 cycle | p99 cycle |");
    println!("|---:|---:|---:|---:|---:|");
    for concurrency in [1, 16, 64] {
        let (rate, lat) = cycles(addr, key.clone(), concurrency).await;
        println!(
            "| {concurrency} | {} | {rate:.0} | {} | {} |",
            lat.len(),
            us(lat[lat.len() / 2]),
            us(lat[(lat.len() * 99 / 100).min(lat.len() - 1)])
        );
    }
    println!();
    println!("| offered cycles/s (open loop, 64 connections) | cycles | p50 cycle | p99 cycle |");
    println!("|---:|---:|---:|---:|");
    for rate in [500, 1000] {
        let (n, lat) = open_loop(addr, key.clone(), rate, 6, 64).await;
        println!(
            "| {rate} | {n} | {} | {} |",
            us(lat[lat.len() / 2]),
            us(lat[(lat.len() * 99 / 100).min(lat.len() - 1)])
        );
    }
    server.abort();
}
