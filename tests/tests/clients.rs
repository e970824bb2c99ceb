//! The client libraries against the real app: the scenarios of `tests/clients/scenarios.json`,
//! driven once for the Rust crate (`license-edge-client`, here) and once for the Python package
//! (`clients/python`, by pytest, through the control API of
//! [`integration_tests::client_world`]).

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use integration_tests::client_world::{ClientWorld, PRODUCT, ROTATED_KID};
use license_edge_client::{Config, Error, Seat, Status, TokenError};
use serde_json::Value;

/// Every scenario this driver implements; the table must name exactly these.
const RUST_DRIVERS: [&str; 7] = [
    "acquire_renew_release",
    "no_seats_available",
    "refusals",
    "offline_grace_then_back_online",
    "offline_start_from_cache",
    "key_rotation",
    "tampered_token_from_fake_server",
];

fn table() -> Vec<Value> {
    let path = integration_tests::root().join("tests/clients/scenarios.json");
    let text = std::fs::read_to_string(&path).expect("the scenario table");
    let v: Value = serde_json::from_str(&text).expect("the scenario table is JSON");
    v["scenarios"]
        .as_array()
        .expect("a scenarios array")
        .clone()
}

fn scenario(name: &str) -> Value {
    table()
        .into_iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("scenario {name} is in tests/clients/scenarios.json"))
}

fn config(world: &ClientWorld, key: &str, machine: &str) -> Config {
    Config::new(world.url(), key, PRODUCT, machine).with_timeout(Duration::from_secs(2))
}

fn secs(s: &Value, name: &str) -> Duration {
    Duration::from_secs(s[name].as_u64().unwrap_or_else(|| panic!("{name} in {s}")))
}

/// Polls `check` every 50 ms until it holds or `limit` passes; answers whether it held.
fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn token_kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let bytes = license_edge_token::encoding::base64url_decode(header.as_bytes()).unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v["kid"].as_str().unwrap().to_owned()
}

#[test]
fn the_table_names_exactly_the_scenarios_this_driver_runs() {
    let names: BTreeSet<String> = table()
        .iter()
        .map(|s| s["name"].as_str().expect("a name").to_owned())
        .collect();
    let drivers: BTreeSet<String> = RUST_DRIVERS.iter().map(|s| s.to_string()).collect();
    assert_eq!(names, drivers);
}

#[test]
fn acquire_renew_release() {
    let s = scenario("acquire_renew_release");
    let world = ClientWorld::new();
    let (license, key) = world.license(&s["license"]);

    {
        let seat = Seat::acquire(config(&world, &key, "machine-a")).expect("a seat");
        let claims = seat.claims();
        assert_eq!(claims.sub, license);
        assert_eq!(claims.plan.as_deref(), s["expect"]["plan"].as_str());
        let features: Vec<Value> = claims.features.iter().map(|f| f.as_str().into()).collect();
        assert_eq!(Value::from(features), s["expect"]["features"]);
        assert!(matches!(seat.status(), Status::Online { .. }));
        assert_eq!(world.live_sessions(&license), 1);
        // Renewed: each heartbeat brings a token with a later exp, on the same session.
        let mut exp = claims.exp;
        for _ in 0..s["renewals"].as_u64().unwrap() {
            assert!(
                eventually(Duration::from_secs(5), || seat.claims().exp > exp),
                "renewed"
            );
            exp = seat.claims().exp;
        }
        assert_eq!(seat.claims().sid, claims.sid);
        assert_eq!(seat.failures(), 0);
        // Leaving the scope drops the seat, which releases it.
    }
    assert_eq!(
        world.live_sessions(&license),
        0,
        "dropping released the seat"
    );

    // The one seat is free: a second machine gets it, and gives it back explicitly.
    let seat = Seat::acquire(config(&world, &key, "machine-b")).expect("the freed seat");
    assert_eq!(world.live_sessions(&license), 1);
    seat.release().expect("released");
    assert_eq!(world.live_sessions(&license), 0, "release freed the seat");
}

