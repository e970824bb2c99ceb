//! Fixtures for the integration tests: the real application in the test host, real PostgreSQL
//! and Redis servers, and a small loopback load generator for benchmarks.
//!
//! The test command (`scripts/test.sh`) starts one shared PostgreSQL and one shared Redis and
//! exports where they are (`LE_TEST_PG_PORT`, `LE_TEST_REDIS_PORT`, `LE_TEST_PG_BIN`). Tests that
//! stop servers start private ones with [`PgServer`] and [`RedisServer`], which clean up on drop.

pub mod client_world;
pub mod google;
pub mod load;
pub mod oidc_issuer;
pub mod proxy;
pub mod servers;

use license_edge_token::{KeySet, SigningKey};
use spin_test_host::runtime_config::{RuntimeConfig, StoreConfig};
use spin_test_host::{Host, HostBuilder};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// The workspace root (where `spin.toml` is).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives inside the workspace")
        .to_path_buf()
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with scripts/test.sh, which starts PostgreSQL and Redis")
    })
}

/// Port of the shared PostgreSQL server.
pub fn pg_port() -> u16 {
    required_env("LE_TEST_PG_PORT")
        .parse()
        .expect("LE_TEST_PG_PORT is a port")
}

/// URL of the shared Redis server.
pub fn redis_url() -> String {
    format!("redis://127.0.0.1:{}", required_env("LE_TEST_REDIS_PORT"))
}

/// A connection URL for database `db` on the PostgreSQL server at `port`.
pub fn pg_url(port: u16, db: &str) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/{db}")
}

/// Creates an empty database on the shared server and returns its URL, so tests never share
/// state through the database.
pub async fn fresh_database() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let port = pg_port();
    let name = format!(
        "le_test_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let (client, conn) = tokio_postgres::connect(&pg_url(port, "postgres"), tokio_postgres::NoTls)
        .await
        .expect("connect to the shared PostgreSQL");
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database");
    pg_url(port, &name)
}

/// A runtime config whose default key-value store is the Redis at `url`.
pub fn redis_runtime_config(url: &str) -> RuntimeConfig {
    let mut rc = RuntimeConfig::default();
    rc.key_value_stores.insert(
        "default".into(),
        StoreConfig::Redis {
            url: url.to_owned(),
        },
    );
    rc.with_default()
}

/// The admin token the test app is configured with.
pub const TEST_ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";
/// The key sealing the validate component's verified-token cache in tests.
pub const TEST_VERIFY_CACHE_KEY: &str = "test-verify-cache-key-0123456789abcdef";
/// The `kid` of the test signing key.
pub const TEST_KID: &str = "test-2026-11";
/// The issuer the app puts in tokens (the manifest default of `token_issuer`).
pub const ISSUER: &str = "license-edge";

/// The fixed signing key of the test app (a test key, never used elsewhere).
pub fn test_signing_key() -> SigningKey {
    SigningKey::from_seed(TEST_KID, [7; 32]).expect("a valid test key")
}

/// Another key under another kid, for rotation tests.
pub fn other_signing_key(kid: &str) -> SigningKey {
    SigningKey::from_seed(kid, [9; 32]).expect("a valid test key")
}

/// The public key set text (`public_keys`) for the given signing keys.
pub fn public_keys_text(keys: &[&SigningKey]) -> String {
    let mut set = KeySet::new();
    for k in keys {
        set.insert(k.verifying_key()).expect("distinct kids");
    }
    set.to_text()
}

/// The real application (`spin.toml`) in the test host, with the variables a test gives and
/// nothing from the environment. `database_url` also sets `db_host` to match.
pub async fn app(database_url: &str, runtime_config: RuntimeConfig, vars: &[(&str, &str)]) -> Host {
    app_builder(database_url, runtime_config, vars)
        .build()
        .await
        .expect("load spin.toml in the test host")
}

/// The app as [`app`] makes it, with everything its components write to stderr also copied
/// into the returned log, for tests that read the request log.
pub async fn app_with_log(
    database_url: &str,
    runtime_config: RuntimeConfig,
    vars: &[(&str, &str)],
) -> (Host, spin_test_host::ComponentLog) {
    let log = spin_test_host::ComponentLog::new();
    let host = app_builder(database_url, runtime_config, vars)
        .component_log(log.clone())
        .build()
        .await
        .expect("load spin.toml in the test host");
    (host, log)
}

