//! `licensectl seat` against the real app in the test host (real PostgreSQL and Redis; start
//! them with scripts/test.sh): it holds a seat, reports it, releases it, and reports a full
//! license with the server's code and exit status 1.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use integration_tests::{world, LicenseSpec};

fn seat_command(url: &str, key: &str, product: &str, machine: &str, hold: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_licensectl"));
    cmd.args([
        "seat",
        "--url",
        url,
        "--product",
        product,
        "--machine-id",
        machine,
    ])
    .args(["--hold", hold])
    .env_remove("LICENSE_EDGE_URL")
    .env("LICENSE_EDGE_LICENSE_KEY", key);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_held_from_the_terminal_is_released_and_a_full_license_says_so() {
    let world = world().await;
    let spec = LicenseSpec {
        max_seats: 1,
        ..LicenseSpec::default()
    };
    let lic = world.license(spec).await;
    let (addr, server) = world
        .host
        .listen("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = format!("http://{addr}");

    // Tokens name the product with its organization.
    let product = format!("{}/cad-pro", lic.organization_id);
    let (url2, key, product2) = (url.clone(), lic.key.clone(), product.clone());
    let (first_out, second) = tokio::task::spawn_blocking(move || {
        let mut first = seat_command(&url2, &key, &product2, "m1", "3s")
            .stdout(Stdio::piped())
            .spawn()
            .expect("run licensectl seat");
        let mut lines = BufReader::new(first.stdout.take().unwrap()).lines();
        let acquired = lines.next().unwrap().unwrap();
        // The one seat is held: a second machine is refused with the server's code.
        let second = seat_command(&url2, &key, &product2, "m2", "1s")
            .output()
            .unwrap();
        let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
        let status = first.wait().unwrap();
        ((acquired, rest, status), second)
    })
    .await
    .unwrap();
    let (acquired, rest, status) = first_out;
    assert!(status.success(), "{acquired} {rest:?}");
    assert!(
        acquired.starts_with("acquired ses_") && acquired.contains("plan pro"),
        "{acquired}"
    );
    assert!(
        rest.iter()
            .any(|l| l.starts_with("online: token valid until 20")),
        "{rest:?}"
    );
    assert_eq!(
        rest.last().map(String::as_str),
        Some("released"),
        "{rest:?}"
    );

    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.starts_with("licensectl: no_seats_available: "),
        "{stderr}"
    );

    // Released: the seat is free for the second machine now.
    let again = tokio::task::spawn_blocking(move || {
        seat_command(&url, &lic.key, &product, "m2", "0s")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    server.abort();
}