#[test]
fn no_seats_available() {
    let s = scenario("no_seats_available");
    let world = ClientWorld::new();
    let (_, key) = world.license(&s["license"]);
    let _held = Seat::acquire(config(&world, &key, "machine-a")).expect("the one seat");
    match Seat::acquire(config(&world, &key, "machine-b")) {
        Err(Error::NoSeatsAvailable {
            max_seats,
            active_seats,
            next_available_hint,
        }) => {
            assert_eq!(max_seats, Some(1));
            assert_eq!(active_seats, Some(1));
            assert!(next_available_hint.is_some_and(|h| h.contains('T')));
        }
        other => panic!("expected no_seats_available, got {other:?}"),
    }
}

#[test]
fn refusals() {
    let s = scenario("refusals");
    let world = ClientWorld::new();
    let (_, suspended) = world.license(&s["suspended"]);
    match Seat::acquire(config(&world, &suspended, "m")) {
        Err(Error::Forbidden { code, .. }) => assert_eq!(code, "license_suspended"),
        other => panic!("expected a 403, got {other:?}"),
    }
    let (_, limited) = world.license(&s["rate_limited"]);
    // One attempt a minute: of three quick attempts, at least the third is refused even when
    // a minute's window turns between two of them.
    let mut held = Vec::new();
    let mut refused = None;
    for machine in ["m1", "m2", "m3"] {
        match Seat::acquire(config(&world, &limited, machine)) {
            Ok(seat) => held.push(seat),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    match refused {
        Some(e @ Error::RateLimited { retry_after }) => {
            assert!(retry_after.is_some_and(|d| d > Duration::ZERO && d <= Duration::from_secs(60)));
            assert!(e.is_transient());
        }
        other => panic!("expected a 429, got {other:?}"),
    }
}

#[test]
fn offline_grace_then_back_online() {
    let s = scenario("offline_grace_then_back_online");
    let world = ClientWorld::new();
    let (license, key) = world.license(&s["license"]);
    let n = s["failures_before_offline"].as_u64().unwrap() as u32;
    let grace = s["license"]["offline_grace_seconds"].as_i64().unwrap();
    let seat = Seat::acquire(
        config(&world, &key, "machine-a")
            .with_failures_before_offline(n)
            .with_clock_leeway(secs(&s, "clock_leeway"))
            .with_max_backoff(secs(&s, "max_backoff")),
    )
    .expect("a seat");
    assert_eq!(seat.claims().offline_grace, Some(grace as u32));

    world.stop();
    assert!(
        eventually(Duration::from_secs(10), || matches!(
            seat.status(),
            Status::Offline { .. }
        )),
        "offline after {n} failures: {:?}",
        seat.status()
    );
    assert!(seat.failures() >= n, "offline only after {n} failures");
    assert!(matches!(seat.last_error(), Some(Error::Unreachable(_))));
    let exp = seat.claims().exp;
    let Status::Offline { until } = seat.status() else {
        panic!("offline")
    };
    // The server's grace, and nothing longer.
    assert_eq!(unix(until), exp + grace);
    // The clock is read before each check, so a licensed answer proves the instant read was
    // inside the grace; polls are 50 ms apart (1.5 s allowed for a loaded machine).
    let mut licensed_until = SystemTime::now();
    assert!(eventually(Duration::from_secs(grace as u64 + 5), || {
        let before = SystemTime::now();
        if seat.is_licensed() {
            licensed_until = before;
            false
        } else {
            true
        }
    }));
    assert_eq!(seat.status(), Status::Lapsed);
    let last_licensed = licensed_until
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        last_licensed >= (exp + grace) as f64 - 1.5 && last_licensed < (exp + grace) as f64,
        "licensed until {last_licensed}, the grace ends at {}",
        exp + grace
    );

    world.start();
    assert!(
        eventually(Duration::from_secs(10), || matches!(
            seat.status(),
            Status::Online { .. }
        )),
        "back online by itself: {:?}",
        seat.status()
    );
    assert_eq!(seat.failures(), 0);
    assert_eq!(world.live_sessions(&license), 1);
    seat.release().expect("released");
    assert_eq!(world.live_sessions(&license), 0);
}

#[test]
fn offline_start_from_cache() {
    let s = scenario("offline_start_from_cache");
    let world = ClientWorld::new();
    let (license, key) = world.license(&s["license"]);
    let cache = tempfile::tempdir().unwrap();
    let config = || {
        config(&world, &key, "machine-a")
            .with_cache_dir(cache.path())
            .with_clock_leeway(secs(&s, "clock_leeway"))
            .with_max_backoff(secs(&s, "max_backoff"))
    };
    let first = Seat::acquire(config()).expect("a seat");
    let session = first.session_id();
    #[cfg(unix)]
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        use std::os::unix::fs::PermissionsExt;
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{:?}", entry.file_name());
    }
    assert_eq!(
        std::fs::read_dir(cache.path()).unwrap().count(),
        2,
        "jwks and the seat"
    );

    // The program stops while the server is down (its release cannot reach the server), and
    // starts again before the server is back.
    world.stop();
    assert!(matches!(first.release(), Err(Error::Unreachable(_))));
    let again = Seat::acquire(config()).expect("the cached seat, offline");
    assert!(
        matches!(again.status(), Status::Offline { .. }),
        "{:?}",
        again.status()
    );
    assert!(again.is_licensed());
    assert_eq!(again.session_id(), session);

    world.start();
    assert!(
        eventually(Duration::from_secs(10), || matches!(
            again.status(),
            Status::Online { .. }
        )),
        "online again: {:?}",
        again.status()
    );
    assert_eq!(again.session_id(), session, "the same session, renewed");
    assert_eq!(world.live_sessions(&license), 1);
}

