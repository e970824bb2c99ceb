//! `licensectl seat`: holds a seat from a terminal with the client library
//! (`license-edge-client`), to try the whole flow by hand: acquire and verify, watch it renew
//! (and go offline and lapse if the server goes away, and come back), release.
//!
//! The license key comes from `LICENSE_EDGE_LICENSE_KEY`, never from a flag. It releases when
//! `--hold` has passed, or else when Enter is pressed or standard input closes. Ctrl-C ends
//! the process without a release: the lease then lapses by itself.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use license_edge_client::{machine, Config, Error, Seat, Status};

use crate::duration;

/// Where the license key is read from.
pub const KEY_ENV: &str = "LICENSE_EDGE_LICENSE_KEY";

/// Arguments of `licensectl seat`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The server's origin (https://, or http:// to a loopback address).
    #[arg(long, env = "LICENSE_EDGE_URL")]
    url: String,
    /// The product as `{organization_id}/{product_code}` (the token's audience).
    #[arg(long)]
    product: String,
    /// The machine id to hold the seat for [default: this machine's fingerprint].
    #[arg(long)]
    machine_id: Option<String>,
    /// A folder for the cached key set and last good token (offline start).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Release after this long (90s, 10m, 2h) instead of on Enter.
    #[arg(long, value_parser = duration::parse_secs)]
    hold: Option<u32>,
    /// Failed heartbeats in a row before the seat counts as offline.
    #[arg(long, default_value_t = 3)]
    failures_before_offline: u32,
    /// The issuer tokens must carry (the server's token_issuer).
    #[arg(long, default_value = "license-edge")]
    issuer: String,
}

/// Acquires, reports every change of state until it is time to release, then releases.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let key = std::env::var(KEY_ENV)
        .ok()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .with_context(|| {
            format!("set {KEY_ENV} to the license key (it is never taken as a flag)")
        })?;
    let machine_id = match args.machine_id {
        Some(m) => m,
        None => {
            machine::fingerprint().context("reading this machine's id (or pass --machine-id)")?
        }
    };
    let mut config = Config::new(&args.url, key, &args.product, &machine_id)
        .with_issuer(&args.issuer)
        .with_failures_before_offline(args.failures_before_offline);
    if let Some(dir) = &args.cache_dir {
        config = config.with_cache_dir(dir);
    }
    let seat = match Seat::acquire(config) {
        Ok(seat) => seat,
        Err(e) => return Ok(refused(&e)),
    };
    let claims = seat.claims();
    println!(
        "acquired {} for machine {machine_id}: license {}, plan {}, features [{}], {} seats, offline grace {} s",
        seat.session_id(),
        claims.sub,
        claims.plan.as_deref().unwrap_or("-"),
        claims.features.join(", "),
        claims.max_seats.map_or("?".into(), |n| n.to_string()),
        claims.offline_grace.unwrap_or(0),
    );
    let done = release_signal(args.hold);
    let mut last = String::new();
    loop {
        let now = describe(&seat);
        if now != last {
            println!("{now}");
            last = now;
        }
        match done.recv_timeout(Duration::from_millis(250)) {
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            _ => break,
        }
    }
    match seat.release() {
        Ok(()) => {
            println!("released");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(refused(&e)),
    }
}

/// Fires when `hold` has passed, or (without it) on Enter or end of input.
fn release_signal(hold: Option<u32>) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel();
    match hold {
        Some(secs) => {
            let until = Instant::now() + Duration::from_secs(secs.into());
            std::thread::spawn(move || {
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
                let _ = tx.send(());
            });
        }
        None => {
            println!("press Enter (or close standard input) to release");
            std::thread::spawn(move || {
                let _ = std::io::stdin().lock().lines().next();
                let _ = tx.send(());
            });
        }
    }
    rx
}

fn describe(seat: &Seat) -> String {
    match seat.status() {
        Status::Online { until } => format!("online: token valid until {}", rfc3339(until)),
        Status::Offline { until } => format!(
            "offline after {} failed heartbeats ({}): licensed until {}",
            seat.failures(),
            seat.last_error()
                .map_or_else(String::new, |e| e.to_string()),
            rfc3339(until)
        ),
        Status::Lapsed => format!(
            "lapsed: not licensed ({})",
            seat.last_error()
                .map_or_else(|| "the offline grace ran out".into(), |e| e.to_string())
        ),
        Status::Released => "released".into(),
    }
}

fn rfc3339(t: SystemTime) -> String {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    license_edge::time::rfc3339_from_millis(ms)
}

/// Prints a refusal (its code first) and answers the exit code: 1 for the server's refusals
/// and tokens that do not verify, 2 for an unreachable server or bad settings.
fn refused(e: &Error) -> ExitCode {
    eprintln!("licensectl: {}: {e}", e.code());
    match e {
        Error::Unreachable(_) | Error::Config(_) | Error::MachineId(_) | Error::Cache(_) => {
            ExitCode::from(crate::EXIT_USAGE)
        }
        _ => ExitCode::from(crate::EXIT_REFUSED),
    }
}
