//! The scripts a user and an operator run, run as they would be:
//! - `scripts/dev.sh` on a machine where no PostgreSQL answers at its default address brings its
//!   own, serves the app, sells a seat with `licensectl admin quickstart`'s printed lines, and
//!   leaves nothing running after Ctrl-C (SIGINT);
//! - `scripts/smoke.sh` fails, naming the check, against an app whose validate routes are
//!   missing (it passes against the full app in the e2e suite, on every runtime).

use integration_tests::servers::free_port;
use integration_tests::{root, TEST_ADMIN_TOKEN};
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Processes whose environment holds `marker` (every process dev.sh starts inherits it:
/// cargo, the app, pg_ctl and the postgres server it daemonizes).
fn processes_with(marker: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|v| v == marker.as_bytes()) {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    answer.split(' ').nth(1)?.parse().ok()
}

/// Kills whatever dev.sh left behind, whatever the test's outcome.
struct Leftovers {
    marker: String,
    dir: PathBuf,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for p in processes_with(&self.marker) {
            if let Some(pid) = p.split(':').next() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One run of scripts/dev.sh in the test's folder, its output in `dev-N.log`.
struct DevRun {
    child: std::process::Child,
    log: PathBuf,
}

/// Where and how the test runs dev.sh.
struct DevSh {
    dir: PathBuf,
    dev_dir: PathBuf,
    taken: u16,
    app_port: u16,
    runs: u32,
}

impl DevSh {
    fn start(&mut self, args: &[&str]) -> DevRun {
        self.runs += 1;
        let log = self.dir.join(format!("dev-{}.log", self.runs));
        let out = std::fs::File::create(&log).unwrap();
        // Through `env --default-signal=INT` (which then execs dev.sh, same pid): a test runner
        // started as a background job of a non-interactive shell (`cmd &`, as CI scripts do)
        // inherits SIGINT ignored, and a shell cannot trap a signal ignored on entry, so the
        // Ctrl-C below would never reach dev.sh's trap.
        let child = Command::new("env")
            .arg("--default-signal=INT")
            .arg(root().join("scripts/dev.sh"))
            .args(args)
            .env_remove("DATABASE_URL")
            .env("LE_DEV_DIR", &self.dev_dir)
            .env("LE_DEV_PG_PORT", self.taken.to_string())
            .env("LISTEN", format!("127.0.0.1:{}", self.app_port))
            .env("LE_DEV_SH_TEST", self.dir.display().to_string())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start scripts/dev.sh");
        DevRun { child, log }
    }

    fn admin_token(&self) -> String {
        std::fs::read_to_string(self.dev_dir.join("admin-token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    fn pg_port(&self) -> u16 {
        std::fs::read_to_string(self.dev_dir.join("pg/port"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// `licensectl admin --url <the app> ARGS` with the current admin token.
    fn ctl(&self, args: &[&str]) -> std::process::Output {
        Command::new(ctl())
            .arg("admin")
            .arg("--url")
            .arg(format!("http://127.0.0.1:{}", self.app_port))
            .args(args)
            .env("LICENSE_EDGE_ADMIN_TOKEN", self.admin_token())
            .output()
            .unwrap()
    }
}

impl DevRun {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_ready(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(900);
        while http_status(port, "/api/v1/health/ready/") != Some(200) {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "dev.sh exited:\n{}",
                self.log()
            );
            assert!(
                Instant::now() < deadline,
                "not ready in 900 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Ctrl-C: SIGINT to dev.sh alone; waits for it to exit.
    fn interrupt(mut self) -> String {
        Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(
            !status.success(),
            "dev.sh exits non-zero after SIGINT: {status}"
        );
        self.log()
    }
}

#[test]
fn dev_sh_brings_its_own_postgres_sells_a_seat_and_stops_everything_on_ctrl_c() {
    // "No PostgreSQL at the default address": the test points dev.sh's default port
    // (LE_DEV_PG_PORT, 5432 unless set) at a port taken by something that is not PostgreSQL.
    // That is the code path of a machine with nothing on 5432, plus the "taken" branch: the
    // private cluster must then pick another port.
    let squatter = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in squatter.incoming() {
            drop(conn); // accept and hang up: not PostgreSQL
        }
    });
    let dir =
        std::env::temp_dir().join(format!("le-dev-sh-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = format!("LE_DEV_SH_TEST={}", dir.display());
    let _leftovers = Leftovers {
        marker: marker.clone(),
        dir: dir.clone(),
    };
    let mut dev = DevSh {
        dev_dir: dir.join("dev"),
        dir,
        taken,
        app_port: free_port(),
        runs: 0,
    };
    let with_spin = Command::new("spin").arg("--version").output().is_ok();

    // First run: a new cluster, on another port than the taken one.
    let started = Instant::now();
    let mut run = dev.start(&[]);
    run.wait_ready(dev.app_port);
    let ready_after = started.elapsed();
    let log = run.log();
    assert!(
        log.contains(&format!("port {taken} is taken by something else")),
        "{log}"
    );
    assert!(
        log.contains("creating a private PostgreSQL cluster"),
        "{log}"
    );
    let runner = if with_spin {
        "served by spin up --build"
    } else {
        "served by the project's test host"
    };
    assert!(log.contains(runner), "{log}");
    let pg_port = dev.pg_port();
    assert_ne!(pg_port, taken);
    assert!(port_open(pg_port));

    // The quickstart prints the lines a user pastes: run them as printed.
    let out = dev.ctl(&["quickstart"]);
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |start: &str| {
        printed
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?}:\n{printed}"))
            .to_owned()
    };
    let script = format!(
        "set -e\n{}\n{}\n",
        line("TOKEN="),
        line("curl -s -X POST 'http://127.0.0.1:")
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    let acquired = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script}\n{said}\n{acquired}");
    assert!(
        acquired.contains("\"license_token\""),
        "the acquire answer: {acquired}"
    );
    assert!(
        said.contains("\"valid\":true") && said.contains("\"VALID\""),
        "{said}"
    );
    let license = line("  license ")
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();

    // Ctrl-C: dev.sh stops the app and the PostgreSQL it started, and nothing of it is left.
    let stopping = Instant::now();
    let log = run.interrupt();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !processes_with(&marker).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let stopped_after = stopping.elapsed();
    assert_eq!(processes_with(&marker), Vec::<String>::new(), "{log}");
    assert!(!port_open(pg_port), "PostgreSQL still listens");
    assert!(!port_open(dev.app_port), "the app still listens");
    assert!(!dev.dev_dir.join("pg/data/postmaster.pid").exists());
    assert!(log.contains("stopped the private PostgreSQL"), "{log}");

    // Second run: the same cluster and port, the license still there.
    let mut run = dev.start(&[]);
    run.wait_ready(dev.app_port);
    assert!(
        !run.log().contains("creating a private PostgreSQL cluster"),
        "{}",
        run.log()
    );
    assert_eq!(dev.pg_port(), pg_port);
    let out = dev.ctl(&["license", "get", &license]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the license outlived the restart"
    );
    let token_before = dev.admin_token();
    run.interrupt();

    // --reset: a clean database and new keys.
    let mut run = dev.start(&["--reset"]);
    run.wait_ready(dev.app_port);
    assert_ne!(dev.admin_token(), token_before, "a new admin token");
    let out = dev.ctl(&["license", "get", &license]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the license is gone after --reset"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
    run.interrupt();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !processes_with(&marker).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(processes_with(&marker), Vec::<String>::new());
    eprintln!(
        "dev.sh ({runner}): first ready after {:.1} s, everything stopped {:.1} s after SIGINT",
        ready_after.as_secs_f64(),
        stopped_after.as_secs_f64()
    );
}

fn ctl() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let target = if target.is_relative() {
        root().join(target)
    } else {
        target
    };
    target.join("debug/licensectl")
}

/// spin.toml without the validate component's routes, its sources made absolute, in `dir`.
fn manifest_without_validate(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("spin.toml")).unwrap();
    let mut kept = String::new();
    for block in text.split("\n[[trigger.http]]") {
        if block.contains("component = \"validate\"") && block.trim_start().starts_with("route") {
            continue;
        }
        if !kept.is_empty() {
            kept.push_str("\n[[trigger.http]]");
        }
        kept.push_str(block);
    }
    let target = root().join("target/");
    let kept = kept.replace(
        "source = \"target/",
        &format!("source = \"{}", target.display()),
    );
    let path = dir.join("spin-without-validate.toml");
    std::fs::write(&path, kept).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_sh_fails_naming_the_check_when_validate_is_missing() {
    let db = integration_tests::migrated_database().await;
    let dir = std::env::temp_dir().join(format!("le-smoke-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let host_port = db
        .split('@')
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let host = spin_test_host::HostBuilder::new(manifest_without_validate(&dir))
        .read_env(false)
        .runtime_config(integration_tests::redis_runtime_config(
            &integration_tests::redis_url(),
        ))
        .variable("database_url", db.as_str())
        .variable("db_host", host_port)
        .variable(
            "signing_key",
            integration_tests::test_signing_key().to_secret_text(),
        )
        .variable(
            "public_keys",
            integration_tests::public_keys_text(&[&integration_tests::test_signing_key()]),
        )
        .variable("admin_token", TEST_ADMIN_TOKEN)
        .build()
        .await
        .unwrap();
    let (addr, server) = host.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("http://{addr}");
    let out = tokio::task::spawn_blocking(move || {
        // The token as the second argument, as the pipeline passes it (e2e.rs uses the
        // environment).
        Command::new(root().join("scripts/smoke.sh"))
            .arg(url)
            .arg(TEST_ADMIN_TOKEN)
            .env_remove("LICENSE_EDGE_ADMIN_TOKEN")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    let line = |name: &str| {
        lines
            .iter()
            .find(|l| l[6..].starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name}:\n{text}"))
            .to_owned()
    };
    for failing in ["jwks", "validate a malformed token", "round: validate"] {
        assert!(line(failing).starts_with("FAIL  "), "{failing}:\n{text}");
        assert!(line(failing).contains("404"), "{failing}:\n{text}");
    }
    for passing in [
        "liveness",
        "readiness",
        "database",
        "acquire without a key",
        "openapi",
        "round: acquire",
    ] {
        assert!(line(passing).starts_with("ok    "), "{passing}:\n{text}");
    }
    assert!(
        !text.contains("round: release"),
        "the round stops at its first failure:\n{text}"
    );
    assert!(text.contains("3 check(s) FAILED"), "{text}");
}

#[test]
fn smoke_sh_says_how_to_use_it() {
    let out = Command::new(root().join("scripts/smoke.sh"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: scripts/smoke.sh URL"));
}
