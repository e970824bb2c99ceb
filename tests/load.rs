//! A small HTTP/1.1 load generator for loopback benchmarks and concurrency tests: `concurrency`
//! keep-alive connections share `total` requests and every latency is recorded.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Requests answered, whatever the status.
    pub requests: usize,
    /// Status code of each answered request, in completion order.
    pub statuses: Vec<u16>,
    /// Transport failures (no response).
    pub failures: usize,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Every request's latency, sorted.
    pub latencies: Vec<Duration>,
}

impl Report {
    /// Requests per second over the run.
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// The `p`-th percentile latency (0.0 to 1.0), nearest rank.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank =
            ((p * self.latencies.len() as f64).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[rank - 1]
    }

    /// How many answers had `status`.
    pub fn count(&self, status: u16) -> usize {
        self.statuses.iter().filter(|s| **s == status).count()
    }
}

/// Sends `total` requests made by `make(i)` over `concurrency` connections to `addr`, each
/// connection sending its next request as soon as the previous answer is in (a closed loop:
/// the rate is whatever the server sustains).
pub async fn run<F>(addr: SocketAddr, concurrency: usize, total: usize, make: F) -> Report
where
    F: Fn(usize) -> hyper::Request<Full<Bytes>> + Send + Sync + 'static,
{
    run_paced(addr, concurrency, total, None, make).await
}

/// Like [`run`], but request `i` is due at `i / per_second` seconds after the start and is not
/// sent before then (an open loop at a fixed rate, as long as the connections keep up). Its
/// latency counts from when it was due, so time spent waiting for a free connection behind a
/// slow answer is counted, not hidden.
pub async fn run_at_rate<F>(
    addr: SocketAddr,
    concurrency: usize,
    total: usize,
    per_second: f64,
    make: F,
) -> Report
where
    F: Fn(usize) -> hyper::Request<Full<Bytes>> + Send + Sync + 'static,
{
    run_paced(addr, concurrency, total, Some(per_second), make).await
}

async fn run_paced<F>(
    addr: SocketAddr,
    concurrency: usize,
    total: usize,
    per_second: Option<f64>,
    make: F,
) -> Report
where
    F: Fn(usize) -> hyper::Request<Full<Bytes>> + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new((
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        0usize,
    )));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (make, next, results) = (make.clone(), next.clone(), results.clone());
        workers.push(tokio::spawn(async move {
            let mut sender = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                if sender.is_none() {
                    sender = connect(addr).await;
                }
                let Some(s) = sender.as_mut() else {
                    results.lock().unwrap().2 += 1;
                    continue;
                };
                let t0 = match per_second {
                    Some(rate) => {
                        let due = start + Duration::from_secs_f64(i as f64 / rate);
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => Instant::now(),
                };
                let outcome = async {
                    let resp = s.send_request(make(i)).await.ok()?;
                    let status = resp.status().as_u16();
                    resp.into_body().collect().await.ok()?;
                    Some(status)
                }
                .await;
                let latency = t0.elapsed();
                let mut r = results.lock().unwrap();
                match outcome {
                    Some(status) => {
                        r.0.push(latency);
                        r.1.push(status);
                    }
                    None => {
                        r.2 += 1;
                        sender = None;
                    }
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let elapsed = start.elapsed();
    let (mut latencies, statuses, failures) = std::mem::take(&mut *results.lock().unwrap());
    latencies.sort();
    Report {
        requests: statuses.len(),
        statuses,
        failures,
        elapsed,
        latencies,
    }
}

/// One keep-alive HTTP/1.1 connection to `addr`.
pub async fn connect(
    addr: SocketAddr,
) -> Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(conn);
    Some(sender)
}

/// A request to `path` on `addr` with `body` and `headers`.
pub fn request(
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> hyper::Request<Full<Bytes>> {
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    // Invariant: callers pass valid methods, paths and header values from test code.
    b.body(Full::new(body.into()))
        .expect("a valid test request")
}
