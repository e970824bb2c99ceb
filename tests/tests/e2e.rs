//! The end-to-end flows, over HTTP on a loopback port, against the real app on two runtimes:
//! the project's test host, and a real Spin (`spin up`) whenever `spin` is on the PATH. Each
//! flow is one function taking the running app's address; the `on_both!` lines below make a
//! test of it per runtime, named `..._on_the_test_host` and `..._on_spin`.
//!
//! Without `spin` on the PATH the `_on_spin` tests pass after printing that they skipped (and
//! scripts/test.sh says so before the run); with `LE_REQUIRE_SPIN=1` (set by .ci/run when it
//! installed Spin) a missing `spin` fails them instead.
//!
//! On Spin the app gets the same variables through `SPIN_VARIABLE_*`, and a runtime config
//! whose default key-value store is the test's Redis, as `scripts/bench-spin.sh` does.

use integration_tests::servers::{free_port, PgServer};
use integration_tests::{
    admin_auth, load, migrated_database, pg_client, public_keys_text, redis_url, root,
    test_signing_key, TEST_ADMIN_TOKEN, TEST_VERIFY_CACHE_KEY,
};
use serde_json::{json, Value};
use spin_test_host::TestResponse;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where the app runs.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Runtime {
    TestHost,
    Spin,
}

/// A running app: its address, its database and what stops it.
struct Running {
    addr: SocketAddr,
    db: String,
    runtime: Runtime,
    _stop: Stop,
}

enum Stop {
    Task(tokio::task::JoinHandle<()>),
    Spin {
        child: std::process::Child,
        dir: PathBuf,
    },
}

