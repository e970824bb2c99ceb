//! The test host's cost per request on the health liveness route (a component that touches
//! nothing), in-process and over loopback HTTP, plus the built size of each component.
//!
//! Run: `cargo bench -p integration-tests --bench host_overhead` (components built first, see
//! README). Figures go to BENCHMARKS.md by hand, with the machine.

use integration_tests::{app, load, pg_url, root};
use spin_test_host::runtime_config::RuntimeConfig;
use std::time::{Duration, Instant};

const REQUESTS: usize = 10_000;

fn us(d: Duration) -> String {
    format!("{:.0} us", d.as_secs_f64() * 1e6)
}

#[tokio::main]
async fn main() {
    let host = app(&pg_url(1, "unused"), RuntimeConfig::default(), &[]).await;
    // Warm up: first instantiations fault in the pooling allocator's slots.
    for _ in 0..500 {
        host.get("/api/v1/health").await.unwrap();
    }

    let mut lat = Vec::with_capacity(REQUESTS);
    let t0 = Instant::now();
    for _ in 0..REQUESTS {
        let t = Instant::now();
        let r = host.get("/api/v1/health").await.unwrap();
        assert_eq!(r.status, 200);
        lat.push(t.elapsed());
    }
    let total = t0.elapsed();
    lat.sort();
    println!(
        "| in-process, sequential | {REQUESTS} | {:.0} req/s | {} | {} |",
        REQUESTS as f64 / total.as_secs_f64(),
        us(lat[lat.len() / 2]),
        us(lat[lat.len() * 99 / 100])
    );

    let (addr, server) = host.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    for concurrency in [1, 16, 64] {
        let report = load::run(addr, concurrency, REQUESTS, move |_| {
            load::request("GET", addr, "/api/v1/health", &[], Vec::new())
        })
        .await;
        assert_eq!(report.count(200), REQUESTS, "every request answered 200");
        println!(
            "| loopback HTTP, {concurrency} connections | {REQUESTS} | {:.0} req/s | {} | {} |",
            report.per_second(),
            us(report.percentile(0.5)),
            us(report.percentile(0.99))
        );
    }
    server.abort();

    println!();
    for c in ["health", "validate", "acquire", "admin"] {
        let profile = if c == "admin" { "small" } else { "release" };
        let path = root().join(format!("target/wasm32-wasip2/{profile}/component_{c}.wasm"));
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        println!("| {c} | {:.0} KiB |", size as f64 / 1024.0);
    }
}