fn app_builder(
    database_url: &str,
    runtime_config: RuntimeConfig,
    vars: &[(&str, &str)],
) -> HostBuilder {
    let host_port = database_url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("database_url has user@host:port/db");
    let mut builder = HostBuilder::new(root().join("spin.toml"))
        .read_env(false)
        .runtime_config(runtime_config)
        .variable("database_url", database_url)
        .variable("db_host", host_port)
        .variable("signing_key", test_signing_key().to_secret_text())
        .variable("public_keys", public_keys_text(&[&test_signing_key()]))
        .variable("admin_token", TEST_ADMIN_TOKEN)
        .variable("verify_cache_key", TEST_VERIFY_CACHE_KEY);
    for (k, v) in vars {
        builder = builder.variable(k, *v);
    }
    builder
}

/// Writes a manifest serving the test-only probe component at `/probe/...` and `/users/:id`
/// with exactly the grants given, and returns its path. `app_variables` is the body of the
/// manifest's `[variables]` table.
pub fn probe_manifest(
    key_value_stores: &[String],
    allowed_outbound_hosts: &[String],
    component_variables: &[(String, String)],
    app_variables: &str,
) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let wasm = root().join("target/wasm32-wasip2/release/component_probe.wasm");
    let list = |items: &[String]| {
        items
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let vars: String = component_variables
        .iter()
        .map(|(k, v)| format!("{k} = {v:?}\n"))
        .collect();
    let text = format!(
        r#"spin_manifest_version = 2
[application]
name = "probe"
version = "0.0.1"
[variables]
{app_variables}
[[trigger.http]]
route = "/probe/..."
component = "probe"
[[trigger.http]]
route = "/users/:id"
component = "probe"
[component.probe]
source = {wasm:?}
key_value_stores = [{kv}]
allowed_outbound_hosts = [{hosts}]
[component.probe.variables]
{vars}"#,
        wasm = wasm.display().to_string(),
        kv = list(key_value_stores),
        hosts = list(allowed_outbound_hosts),
    );
    let dir = std::env::temp_dir().join(format!("le-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the probe manifest folder");
    let path = dir.join(format!(
        "spin-{}.toml",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, text).expect("write the probe manifest");
    path
}

/// Percent-encodes a query parameter value (the API layer's own encoder).
pub use license_edge::api::query::percent_encode as encode;

/// A client of the PostgreSQL at `url`, for fixtures and assertions.
pub async fn pg_client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    tokio::spawn(conn);
    client
}

/// A fresh database with every migration applied.
pub async fn migrated_database() -> String {
    let url = fresh_database().await;
    le_migrate::apply(&pg_client(&url).await)
        .await
        .expect("apply migrations");
    url
}

/// A license made for a test: its ids and its key (the key is known only here).
#[derive(Debug, Clone)]
pub struct TestLicense {
    /// License id.
    pub id: String,
    /// The license key clients send.
    pub key: String,
    /// Organization id.
    pub organization_id: String,
    /// Product code.
    pub product: String,
}

/// How a test license is set up.
#[derive(Debug, Clone)]
pub struct LicenseSpec {
    /// Seat limit.
    pub max_seats: i32,
    /// Status: active, suspended or revoked.
    pub status: &'static str,
    /// End of the license (epoch ms), if any.
    pub expires_at: Option<i64>,
    /// Lease length, seconds.
    pub lease_seconds: i32,
    /// Longest borrow, seconds (0: none).
    pub max_borrow_seconds: i32,
    /// Acquire attempts per minute.
    pub rate_limit_per_minute: i32,
}

impl Default for LicenseSpec {
    fn default() -> Self {
        LicenseSpec {
            max_seats: 5,
            status: "active",
            expires_at: None,
            lease_seconds: 360,
            max_borrow_seconds: 0,
            rate_limit_per_minute: 100_000,
        }
    }
}

/// Creates an organization, product and license straight in the database and writes the
/// license's entry to the edge read model in `kv`, as the admin component does.
pub async fn create_license(
    db_url: &str,
    kv: &spin_test_host::kv::Backend,
    spec: LicenseSpec,
) -> TestLicense {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let tag = format!(
        "{}{:x}{n}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let (org, product, id) = (
        format!("org_{tag}"),
        format!("prod_{tag}"),
        format!("lic_{tag}"),
    );
    let key = format!("LE-TEST-{tag}");
    let now = now_ms();
    let client = pg_client(db_url).await;
    client
        .execute(
            "INSERT INTO organizations (id, name, created_at) VALUES ($1, 'Test Org', $2)",
            &[&org, &now],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO products (id, organization_id, code, name, created_at) VALUES ($1, $2, 'cad-pro', 'CAD Pro', $3)",
            &[&product, &org, &now],
        )
        .await
        .unwrap();
    let features = vec!["export".to_owned(), "cloud".to_owned()];
    client
        .execute(
            "INSERT INTO licenses (id, organization_id, product_id, key_hash, status, plan, max_seats, features, \
             expires_at, lease_seconds, max_borrow_seconds, rate_limit_per_minute, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'pro', $6, $7, $8, $9, $10, $11, $12, $12)",
            &[
                &id,
                &org,
                &product,
                &license_edge::seats::license_key_hash(&key),
                &spec.status,
                &spec.max_seats,
                &features,
                &spec.expires_at,
                &spec.lease_seconds,
                &spec.max_borrow_seconds,
                &spec.rate_limit_per_minute,
                &now,
            ],
        )
        .await
        .unwrap();
    let status =
        license_edge::read_model::LicenseStatus::parse(spec.status).expect("a known status");
    let state = license_edge::read_model::LicenseState {
        status,
        expires_at: spec.expires_at,
        updated_at: now,
        version: 0,
    };
    kv.set(
        &license_edge::read_model::license_key(&id),
        license_edge::read_model::encode(&state),
    )
    .await
    .expect("write the license to the read model");
    TestLicense {
        id,
        key,
        organization_id: org,
        product: "cad-pro".into(),
    }
}

/// Now, Unix epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as i64
}

