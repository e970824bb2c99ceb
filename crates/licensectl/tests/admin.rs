//! Runs the built `licensectl admin` against the real app served by the test host on a
//! loopback port, with real PostgreSQL and Redis (start them with scripts/test.sh): the life of
//! a license from the command line, tables and `--json`, refusals (exit 1), and the token rules.

use std::process::{Command, Output};

use integration_tests::{
    app, migrated_database, redis_runtime_config, redis_url, TEST_ADMIN_TOKEN,
};
use serde_json::{json, Value};

struct Ctl {
    url: String,
}

impl Ctl {
    async fn run_with(&self, token: Option<&str>, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_licensectl"));
        cmd.arg("admin").args(args).arg("--url").arg(&self.url);
        cmd.env_remove("LICENSE_EDGE_ADMIN_TOKEN")
            .env_remove("LICENSE_EDGE_URL");
        if let Some(t) = token {
            cmd.env("LICENSE_EDGE_ADMIN_TOKEN", t);
        }
        tokio::task::spawn_blocking(move || cmd.output().expect("run licensectl"))
            .await
            .unwrap()
    }

    /// Runs with the admin token; must exit 0; answers stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run_with(Some(TEST_ADMIN_TOKEN), args).await;
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all).await).expect("--json prints JSON")
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_life_of_a_license_from_the_command_line() {
    let db = migrated_database().await;
    let host = app(&db, redis_runtime_config(&redis_url()), &[]).await;
    let (addr, server) = host.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let ctl = Ctl {
        url: format!("http://{addr}"),
    };

    let org = ctl.json(&["org", "create", "--name", "Acme Corp"]).await;
    let org = org["id"].as_str().unwrap().to_owned();
    let shown = ctl.ok(&["org", "get", &org]).await;
    assert!(
        shown.contains("name:") && shown.contains("Acme Corp"),
        "{shown}"
    );
    let product = ctl
        .json(&[
            "product", "create", "--org", &org, "--code", "cad-pro", "--name", "CAD Pro",
        ])
        .await;
    let product = product["id"].as_str().unwrap().to_owned();
    assert!(ctl
        .ok(&["product", "list", "--org", &org])
        .await
        .contains("cad-pro"));

    // The key is printed once, in the table output too.
    let created = ctl
        .ok(&[
            "license",
            "create",
            "--product",
            &product,
            "--max-seats",
            "2",
            "--feature",
            "export",
            "--feature",
            "cloud",
            "--plan",
            "pro",
        ])
        .await;
    let key = created
        .lines()
        .find_map(|l| l.strip_prefix("license key (shown this once; store it now): "))
        .unwrap_or_else(|| panic!("no key line in {created}"))
        .to_owned();
    let lic = created
        .lines()
        .find_map(|l| l.strip_prefix("id:"))
        .map(|s| s.trim().to_owned())
        .unwrap();
    assert!(key.starts_with("LE-"));
    assert!(created.contains("export,cloud"), "{created}");

    let list = ctl.ok(&["license", "list"]).await;
    let header = list.lines().next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("STATUS") && header.contains("SEATS"),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with(&lic) && l.contains("active")),
        "{list}"
    );
    assert!(!list.contains(&key));
    let listed = ctl
        .json(&["license", "list", "--status", "active", "--limit", "1"])
        .await;
    assert_eq!(listed["data"][0]["id"], lic.as_str());

    // A client takes a seat with the key; the CLI sees it.
    let acquire = |machine: &'static str| {
        let (host, auth) = (host.clone(), format!("Bearer {key}"));
        async move {
            let r = host
                .request(
                    "POST",
                    "/api/v1/licenses/acquire/",
                    &[("authorization", &auth)],
                    json!({"machine_id": machine}).to_string(),
                )
                .await
                .unwrap();
            assert_eq!(r.status, 201, "{}", r.text());
            let v = r.json();
            (
                v["session_id"].as_str().unwrap().to_owned(),
                v["license_token"].as_str().unwrap().to_owned(),
            )
        }
    };
    let validate = |token: String| {
        let host = host.clone();
        async move {
            let r = host
                .request(
                    "POST",
                    "/api/v1/licenses/validate/",
                    &[],
                    json!({"token": token}).to_string(),
                )
                .await
                .unwrap();
            r.json()["code"].as_str().unwrap().to_owned()
        }
    };
    let (s1, t1) = acquire("m1").await;
    let (s2, _) = acquire("m2").await;
    let shown = ctl.ok(&["license", "get", &lic]).await;
    assert!(
        shown.contains("active_seats:")
            && shown
                .lines()
                .any(|l| l.starts_with("active_seats:") && l.ends_with('2')),
        "{shown}"
    );
    assert!(shown.contains(&s1) && shown.contains(&s2), "{shown}");
    let sessions = ctl.ok(&["session", "list", &lic]).await;
    assert!(
        sessions.contains(&s1) && sessions.contains("true"),
        "{sessions}"
    );

    // Suspend, reinstate.
    let out = ctl
        .ok(&["license", "suspend", &lic, "--reason", "unpaid"])
        .await;
    assert_eq!(out, format!("license {lic} is now suspended\n"));
    assert_eq!(validate(t1.clone()).await, "LICENSE_SUSPENDED");
    assert_eq!(
        ctl.ok(&["license", "suspend", &lic]).await,
        format!("license {lic} was already suspended\n")
    );
    assert_eq!(
        ctl.ok(&["license", "reinstate", &lic]).await,
        format!("license {lic} is now active\n")
    );
    assert_eq!(validate(t1.clone()).await, "VALID");

    // Lowering the seats below the live sessions warns on stderr and ends nothing.
    let out = ctl
        .run_with(
            Some(TEST_ADMIN_TOKEN),
            &["license", "update", &lic, "--max-seats", "1"],
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: 2 live sessions exceed max_seats 1"),
        "{err}"
    );
    assert_eq!(validate(t1.clone()).await, "VALID");

    // Force release.
    assert_eq!(
        ctl.ok(&["session", "release", &s1]).await,
        format!("session {s1} released (license {lic})\n")
    );
    assert_eq!(validate(t1.clone()).await, "SESSION_ENDED");
    assert!(ctl
        .ok(&["session", "release", &s1])
        .await
        .contains("had already ended"));
    assert!(ctl
        .ok(&["session", "list", &lic, "--status", "ended"])
        .await
        .contains("force_released"));

    // Revoke; then the API refuses a reinstatement: exit 1 with the code on stderr.
    assert_eq!(
        ctl.ok(&["license", "revoke", &lic, "--reason", "chargeback"])
            .await,
        format!("license {lic} is now revoked\n")
    );
    let out = ctl
        .run_with(Some(TEST_ADMIN_TOKEN), &["license", "reinstate", &lic])
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("409 revocation_is_final"),
        "{}",
        text(&out)
    );
    let events = ctl.ok(&["audit", "license", &lic]).await;
    assert!(
        events.lines().nth(1).unwrap().contains("license.revoke"),
        "{events}"
    );
    assert!(ctl.ok(&["kv", "rebuild"]).await.starts_with("wrote "));
    assert!(ctl
        .ok(&["kv", "sweep"])
        .await
        .starts_with("swept the entries of "));
    assert!(ctl
        .ok(&["prune", "--sessions-older-than-days", "30"])
        .await
        .starts_with("deleted "));
    let out = ctl
        .run_with(Some(TEST_ADMIN_TOKEN), &["license", "get", "lic_nope"])
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404 not_found"),
        "{}",
        text(&out)
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_comes_only_from_the_environment() {
    let db = migrated_database().await;
    let host = app(&db, redis_runtime_config(&redis_url()), &[]).await;
    let (addr, server) = host.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let ctl = Ctl {
        url: format!("http://{addr}"),
    };
    // None set: a usage error naming the variable, and no request made.
    let out = ctl.run_with(None, &["org", "list"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("LICENSE_EDGE_ADMIN_TOKEN"));
    // There is no flag for it.
    let out = ctl
        .run_with(
            Some(TEST_ADMIN_TOKEN),
            &["org", "list", "--token", TEST_ADMIN_TOKEN],
        )
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // A wrong token is the API's 401.
    let out = ctl
        .run_with(Some("wrong-token-wrong-token"), &["org", "list"])
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401 unauthorized"));
    // Plain http to a non-loopback host is refused before anything is sent.
    let out = Command::new(env!("CARGO_BIN_EXE_licensectl"))
        .args([
            "admin",
            "org",
            "list",
            "--url",
            "http://licenses.example.com",
        ])
        .env("LICENSE_EDGE_ADMIN_TOKEN", TEST_ADMIN_TOKEN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("clear text"));
    // An unreachable server is exit 2 too.
    let closed = integration_tests::servers::free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_licensectl"))
        .args([
            "admin",
            "org",
            "list",
            "--url",
            &format!("http://127.0.0.1:{closed}"),
        ])
        .env("LICENSE_EDGE_ADMIN_TOKEN", TEST_ADMIN_TOKEN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(ctl.ok(&["org", "list"]).await.starts_with("(none)"));
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organization_keys_from_the_command_line() {
    let db = migrated_database().await;
    let host = app(&db, redis_runtime_config(&redis_url()), &[]).await;
    let (addr, server) = host.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let ctl = Ctl {
        url: format!("http://{addr}"),
    };
    let org = ctl.json(&["org", "create", "--name", "Acme"]).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = ctl.json(&["org", "create", "--name", "Other"]).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The key is printed once, with a line that says so.
    let created = ctl
        .ok(&[
            "keys", "create", "--org", &org, "--name", "ci", "--role", "admin",
        ])
        .await;
    let key = created
        .lines()
        .find_map(|l| l.strip_prefix("key: "))
        .unwrap_or_else(|| panic!("no key line in {created}"))
        .to_owned();
    assert!(key.starts_with("lek_"), "{created}");
    assert!(created.contains("only time the key is shown"), "{created}");
    let key_id = created
        .lines()
        .find_map(|l| l.strip_prefix("id:"))
        .map(|s| s.trim().to_owned())
        .unwrap();

    // The same environment variable carries the key; it sees its organization alone.
    let out = ctl.run_with(Some(&key), &["org", "list", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["data"].as_array().unwrap().len(), 1, "{seen}");
    assert_eq!(seen["data"][0]["id"], org.as_str());
    let out = ctl.run_with(Some(&key), &["org", "get", &other]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404"),
        "{}",
        text(&out)
    );

    let listed = ctl.ok(&["keys", "list", "--org", &org]).await;
    assert!(
        listed.lines().next().unwrap().contains("PREFIX"),
        "{listed}"
    );
    assert!(
        listed.contains(&key[..12]) && !listed.contains(&key),
        "{listed}"
    );

    let revoked = ctl.ok(&["keys", "revoke", &key_id]).await;
    assert!(revoked.contains("revoked_at:"), "{revoked}");
    let out = ctl.run_with(Some(&key), &["org", "list"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        text(&out)
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_makes_a_license_and_prints_lines_that_work_as_pasted() {
    let db = migrated_database().await;
    let host = app(&db, redis_runtime_config(&redis_url()), &[]).await;
    let (addr, server) = host.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let ctl = Ctl {
        url: format!("http://{addr}"),
    };
    let made = ctl
        .json(&["quickstart", "--max-seats", "3", "--machine-id", "ws-7"])
        .await;
    assert_eq!(made["organization"]["name"], "Acme");
    assert_eq!(made["product"]["code"], "cad-pro");
    assert_eq!(made["license"]["max_seats"], 3);
    let key = made["license"]["license_key"].as_str().unwrap();
    let acquire = made["acquire"].as_str().unwrap();
    assert!(
        acquire.contains(key) && acquire.contains(&ctl.url),
        "{acquire}"
    );
    // The lines, run by a shell as printed: a seat is sold and its token validates.
    let script = format!(
        "set -e\n{acquire}\n{}\n",
        made["validate"].as_str().unwrap()
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new("bash").arg("-c").arg(script).output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let checked: Value = serde_json::from_slice(&out.stdout).expect("validate answers JSON");
    assert_eq!(checked["code"], "VALID", "{checked}");
    assert_eq!(
        checked["license"]["mid"],
        license_edge_token::machine_id_hash("ws-7")
    );
    let id = made["license"]["id"].as_str().unwrap();
    let detail = ctl.json(&["license", "get", id]).await;
    assert_eq!(detail["active_seats"], 1, "{detail}");

    // The text form names every id and the key once.
    let printed = ctl.ok(&["quickstart"]).await;
    assert!(printed.contains("license key   LE-"), "{printed}");
    assert!(
        printed.lines().any(|l| l.starts_with("TOKEN=\"$(curl")),
        "{printed}"
    );
    assert!(printed.contains("license suspend lic_"), "{printed}");
    // A machine id that would need quoting is refused before anything is sent; a wrong token
    // is the API's 401, exit 1.
    let out = ctl
        .run_with(
            Some(TEST_ADMIN_TOKEN),
            &["quickstart", "--machine-id", "a b"],
        )
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = ctl
        .run_with(Some("wrong-token-wrong-token"), &["quickstart"])
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401 unauthorized"));
    server.abort();
}
