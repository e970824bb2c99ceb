//! Property-based API test: schemathesis (tests/requirements.txt) generates requests from
//! `openapi.json`, valid and invalid, sends them to the real app over the loopback listener,
//! and checks that no answer is a server error, every answer matches the document (status,
//! content type, headers, body schema), schema-violating input is refused, and requests
//! without credentials are refused. Bounded (few examples per operation, one worker, a time
//! limit per run) so the test command stays fast; `LE_SCHEMATHESIS_EXAMPLES` and
//! `LE_SCHEMATHESIS_SECONDS` raise the bounds for a longer hunt.
//!
//! Two runs: the admin operations with the admin token, and the public ones without it (the
//! validate route reads a bearer token as the license token, so the admin token would change
//! what it is asked).
//!
//! One check is left out: `positive_data_acceptance` (every schema-valid request succeeds).
//! Some rules cannot be written in JSON Schema: a new license's end date must be in the future,
//! a cursor must be one the API returned, and the public routes' length limits count UTF-8
//! bytes where JSON Schema counts characters. The opposite check, that schema-violating input
//! is refused, runs everywhere; the integration tests cover valid requests.

use integration_tests::{
    app, migrated_database, redis_runtime_config, redis_url, root, TEST_ADMIN_TOKEN,
};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

const ADMIN_PATHS: &str = "^/api/v1/admin/";

fn schemathesis(addr: SocketAddr, admin: bool) -> (bool, String) {
    let python = std::env::var("LE_TEST_PYTHON")
        .expect("LE_TEST_PYTHON is not set: run the tests with scripts/test.sh");
    let examples = std::env::var("LE_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "5".to_owned());
    let seconds = std::env::var("LE_SCHEMATHESIS_SECONDS").unwrap_or_else(|_| "60".to_owned());
    let report =
        std::env::temp_dir().join(format!("le-schemathesis-{}-{admin}", std::process::id()));
    let mut cmd = Command::new(python);
    cmd.args([
        "-c",
        "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())",
        "run",
    ])
    .arg(root().join("openapi.json"))
    .args(["--url", &format!("http://{addr}")])
    .args([
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
    ])
    .args(["--max-examples", &examples, "--max-time", &seconds])
    .args([
        "--workers",
        "1",
        "--seed",
        "20261127",
        "--request-timeout",
        "10",
        "--no-color",
    ])
    .arg("--report-dir")
    .arg(&report)
    .current_dir(std::env::temp_dir());
    if admin {
        cmd.args(["--include-path-regex", ADMIN_PATHS]).args([
            "--header",
            &format!("Authorization: Bearer {TEST_ADMIN_TOKEN}"),
        ]);
    } else {
        cmd.args(["--exclude-path-regex", ADMIN_PATHS]);
    }
    let out = cmd.output().expect("run schemathesis");
    let _ = std::fs::remove_dir_all(&report);
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_errors_and_no_schema_violations() {
    let db = migrated_database().await;
    let host = app(&db, redis_runtime_config(&redis_url()), &[]).await;
    let (addr, server) = host.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let runs = tokio::time::timeout(
        Duration::from_secs(600),
        tokio::task::spawn_blocking(move || [schemathesis(addr, true), schemathesis(addr, false)]),
    )
    .await
    .expect("schemathesis finished in time")
    .unwrap();
    server.abort();
    for (ok, text) in runs {
        println!("{text}");
        assert!(ok, "schemathesis found problems:\n{text}");
    }
}