/// `Authorization` for the test app's admin API.
pub fn admin_auth() -> String {
    format!("Bearer {TEST_ADMIN_TOKEN}")
}

/// Sends an admin API request with the test admin token; `body` is sent as JSON unless null.
pub async fn admin_request(
    host: &Host,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> spin_test_host::TestResponse {
    let auth = admin_auth();
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    host.request(
        method,
        path,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await
    .expect("the admin request is answered")
}

/// Every admin operation as (method, path template), from the core's route table: the one
/// list the 401 test and the OpenAPI test both use.
pub fn admin_operations() -> Vec<(&'static str, &'static str)> {
    license_edge::admin::routes()
        .map(|r| (r.method, r.path))
        .collect()
}

/// Fills a path template's `{parameter}` with a plausible id of its kind.
pub fn fill_template(template: &str) -> String {
    template
        .replace("{organization_id}", "org_0123456789abcdef0123456789abcdef")
        .replace("{product_id}", "prod_0123456789abcdef0123456789abcdef")
        .replace("{license_id}", "lic_0123456789abcdef0123456789abcdef")
        .replace("{session_id}", "ses_0123456789abcdef0123456789abcdef")
        .replace("{key_id}", "key_0123456789abcdef0123456789abcdef")
}

/// A license made through the admin API: org, product and license ids, and the key.
#[derive(Debug, Clone)]
pub struct AdminLicense {
    /// Organization id.
    pub organization_id: String,
    /// Product id.
    pub product_id: String,
    /// Product code.
    pub product_code: String,
    /// License id.
    pub id: String,
    /// The license key, shown once at creation.
    pub key: String,
}

/// Creates an organization, a product and a license through the admin API; `license` is
/// merged into the create body (`product_id` is filled in).
pub async fn admin_license(host: &Host, license: serde_json::Value) -> AdminLicense {
    let r = admin_request(
        host,
        "POST",
        "/api/v1/admin/organizations",
        serde_json::json!({"name": "Acme"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let org = r.json()["id"].as_str().expect("an org id").to_owned();
    let r = admin_request(
        host,
        "POST",
        "/api/v1/admin/products",
        serde_json::json!({"organization_id": org, "code": "cad-pro", "name": "CAD Pro"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let product = r.json()["id"].as_str().expect("a product id").to_owned();
    let mut body = serde_json::json!({"product_id": product, "max_seats": 5});
    if let (Some(b), Some(extra)) = (body.as_object_mut(), license.as_object()) {
        for (k, v) in extra {
            b.insert(k.clone(), v.clone());
        }
    }
    let r = admin_request(host, "POST", "/api/v1/admin/licenses", body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    AdminLicense {
        organization_id: org,
        product_id: product,
        product_code: "cad-pro".into(),
        id: v["id"].as_str().expect("a license id").to_owned(),
        key: v["license_key"].as_str().expect("the key").to_owned(),
    }
}

/// Acquires a seat of `license` for `machine` through the app and returns the license token.
/// Panics unless the acquire is granted (201 or 200).
pub async fn acquire_token(host: &Host, license: &TestLicense, machine: &str) -> String {
    let auth = format!("Bearer {}", license.key);
    let body = serde_json::json!({ "machine_id": machine }).to_string();
    let r = host
        .request(
            "POST",
            "/api/v1/licenses/acquire",
            &[("authorization", &auth)],
            body,
        )
        .await
        .expect("the acquire request is answered");
    assert!(
        r.status == 201 || r.status == 200,
        "acquire: {} {}",
        r.status,
        r.text()
    );
    r.json()["license_token"]
        .as_str()
        .expect("a granted acquire carries a license_token")
        .to_owned()
}

/// Inserts live sessions numbered `numbers` on `license` (their leases end `lease_ms` from
/// now), counted, as if that many machines had acquired: the state a large site license is
/// in. A negative `lease_ms` makes sessions whose holds have passed (reclaimable).
pub async fn fill_live_sessions(
    db: &str,
    license: &str,
    numbers: std::ops::RangeInclusive<i32>,
    lease_ms: i64,
) {
    let pg = pg_client(db).await;
    pg.execute(
        "INSERT INTO sessions (id, license_id, machine_hash, metadata, started_at, last_heartbeat_at, \
         expires_at, seat_until, counted) \
         SELECT 'ses_' || md5($1 || g::text), $1, md5(g::text), '{}', le_now_ms(), le_now_ms(), \
                le_now_ms() + $3, le_now_ms() + $3 + le_seat_hold_ms(), TRUE \
         FROM generate_series($2::int, $4::int) g",
        &[&license, numbers.start(), &lease_ms, numbers.end()],
    )
    .await
    .unwrap();
    pg.execute(
        "INSERT INTO license_seat_counts (license_id, counted) \
         SELECT $1, count(*) FROM sessions WHERE license_id = $1 AND counted \
         ON CONFLICT (license_id) DO UPDATE SET counted = EXCLUDED.counted",
        &[&license],
    )
    .await
    .unwrap();
}

/// Licenses whose seat count differs from their counted sessions (none, ever).
pub async fn count_drift(db: &str) -> Vec<String> {
    pg_client(db)
        .await
        .query(
            "SELECT l.id || ': ' || coalesce(c.counted, 0) || ' counted, ' || \
                    (SELECT count(*) FROM sessions s WHERE s.license_id = l.id AND s.counted) || ' sessions' \
             FROM licenses l LEFT JOIN license_seat_counts c ON c.license_id = l.id \
             WHERE coalesce(c.counted, 0) <> (SELECT count(*) FROM sessions s WHERE s.license_id = l.id AND s.counted)",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The real app in the test host over a fresh migrated database and the shared Redis: where
/// the seat and integrity suites start.
pub struct World {
    /// The app.
    pub host: Host,
    /// Its database's URL.
    pub db: String,
    /// The shared Redis, as the app's key-value store.
    pub kv: spin_test_host::kv::Backend,
}

/// A new [`World`].
pub async fn world() -> World {
    let db = migrated_database().await;
    let host = app(&db, redis_runtime_config(&redis_url()), &[]).await;
    World {
        host,
        db,
        kv: spin_test_host::kv::Backend::redis(&redis_url()).expect("a Redis URL"),
    }
}

impl World {
    /// A license in this world's database and read model.
    pub async fn license(&self, spec: LicenseSpec) -> TestLicense {
        create_license(&self.db, &self.kv, spec).await
    }
}