impl Drop for Stop {
    fn drop(&mut self) {
        match self {
            Stop::Task(t) => t.abort(),
            Stop::Spin { child, dir } => {
                // spin up runs in its own process group: stop the group (spin and anything it
                // started).
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", "--", &format!("-{}", child.id())])
                    .status();
                let _ = child.wait();
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

/// Whether `spin` is on the PATH; when it is not, says so (and fails under LE_REQUIRE_SPIN=1).
fn spin_available() -> bool {
    let found = std::process::Command::new("spin")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("LE_REQUIRE_SPIN").as_deref() != Ok("1"),
            "LE_REQUIRE_SPIN=1 but spin is not on the PATH"
        );
        eprintln!("SKIPPED on Spin: spin is not on the PATH (the flow ran on the test host only)");
    }
    found
}

/// Starts the real app over `db` (its `host:port` is the outbound allow-list) with the test
/// variables and the shared Redis. `None` when the runtime is Spin and Spin is not installed.
async fn start(runtime: Runtime, db: &str) -> Option<Running> {
    match runtime {
        Runtime::TestHost => {
            let host = integration_tests::app(
                db,
                integration_tests::redis_runtime_config(&redis_url()),
                &[],
            )
            .await;
            let (addr, task) = host.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
            Some(Running {
                addr,
                db: db.to_owned(),
                runtime,
                _stop: Stop::Task(task),
            })
        }
        Runtime::Spin => {
            if !spin_available() {
                return None;
            }
            Some(start_spin(db).await)
        }
    }
}

async fn start_spin(db: &str) -> Running {
    use std::os::unix::process::CommandExt;
    let dir = std::env::temp_dir().join(format!(
        "le-e2e-spin-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("runtime-config.toml");
    std::fs::write(
        &config,
        format!(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n",
            redis_url()
        ),
    )
    .unwrap();
    let db_host = db
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("database_url has user@host:port/db");
    let port = free_port();
    let log = std::fs::File::create(dir.join("spin.log")).unwrap();
    let mut cmd = std::process::Command::new("spin");
    cmd.arg("up")
        .arg("-f")
        .arg(root().join("spin.toml"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--runtime-config-file")
        .arg(&config)
        .current_dir(&dir);
    for (name, _) in std::env::vars() {
        if name.starts_with("SPIN_VARIABLE_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("SPIN_VARIABLE_DATABASE_URL", db)
        .env("SPIN_VARIABLE_DB_HOST", db_host)
        .env(
            "SPIN_VARIABLE_SIGNING_KEY",
            test_signing_key().to_secret_text(),
        )
        .env(
            "SPIN_VARIABLE_PUBLIC_KEYS",
            public_keys_text(&[&test_signing_key()]),
        )
        .env("SPIN_VARIABLE_ADMIN_TOKEN", TEST_ADMIN_TOKEN)
        .env("SPIN_VARIABLE_VERIFY_CACHE_KEY", TEST_VERIFY_CACHE_KEY)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0);
    let child = cmd.spawn().expect("start spin up");
    let running = Running {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        db: db.to_owned(),
        runtime: Runtime::Spin,
        _stop: Stop::Spin {
            child,
            dir: dir.clone(),
        },
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(r) = send(running.addr, "GET", "/api/v1/health/", &[], "").await {
            if r.status == 200 {
                let log = std::fs::read_to_string(dir.join("spin.log")).unwrap_or_default();
                assert!(
                    log.contains(&format!("Serving http://127.0.0.1:{port}")),
                    "spin up serves this port: {log}"
                );
                return running;
            }
        }
        assert!(
            Instant::now() < deadline,
            "spin up did not answer in 120 s: {}",
            std::fs::read_to_string(dir.join("spin.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One request over a new connection; `None` when nothing answered.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<TestResponse> {
    use http_body_util::BodyExt;
    let mut sender = load::connect(addr).await?;
    let req = load::request(method, addr, path, headers, body.to_owned());
    let resp = tokio::time::timeout(Duration::from_secs(30), sender.send_request(req))
        .await
        .ok()?
        .ok()?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.ok()?.to_bytes();
    Some(TestResponse {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

impl Running {
    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> TestResponse {
        send(self.addr, method, path, headers, body)
            .await
            .unwrap_or_else(|| panic!("{:?}: no answer to {method} {path}", self.runtime))
    }

    async fn get(&self, path: &str) -> TestResponse {
        self.call("GET", path, &[], "").await
    }

    async fn admin(&self, method: &str, path: &str, body: Value) -> TestResponse {
        let auth = admin_auth();
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        self.call(
            method,
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            &body,
        )
        .await
    }

    /// An admin call that must answer `status`; its JSON.
    async fn admin_ok(&self, method: &str, path: &str, body: Value, status: u16) -> Value {
        let r = self.admin(method, path, body).await;
        assert_eq!(
            r.status,
            status,
            "{:?} {method} {path}: {}",
            self.runtime,
            r.text()
        );
        r.json()
    }

    /// Organization, product and license through the admin API: (license id, key).
    async fn license(&self, max_seats: i64) -> (String, String) {
        let org = self
            .admin_ok(
                "POST",
                "/api/v1/admin/organizations",
                json!({"name": "E2E"}),
                201,
            )
            .await;
        let product = self
            .admin_ok(
                "POST",
                "/api/v1/admin/products",
                json!({"organization_id": org["id"], "code": "cad-pro", "name": "CAD Pro"}),
                201,
            )
            .await;
        let lic = self
            .admin_ok(
                "POST",
                "/api/v1/admin/licenses",
                json!({"product_id": product["id"], "max_seats": max_seats,
                       "rate_limit_per_minute": 100000}),
                201,
            )
            .await;
        (
            lic["id"].as_str().unwrap().to_owned(),
            lic["license_key"].as_str().unwrap().to_owned(),
        )
    }

    async fn acquire(&self, key: &str, machine: &str) -> TestResponse {
        let auth = format!("Bearer {key}");
        self.call(
            "POST",
            "/api/v1/licenses/acquire/",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            &json!({"machine_id": machine}).to_string(),
        )
        .await
    }

    /// A granted acquire: (session id, token).
    async fn seat(&self, key: &str, machine: &str) -> (String, String) {
        let r = self.acquire(key, machine).await;
        assert_eq!(r.status, 201, "{:?}: {}", self.runtime, r.text());
        let v = r.json();
        (
            v["session_id"].as_str().unwrap().to_owned(),
            v["license_token"].as_str().unwrap().to_owned(),
        )
    }

    async fn session(&self, method: &str, key: &str, path: &str) -> TestResponse {
        let auth = format!("Bearer {key}");
        self.call(
            method,
            &format!("/api/v1/licenses/sessions/{path}"),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            "",
        )
        .await
    }

    /// The validation code of `token` for `machine`.
    async fn code(&self, token: &str, machine: &str) -> String {
        let r = self
            .call(
                "POST",
                "/api/v1/licenses/validate/",
                &[("content-type", "application/json")],
                &json!({"token": token, "machine_id": machine}).to_string(),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}: {}", self.runtime, r.text());
        r.json()["code"].as_str().unwrap().to_owned()
    }
}

macro_rules! on_both {
    ($flow:ident, $on_host:ident, $on_spin:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $on_host() {
            $flow(Runtime::TestHost).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $on_spin() {
            $flow(Runtime::Spin).await
        }
    };
}

on_both!(
    health_and_readiness,
    health_and_readiness_on_the_test_host,
    health_and_readiness_on_spin
);
on_both!(
    seat_life_cycle,
    seat_life_cycle_on_the_test_host,
    seat_life_cycle_on_spin
);
on_both!(
    oversell_race,
    oversell_race_on_the_test_host,
    oversell_race_on_spin
);
on_both!(revocation, revocation_on_the_test_host, revocation_on_spin);
on_both!(
    postgres_stopped,
    postgres_stopped_on_the_test_host,
    postgres_stopped_on_spin
);
on_both!(admin_life, admin_life_on_the_test_host, admin_life_on_spin);
on_both!(
    smoke_script,
    smoke_script_on_the_test_host,
    smoke_script_on_spin
);
on_both!(
    what_the_host_answers_itself,
    what_the_host_answers_itself_on_the_test_host,
    what_the_host_answers_itself_on_spin
);

/// Sends `request` as raw bytes and reads until the server closes: the answer's status line
/// and headers, lower-cased (empty when the server closed without answering).
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer));
    let _ = read.await.expect("the server answers or closes");
    let text = String::from_utf8_lossy(&answer).into_owned();
    text.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_lowercase()
}

/// What the runtime answers before (or instead of) the app, found on Spin 4.1 and matched by
/// the test host: no usable Host for a component route closes the connection unanswered; a
/// header value that is not UTF-8 gets an empty 500; Spin's own health route and a 404 answer
/// whatever the Host.
async fn what_the_host_answers_itself(runtime: Runtime) {
    let Some(app) = start(runtime, &migrated_database().await).await else {
        return;
    };
    let get = |path: &str, headers: &str| {
        format!("GET {path} HTTP/1.1\r\n{headers}connection: close\r\n\r\n").into_bytes()
    };
    for headers in ["", "host: \r\n", "host: a b\r\n"] {
        let answer = raw(app.addr, &get("/api/v1/health/", headers)).await;
        assert_eq!(answer, "", "{runtime:?}: {headers:?}");
        let answer = raw(app.addr, &get("/.well-known/spin/health", headers)).await;
        assert!(
            answer.starts_with("http/1.1 200 ok"),
            "{runtime:?}: {answer}"
        );
        assert!(!answer.contains("content-type"), "{runtime:?}: {answer}");
        let answer = raw(app.addr, &get("/nowhere", headers)).await;
        assert!(answer.starts_with("http/1.1 404"), "{runtime:?}: {answer}");
    }
    let mut latin1 = b"GET /api/v1/health/ HTTP/1.1\r\nhost: x\r\nx-name: caf".to_vec();
    latin1.extend_from_slice(b"\xe9\r\nconnection: close\r\n\r\n");
    let answer = raw(app.addr, &latin1).await;
    assert!(answer.starts_with("http/1.1 500"), "{runtime:?}: {answer}");
    assert!(
        answer.contains("content-length: 0"),
        "{runtime:?}: {answer}"
    );
    let utf8 = get("/api/v1/health/", "host: x\r\nx-name: café\r\n");
    let answer = raw(app.addr, &utf8).await;
    assert!(answer.starts_with("http/1.1 200"), "{runtime:?}: {answer}");
}

/// Liveness, readiness (the key-value store), the database check, the routing rules both
/// runtimes share.
async fn health_and_readiness(runtime: Runtime) {
    let Some(app) = start(runtime, &migrated_database().await).await else {
        return;
    };
    for path in ["/api/v1/health", "/api/v1/health/"] {
        let r = app.get(path).await;
        assert_eq!(r.status, 200, "{runtime:?} {path}");
        assert_eq!(r.json()["status"], "healthy");
    }
    for path in ["/api/v1/health/ready", "/api/v1/health/ready/"] {
        let r = app.get(path).await;
        let v = r.json();
        assert_eq!(r.status, 200, "{runtime:?} {path}: {v}");
        assert_eq!(v["checks"], json!({"key_value": "connected"}));
    }
    for path in ["/api/v1/health/db", "/api/v1/health/db/"] {
        let r = app.get(path).await;
        let v = r.json();
        assert_eq!(r.status, 200, "{runtime:?} {path}: {v}");
        assert_eq!(v["status"], "ok");
        assert_eq!(v["checks"], json!({"database": "connected"}));
    }
    let r = app.call("POST", "/api/v1/health/", &[], "").await;
    assert_eq!(r.status, 405, "{runtime:?}");
    assert_eq!(r.header("allow"), Some("GET"));
    let r = app.get("/api/v1/nowhere").await;
    assert_eq!(
        (r.status, r.body.len()),
        (404, 0),
        "{runtime:?}: unmatched path"
    );
    let r = app.get("/.well-known/spin/health").await;
    assert_eq!(r.status, 200, "{runtime:?}");
    let r = app.get("/.well-known/jwks.json").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("public, max-age=300"));
    let r = app.get("/api/v1/openapi.json").await;
    assert_eq!(r.status, 200);
    assert!(r.json()["paths"]["/api/v1/licenses/acquire/"].is_object());
}

/// Acquire, the same machine again, the seat limit, heartbeat, release, a freed seat, and the
/// ended session refused at the edge.
async fn seat_life_cycle(runtime: Runtime) {
    let Some(app) = start(runtime, &migrated_database().await).await else {
        return;
    };
    let (_, key) = app.license(2).await;
    let (s1, t1) = app.seat(&key, "m1").await;
    assert_eq!(app.code(&t1, "m1").await, "VALID");
    assert_eq!(app.code(&t1, "m2").await, "MACHINE_MISMATCH");
    let again = app.acquire(&key, "m1").await;
    assert_eq!(again.status, 200, "{runtime:?}: {}", again.text());
    assert_eq!(again.json()["session_id"], s1.as_str());
    let (_, t2) = app.seat(&key, "m2").await;
    let full = app.acquire(&key, "m3").await;
    assert_eq!(full.status, 409, "{runtime:?}: {}", full.text());
    let v = full.json();
    assert_eq!(v["error"]["code"], "no_seats_available");
    assert_eq!(v["error"]["details"]["active_seats"], 2);

    let r = app
        .session("PATCH", &key, &format!("{s1}/heartbeat/"))
        .await;
    assert_eq!(r.status, 200, "{runtime:?}: {}", r.text());
    let renewed = r.json()["license_token"].as_str().unwrap().to_owned();
    assert_eq!(app.code(&renewed, "m1").await, "VALID");

    let r = app.session("DELETE", &key, &format!("{s1}/")).await;
    assert_eq!(r.status, 200, "{runtime:?}: {}", r.text());
    let again = app.session("DELETE", &key, &format!("{s1}/")).await;
    // The same answer, under its own request id.
    let without_meta = |mut v: Value| {
        v.as_object_mut().map(|o| o.remove("meta"));
        v
    };
    assert_eq!(
        (again.status, without_meta(again.json())),
        (200, without_meta(r.json())),
        "release is idempotent"
    );
    for t in [&t1, &renewed] {
        assert_eq!(app.code(t, "m1").await, "SESSION_ENDED");
    }
    assert_eq!(app.code(&t2, "m2").await, "VALID");
    let r = app
        .session("PATCH", &key, &format!("{s1}/heartbeat/"))
        .await;
    assert_eq!(r.status, 410);
    assert_eq!(r.json()["error"]["code"], "session_expired");
    let (_, t3) = app.seat(&key, "m3").await;
    assert_eq!(app.code(&t3, "m3").await, "VALID");
    let r = app.acquire("LE-NOT-A-KEY", "m4").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "unauthorized");
}

/// 200 acquires at once for 5 seats, 3 times: exactly 5 granted each time.
async fn oversell_race(runtime: Runtime) {
    let Some(app) = start(runtime, &migrated_database().await).await else {
        return;
    };
    let addr = app.addr;
    for round in 0..3 {
        let (id, key) = app.license(5).await;
        let report = load::run(addr, 200, 200, move |i| {
            let auth = format!("Bearer {key}");
            load::request(
                "POST",
                addr,
                "/api/v1/licenses/acquire/",
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                json!({"machine_id": format!("race-{round}-{i}")}).to_string(),
            )
        })
        .await;
        assert_eq!(
            report.failures, 0,
            "{runtime:?} round {round}: transport failures"
        );
        assert_eq!(
            report.count(201),
            5,
            "{runtime:?} round {round}: {:?}",
            report.statuses
        );
        assert_eq!(report.count(409), 195, "{runtime:?} round {round}");
        let live: i64 = pg_client(&app.db)
            .await
            .query_one(
                "SELECT count(*) FROM sessions WHERE license_id = $1 AND ended_at IS NULL",
                &[&id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(live, 5, "{runtime:?} round {round}");
    }
}

/// Suspension, reinstatement, a forced release and revocation, each seen by the next
/// validation.
async fn revocation(runtime: Runtime) {
    let Some(app) = start(runtime, &migrated_database().await).await else {
        return;
    };
    let (lic, key) = app.license(3).await;
    let (_, t1) = app.seat(&key, "m1").await;
    let (s2, t2) = app.seat(&key, "m2").await;
    let base = format!("/api/v1/admin/licenses/{lic}");
    app.admin_ok(
        "POST",
        &format!("{base}/suspend"),
        json!({"reason": "e2e"}),
        200,
    )
    .await;
    assert_eq!(app.code(&t1, "m1").await, "LICENSE_SUSPENDED");
    let r = app.acquire(&key, "m3").await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (403, json!("license_suspended"))
    );
    app.admin_ok("POST", &format!("{base}/reinstate"), Value::Null, 200)
        .await;
    assert_eq!(app.code(&t1, "m1").await, "VALID");
    app.admin_ok(
        "DELETE",
        &format!("/api/v1/admin/sessions/{s2}"),
        Value::Null,
        200,
    )
    .await;
    assert_eq!(app.code(&t2, "m2").await, "SESSION_ENDED");
    assert_eq!(app.code(&t1, "m1").await, "VALID");
    app.admin_ok("POST", &format!("{base}/revoke"), Value::Null, 200)
        .await;
    assert_eq!(app.code(&t1, "m1").await, "LICENSE_REVOKED");
    let r = app.acquire(&key, "m1").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "license_revoked");
}

/// With PostgreSQL stopped, validation keeps answering from the key-value store, readiness
/// names the database, seats answer 503; after a restart all works again.
async fn postgres_stopped(runtime: Runtime) {
    let pg = PgServer::start();
    let db = pg.url("postgres");
    le_migrate::apply(&pg_client(&db).await).await.unwrap();
    let Some(app) = start(runtime, &db).await else {
        return;
    };
    let (lic, key) = app.license(2).await;
    let (_, token) = app.seat(&key, "m1").await;
    pg.stop();
    assert_eq!(app.code(&token, "m1").await, "VALID");
    // Readiness is the key-value store's: the pods stay in the load balancer and validate.
    let r = app.get("/api/v1/health/ready/").await;
    let v = r.json();
    assert_eq!(r.status, 200, "{runtime:?}: {v}");
    assert_eq!(v["checks"]["key_value"], "connected", "{v}");
    let r = app.get("/api/v1/health/db/").await;
    assert_eq!(r.status, 503, "{runtime:?}: {}", r.text());
    assert_eq!(r.json()["error"]["code"], "database_unavailable");
    let r = app.acquire(&key, "m2").await;
    assert_eq!(r.status, 503, "{runtime:?}: {}", r.text());
    assert_eq!(r.json()["error"]["code"], "database_unavailable");
    let r = app
        .admin("GET", &format!("/api/v1/admin/licenses/{lic}"), Value::Null)
        .await;
    assert_eq!(r.status, 503, "{runtime:?}: {}", r.text());
    assert_eq!(r.json()["error"]["code"], "database_unavailable");

    pg.start_again();
    // The first request after the restart may still meet a pooled connection to the old
    // server; within a few tries everything answers.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = app.get("/api/v1/health/db/").await;
        if r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{runtime:?}: the database check still fails after the restart: {}",
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, t2) = app.seat(&key, "m2").await;
    assert_eq!(app.code(&t2, "m2").await, "VALID");
    assert_eq!(app.code(&token, "m1").await, "VALID");
}

/// The admin API's life of a license: create, list, get, update, sessions, audit, rebuild,
/// and the same 401 without the token.
async fn admin_life(runtime: Runtime) {
    let Some(app) = start(runtime, &migrated_database().await).await else {
        return;
    };
    let r = app
        .call("GET", "/api/v1/admin/organizations", &[], "")
        .await;
    assert_eq!(r.status, 401, "{runtime:?}");
    assert_eq!(r.json()["error"]["code"], "unauthorized");
    let (lic, key) = app.license(1).await;
    let listed = app
        .admin_ok("GET", "/api/v1/admin/licenses", Value::Null, 200)
        .await;
    assert_eq!(listed["data"][0]["id"], lic.as_str(), "{listed}");
    let base = format!("/api/v1/admin/licenses/{lic}");
    let (session, token) = app.seat(&key, "m1").await;
    let detail = app.admin_ok("GET", &base, Value::Null, 200).await;
    assert_eq!(detail["active_seats"], 1, "{detail}");
    assert!(
        !detail.to_string().contains(&key),
        "the key is never shown again"
    );
    let updated = app
        .admin_ok("PATCH", &base, json!({"max_seats": 3, "plan": "team"}), 200)
        .await;
    assert_eq!(
        (updated["max_seats"].clone(), updated["plan"].clone()),
        (json!(3), json!("team"))
    );
    app.seat(&key, "m2").await;
    let sessions = app
        .admin_ok("GET", &format!("{base}/sessions"), Value::Null, 200)
        .await;
    assert_eq!(
        sessions["data"].as_array().map(Vec::len),
        Some(2),
        "{sessions}"
    );
    let audit = app
        .admin_ok("GET", &format!("{base}/audit-events"), Value::Null, 200)
        .await;
    assert!(
        audit["data"].as_array().is_some_and(|a| a.len() >= 4),
        "{audit}"
    );
    let rebuilt = app
        .admin_ok("POST", "/api/v1/admin/kv/rebuild", Value::Null, 200)
        .await;
    assert!(
        rebuilt["licenses_written"].as_u64().is_some_and(|n| n >= 1),
        "{rebuilt}"
    );
    assert_eq!(app.code(&token, "m1").await, "VALID");
    let released = app
        .admin_ok(
            "DELETE",
            &format!("/api/v1/admin/sessions/{session}"),
            Value::Null,
            200,
        )
        .await;
    assert_eq!(released["outcome"], "released");
    assert_eq!(app.code(&token, "m1").await, "SESSION_ENDED");
    let r = app
        .admin("GET", "/api/v1/admin/licenses/lic_nope", Value::Null)
        .await;
    assert_eq!(r.status, 404, "{runtime:?}: {}", r.text());
}

/// scripts/smoke.sh, with the admin round, passes against the app.
async fn smoke_script(runtime: Runtime) {
    let Some(app) = start(runtime, &migrated_database().await).await else {
        return;
    };
    let url = format!("http://{}", app.addr);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(root().join("scripts/smoke.sh"))
            .arg(url)
            .env("LICENSE_EDGE_ADMIN_TOKEN", TEST_ADMIN_TOKEN)
            .output()
            .expect("run scripts/smoke.sh")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{runtime:?}:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("FAIL"), "{text}");
    assert!(text.contains("all 14 checks passed"), "{text}");

    // SMOKE_ADMIN_URL sends the round's admin calls elsewhere (a deployment that serves the
    // admin API apart): pointed at a closed port, the round fails at its first admin call and
    // the public checks still pass.
    let url = format!("http://{}", app.addr);
    let closed = format!("http://127.0.0.1:{}", free_port());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(root().join("scripts/smoke.sh"))
            .arg(url)
            .env("LICENSE_EDGE_ADMIN_TOKEN", TEST_ADMIN_TOKEN)
            .env("SMOKE_ADMIN_URL", closed)
            .output()
            .expect("run scripts/smoke.sh")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{runtime:?}:\n{text}");
    assert!(
        text.contains("FAIL  admin: temporary license   no answer"),
        "{text}"
    );
    assert!(text.contains("1 check(s) FAILED, 7 passed"), "{text}");
}
