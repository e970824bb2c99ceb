//! The platform: routing as Spin routes, the request headers it sets, and the manifest's
//! allow-lists enforced on real components (the app's and the test-only probe).

use integration_tests::{
    app, encode, fresh_database, pg_port, pg_url, probe_manifest, redis_runtime_config, redis_url,
    root,
};
use spin_test_host::manifest::Manifest;
use spin_test_host::outbound::{postgres_address, AllowedHosts};
use spin_test_host::runtime_config::RuntimeConfig;
use spin_test_host::HostBuilder;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn probe(kv: &[&str], hosts: &[&str]) -> spin_test_host::Host {
    let manifest = probe_manifest(
        &strings(kv),
        &strings(hosts),
        &[("greeting".into(), "hello {{ db_host }}".into())],
        &format!("db_host = {{ default = \"127.0.0.1:{}\" }}", pg_port()),
    );
    HostBuilder::new(manifest)
        .read_env(false)
        .runtime_config(redis_runtime_config(&redis_url()))
        .build()
        .await
        .expect("load the probe manifest")
}

#[tokio::test]
async fn unknown_path_is_404_with_empty_body() {
    let host = app(
        &pg_url(pg_port(), "postgres"),
        RuntimeConfig::default(),
        &[],
    )
    .await;
    for path in [
        "/",
        "/nope",
        "/api/v1",
        "/api/v1/health/ready/extra",
        "/API/v1/health",
    ] {
        let r = host.get(path).await.unwrap();
        assert_eq!(r.status, 404, "{path}");
        assert!(r.body.is_empty(), "{path}");
        assert_eq!(r.header("content-length"), Some("0"), "{path}");
    }
}

#[tokio::test]
async fn spin_well_known_routes_come_before_the_app() {
    let host = app(
        &pg_url(pg_port(), "postgres"),
        RuntimeConfig::default(),
        &[],
    )
    .await;
    let r = host.get("/.well-known/spin/health").await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    let r = host.get("/.well-known/spin/info").await.unwrap();
    assert_eq!(r.json()["name"], "license-edge");
    assert_eq!(
        host.get("/.well-known/spin/other").await.unwrap().status,
        404
    );
}

#[tokio::test]
async fn wildcard_routes_reach_their_component_with_the_error_envelope() {
    let host = app(
        &pg_url(pg_port(), "postgres"),
        RuntimeConfig::default(),
        &[],
    )
    .await;
    // (path, status, code): each answered by the component behind the wildcard, in the envelope.
    let cases = [
        ("/api/v1/admin/licenses", 401, "unauthorized"),
        ("/api/v1/admin", 401, "unauthorized"),
        (
            "/api/v1/licenses/sessions/x/heartbeat/",
            405,
            "method_not_allowed",
        ),
        ("/api/v1/licenses/sessions/x/elsewhere", 404, "not_found"),
    ];
    for (path, status, code) in cases {
        let r = host.get(path).await.unwrap();
        assert_eq!(r.status, status, "{path}: {}", r.text());
        let v = r.json();
        assert_eq!(v["error"]["code"], code, "{path}");
        assert!(v["meta"]["request_id"]
            .as_str()
            .unwrap()
            .starts_with("req_"));
    }
}