#[test]
fn key_rotation() {
    let s = scenario("key_rotation");
    assert_eq!(s["new_kid"], ROTATED_KID);
    let world = ClientWorld::new();
    let (_, key) = world.license(&s["license"]);
    let cache = tempfile::tempdir().unwrap();
    let seat = Seat::acquire(config(&world, &key, "machine-a").with_cache_dir(cache.path()))
        .expect("a seat");
    let old_kid = token_kid(&seat.token());
    assert_ne!(old_kid, ROTATED_KID);

    world.rotate();
    assert!(
        eventually(Duration::from_secs(10), || token_kid(&seat.token())
            == ROTATED_KID),
        "renewed under the new key: {:?} {:?}",
        seat.status(),
        seat.last_error()
    );
    assert!(matches!(seat.status(), Status::Online { .. }));
    let jwks = std::fs::read_to_string(cache.path().join("jwks.json")).unwrap();
    assert!(
        jwks.contains(ROTATED_KID) && jwks.contains(&old_kid),
        "{jwks}"
    );
}

#[test]
fn tampered_token_from_fake_server() {
    let s = scenario("tampered_token_from_fake_server");
    let machine = s["machine_id"].as_str().unwrap();
    let world = ClientWorld::new();
    let fake = world.fake_server(machine);
    let attempt = |prefix: &str| {
        Seat::acquire(Config::new(
            format!("{fake}/{prefix}"),
            "LE-any",
            "cad-pro",
            machine,
        ))
    };
    assert!(
        matches!(
            attempt("tampered"),
            Err(Error::TokenRefused(TokenError::BadSignature))
        ),
        "a token changed after signing is refused"
    );
    assert!(
        matches!(
            attempt("foreign"),
            Err(Error::TokenRefused(TokenError::UnknownKey))
        ),
        "a token under a key the server never published is refused"
    );
    assert_eq!(
        world.jwks_fetches(),
        2,
        "the key set is fetched once per acquire, no more"
    );
}

/// The same table, driven by the Python package's pytest module against this world.
#[test]
fn python_client_scenarios() {
    let python = std::env::var("LE_TEST_PYTHON")
        .expect("LE_TEST_PYTHON is not set: run the tests with scripts/test.sh");
    let world = ClientWorld::new();
    let control = world.serve_control();
    let root = integration_tests::root();
    let out = std::process::Command::new(python)
        .args(["-m", "pytest", "-v", "-p", "no:cacheprovider"])
        .arg(root.join("clients/python/tests"))
        .env("LE_CLIENT_CONTROL", &control)
        .env(
            "LE_CLIENT_SCENARIOS",
            root.join("tests/clients/scenarios.json"),
        )
        .current_dir(&root)
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pytest failed:\n{stdout}\n{stderr}");
    // Every scenario of the table ran and passed (none skipped, none missing).
    for s in table() {
        let name = s["name"].as_str().unwrap();
        assert!(
            stdout.contains(&format!("test_scenario[{name}] PASSED")),
            "{name} did not pass in Python:\n{stdout}"
        );
    }
    assert!(!stdout.contains("SKIPPED"), "{stdout}");
    println!("{stdout}");
}
