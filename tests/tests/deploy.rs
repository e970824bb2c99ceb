//! The production runtime config (`runtime-config/production.toml`) as a deployment uses it:
//! rendered the way deploy/README.md renders it into the Kubernetes Secret (envsubst of
//! `${REDIS_URL}` only), loaded by the test host like Spin's `--runtime-config-file`, and
//! serving the real app against a real Redis.

use integration_tests::servers::RedisServer;
use integration_tests::{app, pg_port, pg_url, redis_url, root};
use spin_test_host::runtime_config::{RuntimeConfig, StoreConfig};
use std::path::PathBuf;

/// The one substitution point of the template.
const PLACEHOLDER: &str = "${REDIS_URL}";

fn template() -> String {
    let path = root().join("runtime-config/production.toml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `REDIS_URL=url envsubst '${REDIS_URL}'`: the file names the variable once, so a plain
/// replacement is the same rendering (tests/deploy checks that against envsubst itself).
fn render(redis_url: &str) -> String {
    let text = template();
    assert_eq!(text.matches(PLACEHOLDER).count(), 1, "one ${{REDIS_URL}}");
    assert_eq!(text.matches("$REDIS_URL").count(), 0, "no bare $REDIS_URL");
    text.replace(PLACEHOLDER, redis_url)
}

/// Writes the rendered file where a deployment would mount it, and loads it from there.
fn load_rendered(redis_url: &str, name: &str) -> RuntimeConfig {
    let path: PathBuf = std::env::temp_dir().join(format!(
        "le-deploy-{}-{name}-runtime-config.toml",
        std::process::id()
    ));
    std::fs::write(&path, render(redis_url)).expect("write the rendered runtime config");
    let config = RuntimeConfig::load(&path);
    let _ = std::fs::remove_file(&path);
    config.expect("the rendered production runtime config loads")
}

#[test]
fn rendered_production_config_names_the_default_store_as_redis() {
    let url = redis_url();
    let config = RuntimeConfig::parse(&render(&url)).expect("parse the rendered config");
    assert_eq!(
        config.key_value_stores.get("default"),
        Some(&StoreConfig::Redis { url: url.clone() })
    );
    // Every label spin.toml's components ask for is "default"; nothing else is configured.
    assert_eq!(
        config.key_value_stores.len(),
        1,
        "{:?}",
        config.key_value_stores
    );
    // The production shape (TLS, AUTH) parses as well.
    let tls = "rediss://:secret-placeholder@10.0.0.3:6378";
    assert_eq!(
        RuntimeConfig::parse(&render(tls)).unwrap().key_value_stores["default"],
        StoreConfig::Redis { url: tls.into() }
    );
}

#[test]
fn the_unrendered_template_is_refused() {
    // Spin does not expand environment variables in a runtime config file: given as it is, the
    // url is not a Redis URL, and the host refuses it as Spin refuses to start.
    let err = RuntimeConfig::parse(&template()).expect_err("the template is not a usable config");
    assert!(format!("{err:#}").contains("redis://"), "{err:#}");
}

#[tokio::test]
async fn app_is_ready_with_the_production_config_against_real_redis() {
    let config = load_rendered(&redis_url(), "shared");
    let host = app(&pg_url(pg_port(), "postgres"), config, &[]).await;
    for path in ["/api/v1/health/ready/", "/api/v1/health/ready"] {
        let r = host.get(path).await.unwrap();
        let v = r.json();
        assert_eq!(r.status, 200, "{path}: {v}");
        assert_eq!(v["status"], "ready");
        assert_eq!(v["checks"]["key_value"], "connected", "{v}");
    }
    assert_eq!(host.get("/api/v1/health/db/").await.unwrap().status, 200);
    assert_eq!(host.get("/api/v1/health/").await.unwrap().status, 200);
}

#[tokio::test]
async fn the_production_config_really_uses_the_redis_it_names() {
    // Readiness follows the Redis in the rendered file: stop that Redis and only the key-value
    // check fails, so the store is not some built-in fallback.
    let mut redis = RedisServer::start();
    let config = load_rendered(&redis.url(), "private");
    let host = app(&pg_url(pg_port(), "postgres"), config, &[]).await;
    assert_eq!(host.get("/api/v1/health/ready/").await.unwrap().status, 200);
    redis.stop();
    let r = host.get("/api/v1/health/ready/").await.unwrap();
    let v = r.json();
    assert_eq!(r.status, 503, "{v}");
    assert_eq!(v["checks"]["key_value"], "unavailable", "{v}");
    assert_eq!(host.get("/api/v1/health/db/").await.unwrap().status, 200);
}