#[tokio::test]
async fn spin_headers_are_set_and_client_copies_come_first() {
    let host = probe(&["default"], &[]).await;
    let r = host
        .request(
            "GET",
            "/probe/headers/a/b?x=1",
            &[("spin-path-info", "forged")],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let v = r.json();
    let headers: Vec<(String, String)> = v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h[0].as_str().unwrap().to_owned(),
                h[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let all = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    // Spin appends its value after the client's; the SDK keeps the last, so the component sees
    // Spin's value and never the forged one.
    assert_eq!(all("spin-path-info"), vec!["/headers/a/b"]);
    assert_eq!(
        all("spin-full-url"),
        vec!["http://127.0.0.1:3000/probe/headers/a/b?x=1"]
    );
    assert_eq!(all("spin-matched-route"), vec!["/probe/..."]);
    assert_eq!(all("spin-raw-component-route"), vec!["/probe/..."]);
    assert_eq!(all("spin-component-route"), vec!["/probe"]);
    assert_eq!(all("spin-base-path"), vec!["/"]);
    assert_eq!(all("spin-client-addr").len(), 1);
    assert!(all("host").is_empty(), "host becomes the URI authority");

    let r = host.get("/users/42/").await.unwrap().json();
    let has = r["headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h[0] == "spin-path-match-id" && h[1] == "42");
    assert!(has, "{r}");
}

#[tokio::test]
async fn a_guest_panic_is_a_500_with_an_empty_body() {
    let host = probe(&["default"], &[]).await;
    let r = host.get("/probe/panic").await.unwrap();
    assert_eq!(r.status, 500);
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn a_store_not_listed_is_access_denied() {
    let host = probe(&["default"], &[]).await;
    assert_eq!(
        host.get("/probe/kv?label=default").await.unwrap().json()["ok"],
        "opened and read"
    );
    let r = host.get("/probe/kv?label=other").await.unwrap().json();
    assert_eq!(r["error"], "Error::AccessDenied", "{r}");
    let host = probe(&[], &[]).await;
    let r = host.get("/probe/kv?label=default").await.unwrap().json();
    assert_eq!(r["error"], "Error::AccessDenied", "{r}");
}

#[tokio::test]
async fn a_listed_store_missing_from_runtime_config_fails_at_load() {
    let manifest = probe_manifest(&strings(&["default", "sessions"]), &[], &[], "");
    let err = HostBuilder::new(manifest)
        .read_env(false)
        .build()
        .await
        .err()
        .expect("load must fail");
    assert!(
        format!("{err:#}")
            .contains("unknown key_value_stores label \"sessions\" for component \"probe\""),
        "{err:#}"
    );
}

#[tokio::test]
async fn postgres_hosts_not_allowed_are_refused_before_connecting() {
    let port = pg_port();
    let allowed = format!("postgres://127.0.0.1:{port}");
    let host = probe(&["default"], &[&allowed]).await;
    let ok = host
        .get(&format!(
            "/probe/pg?url={}",
            encode(&pg_url(port, "postgres"))
        ))
        .await
        .unwrap()
        .json();
    assert_eq!(ok["ok"], "[[DbValue::Int32(1), DbValue::DbNull]]", "{ok}");
    // localhost and 127.0.0.1 are different hosts for the allow-list.
    let other = format!("postgres://postgres@localhost:{port}/postgres");
    let r = host
        .get(&format!("/probe/pg?url={}", encode(&other)))
        .await
        .unwrap()
        .json();
    let msg = r["error"].as_str().unwrap();
    assert!(
        msg.contains("ConnectionFailed")
            && msg.contains(&format!(
                "address postgres://localhost:{port} is not permitted"
            )),
        "{msg}"
    );
    let r = host
        .get(&format!(
            "/probe/pg?url={}",
            encode(&pg_url(port + 1, "postgres"))
        ))
        .await
        .unwrap()
        .json();
    assert!(
        r["error"].as_str().unwrap().contains("is not permitted"),
        "{r}"
    );
}

#[tokio::test]
async fn variables_are_templates_and_undeclared_ones_are_undefined() {
    let host = probe(&["default"], &[]).await;
    let r = host.get("/probe/var?name=greeting").await.unwrap().json();
    assert_eq!(r["ok"], format!("hello 127.0.0.1:{}", pg_port()));
    let r = host.get("/probe/var?name=db_host").await.unwrap().json();
    assert!(
        r["error"].as_str().unwrap().starts_with("Error::Undefined"),
        "{r}"
    );
    let r = host.get("/probe/var?name=Bad-Name").await.unwrap().json();
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .starts_with("Error::InvalidName"),
        "{r}"
    );
}

#[tokio::test]
async fn a_required_variable_without_a_value_fails_at_load() {
    let manifest = probe_manifest(
        &[],
        &[],
        &[],
        "signing_key = { required = true, secret = true }",
    );
    let err = HostBuilder::new(&manifest)
        .read_env(false)
        .build()
        .await
        .err()
        .expect("load must fail");
    assert_eq!(
        format!("{err:#}"),
        "no provider resolved required variable(s): [Key(\"signing_key\")]"
    );
    HostBuilder::new(&manifest)
        .read_env(false)
        .variable("signing_key", "x")
        .build()
        .await
        .expect("loads once the variable has a value");
}

/// The real manifest: `validate` is granted no outbound host, so it cannot reach PostgreSQL.
/// Proven twice: the grants as written, and the probe component running with exactly
/// validate's grants and failing to open the live database.
#[tokio::test]
async fn validate_cannot_reach_postgres_under_the_real_manifest() {
    let manifest = Manifest::load(&root().join("spin.toml")).unwrap();
    let validate = &manifest.components["validate"];
    assert!(
        validate.allowed_outbound_hosts.is_empty(),
        "validate must have no outbound hosts"
    );
    let db = fresh_database().await;
    let addr = postgres_address(&db).unwrap();
    assert!(!AllowedHosts::parse(&validate.allowed_outbound_hosts)
        .unwrap()
        .allows(&addr));

    let vars: Vec<(String, String)> = validate.variables.clone().into_iter().collect();
    // Every application variable of the real manifest, with a value, so templates resolve.
    let app_vars: String = manifest
        .variables
        .keys()
        .map(|name| {
            let value = match name.as_str() {
                "db_host" => format!("127.0.0.1:{}", pg_port()),
                "database_url" => db.clone(),
                _ => "test-value".to_owned(),
            };
            format!("{name} = {{ default = {value:?} }}\n")
        })
        .collect();
    let probe_path = probe_manifest(
        &validate.key_value_stores,
        &validate.allowed_outbound_hosts,
        &vars,
        &app_vars,
    );
    // What the probe gets when it opens the database under the manifest at `path`.
    let open_db = |path| async {
        let host = HostBuilder::new(path)
            .read_env(false)
            .build()
            .await
            .unwrap();
        let url = format!("/probe/pg?url={}", encode(&db));
        host.get(&url).await.unwrap().json()
    };
    let r = open_db(probe_path).await;
    assert!(
        r["error"].as_str().unwrap().contains("is not permitted"),
        "{r}"
    );

    // The same probe with health's grants reaches it: the refusal is the manifest's doing.
    let health = &manifest.components["health"];
    let hosts: Vec<String> = health.allowed_outbound_hosts.clone();
    let probe_path = probe_manifest(&health.key_value_stores, &hosts, &[], &app_vars);
    let r = open_db(probe_path).await;
    assert!(r["ok"].is_string(), "{r}");
}

/// A pooled PostgreSQL connection is reset when it is handed out again, as Spin's pool
/// (deadpool-postgres with `RecyclingMethod::Clean`) resets it: a session setting one request
/// leaves behind is gone for the next request on the same backend. (What that costs, one round
/// trip per reused connection, is what makes the test host's database figures Spin's.)
#[tokio::test]
async fn a_reused_postgres_connection_is_reset_as_spin_resets_it() {
    use spin_test_host::bindings::spin::postgres::postgres::{DbValue, RowSet};
    use spin_test_host::pg::Pools;

    fn cells(set: &RowSet) -> (i32, String) {
        match set.rows.first().map(Vec::as_slice) {
            Some([DbValue::Int32(pid), DbValue::Str(name)]) => (*pid, name.clone()),
            other => panic!("unexpected row {other:?}"),
        }
    }
    const READ: &str =
        "SELECT pg_backend_pid() AS pid, current_setting('application_name') AS name";
    let url = fresh_database().await;
    let pools = Pools::new(1);

    let first = pools.open(&url).await.expect("open");
    first
        .query(
            "SELECT set_config('application_name', 'left-behind', false)",
            vec![],
        )
        .await
        .expect("set");
    let (pid, name) = cells(&first.query(READ, vec![]).await.expect("read"));
    assert_eq!(name, "left-behind");
    drop(first);

    let second = pools.open(&url).await.expect("open again");
    let (again, name) = cells(&second.query(READ, vec![]).await.expect("read again"));
    assert_eq!(again, pid, "a pool of one hands the same backend back");
    assert_ne!(name, "left-behind", "the reused connection was not reset");
}
