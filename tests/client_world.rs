//! The world the client-library scenarios run in (`tests/clients/scenarios.json`): the real
//! app in the test host, with real PostgreSQL and Redis, behind a front door the test can shut
//! (every connection closed, the port refusing) and open again on the same port, restart with
//! a rotated signing key, or replace with a fake server that hands out tampered tokens.
//!
//! The Rust driver (`tests/tests/clients.rs`) calls it directly; the Python driver
//! (`clients/python/tests/test_scenarios.py`) calls the same operations over a small control
//! API ([`ClientWorld::serve_control`]) that the Rust test starts for it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use license_edge_token::{issue, machine_id_hash, Claims, KeySet};
use serde_json::{json, Value};
use spin_test_host::Host;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::{
    app, create_license, migrated_database, other_signing_key, pg_client, public_keys_text,
    redis_runtime_config, redis_url, test_signing_key, LicenseSpec,
};

/// The `kid` the server signs with after [`ClientWorld::rotate`].
pub const ROTATED_KID: &str = "test-2027-01";

/// The organization every license of a [`ClientWorld`] belongs to.
const CLIENTS_ORG: &str = "org_clients";
const CLIENTS_PRODUCT_ID: &str = "prod_clients";
/// The product the programs name: `{organization_id}/{product_code}`, the tokens' `aud`.
pub const PRODUCT: &str = "org_clients/cad-pro";

/// The app behind a front door the test controls, over a fresh database. Blocking methods:
/// it owns its own runtime, so a blocking client library can be driven from a plain test.
pub struct ClientWorld {
    rt: tokio::runtime::Runtime,
    inner: Arc<Inner>,
}

struct Inner {
    db: String,
    kv: spin_test_host::kv::Backend,
    front: Mutex<Front>,
    jwks_fetches: Arc<AtomicU64>,
}

struct Front {
    port: u16,
    upstream: SocketAddr,
    accept: Option<JoinHandle<()>>,
    app: JoinHandle<()>,
    _host: Host,
}

impl Drop for Front {
    fn drop(&mut self) {
        if let Some(a) = self.accept.take() {
            a.abort();
        }
        self.app.abort();
    }
}

impl ClientWorld {
    /// A fresh database, the app in the test host, and its front door open.
    pub fn new() -> ClientWorld {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let inner = rt.block_on(async {
            let db = migrated_database().await;
            let (host, app_addr, app_task) = serve_app(&db, false).await;
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the front");
            let port = listener.local_addr().expect("the front's address").port();
            let accept = tokio::spawn(relay_all(listener, app_addr));
            Arc::new(Inner {
                kv: spin_test_host::kv::Backend::redis(&redis_url()).expect("a Redis URL"),
                db,
                front: Mutex::new(Front {
                    port,
                    upstream: app_addr,
                    accept: Some(accept),
                    app: app_task,
                    _host: host,
                }),
                jwks_fetches: Arc::new(AtomicU64::new(0)),
            })
        });
        ClientWorld { rt, inner }
    }

    /// The server's origin, `http://127.0.0.1:PORT` (the same across stops and starts).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.inner.front().port)
    }

    /// A license with the given terms (`max_seats`, `lease_seconds`,
    /// `offline_grace_seconds`, `status`, `rate_limit_per_minute`); answers its id and key.
    pub fn license(&self, terms: &Value) -> (String, String) {
        self.rt.block_on(self.inner.license(terms))
    }

    /// Closes the front door: open connections are cut and new ones refused.
    pub fn stop(&self) {
        self.inner.stop();
    }

    /// Opens the front door again, on the same port.
    pub fn start(&self) {
        self.rt.block_on(self.inner.start());
    }

    /// Restarts the app signing with a new key ([`ROTATED_KID`]) and publishing both.
    pub fn rotate(&self) {
        self.rt.block_on(self.inner.switch_app(true));
    }

    /// Sessions of `license` holding a live lease now (on the database's clock).
    pub fn live_sessions(&self, license_id: &str) -> i64 {
        self.rt.block_on(self.inner.live_sessions(license_id))
    }

    /// Starts a fake server and answers its origin. It serves the real key set, and answers an
    /// acquire under `/tampered` with a real token for `machine_id` whose claims were changed
    /// after signing, and under `/foreign` with a token signed by a key the server never
    /// published. It counts the key-set fetches ([`ClientWorld::jwks_fetches`]).
    pub fn fake_server(&self, machine_id: &str) -> String {
        self.rt.block_on(self.inner.fake_server(machine_id))
    }

    /// Key-set fetches the fake servers have answered.
    pub fn jwks_fetches(&self) -> u64 {
        self.inner.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Serves the control API the Python driver uses, on 127.0.0.1; answers its origin.
    /// Routes: `GET /server`, `POST /server/stop|start|rotate|reset`, `POST /license` (terms
    /// as JSON), `GET /live/{license_id}`, `POST /fake` (`{"machine_id"}`),
    /// `GET /fake/jwks_fetches`.
    pub fn serve_control(&self) -> String {
        let inner = Arc::clone(&self.inner);
        self.rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind control");
            let addr = listener.local_addr().expect("control address");
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let inner = Arc::clone(&inner);
                    tokio::spawn(async move {
                        let _ = serve_one(stream, |method, path, body| {
                            let inner = Arc::clone(&inner);
                            async move { inner.control(&method, &path, &body).await }
                        })
                        .await;
                    });
                }
            });
            format!("http://{addr}")
        })
    }
}

impl Default for ClientWorld {
    fn default() -> Self {
        ClientWorld::new()
    }
}

impl Inner {
    fn front(&self) -> std::sync::MutexGuard<'_, Front> {
        self.front.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn license(&self, terms: &Value) -> (String, String) {
        let int = |name: &str, default: i64| terms[name].as_i64().unwrap_or(default) as i32;
        let status = match terms["status"].as_str().unwrap_or("active") {
            "suspended" => "suspended",
            "revoked" => "revoked",
            _ => "active",
        };
        let spec = LicenseSpec {
            max_seats: int("max_seats", 1),
            status,
            lease_seconds: int("lease_seconds", 60),
            rate_limit_per_minute: int("rate_limit_per_minute", 100_000),
            ..LicenseSpec::default()
        };
        let lic = create_license(&self.db, &self.kv, spec).await;
        let grace = int("offline_grace_seconds", 86_400);
        let pg = pg_client(&self.db).await;
        pg.execute(
            "UPDATE licenses SET offline_grace_seconds = $2 WHERE id = $1",
            &[&lic.id, &grace],
        )
        .await
        .expect("set the offline grace");
        // Every license of this world belongs to one organization's `cad-pro`, so the
        // programs name one product: PRODUCT, as tokens' `aud` says it.
        let now = crate::now_ms();
        pg.batch_execute(&format!(
            "INSERT INTO organizations (id, name, created_at) VALUES ('{CLIENTS_ORG}', 'Clients', {now}) \
             ON CONFLICT DO NOTHING; \
             INSERT INTO products (id, organization_id, code, name, created_at) \
             VALUES ('{CLIENTS_PRODUCT_ID}', '{CLIENTS_ORG}', 'cad-pro', 'CAD Pro', {now}) ON CONFLICT DO NOTHING;"
        ))
        .await
        .expect("the clients' organization");
        pg.execute(
            "UPDATE licenses SET organization_id = $2, product_id = $3 WHERE id = $1",
            &[&lic.id, &CLIENTS_ORG, &CLIENTS_PRODUCT_ID],
        )
        .await
        .expect("the license joins the clients' organization");
        (lic.id, lic.key)
    }

    fn stop(&self) {
        if let Some(accept) = self.front().accept.take() {
            // Dropping the accept task drops its relays: every connection is closed.
            accept.abort();
        }
    }

    async fn start(&self) {
        let (port, upstream, open) = {
            let f = self.front();
            (f.port, f.upstream, f.accept.is_some())
        };
        if open {
            return;
        }
        // The port was ours a moment ago; another process may take it in between, so retry
        // briefly rather than fail at once.
        let mut listener = None;
        for _ in 0..50 {
            match TcpListener::bind(("127.0.0.1", port)).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
        let listener = listener.expect("bind the front door's port again");
        self.front().accept = Some(tokio::spawn(relay_all(listener, upstream)));
    }

    /// Replaces the app behind the front door (rotated key or the original), cutting the
    /// open connections so that clients meet the new one on their next request.
    async fn switch_app(&self, rotated: bool) {
        let (host, addr, task) = serve_app(&self.db, rotated).await;
        self.stop();
        {
            let mut f = self.front();
            f.app.abort();
            f.upstream = addr;
            f.app = task;
            f._host = host;
        }
        self.start().await;
    }

    async fn live_sessions(&self, license_id: &str) -> i64 {
        pg_client(&self.db)
            .await
            .query_one(
                "SELECT count(*) FROM sessions WHERE license_id = $1 AND ended_at IS NULL \
                 AND expires_at > le_now_ms()",
                &[&license_id],
            )
            .await
            .expect("count live sessions")
            .get(0)
    }

    async fn fake_server(&self, machine_id: &str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake");
        let addr = listener.local_addr().expect("the fake's address");
        let now = crate::now_ms() / 1000;
        let mut claims = Claims::new(crate::ISSUER, "lic_fake", "cad-pro", "ses_fake", now, 600);
        claims.mid = Some(machine_id_hash(machine_id));
        claims.plan = Some("pro".into());
        claims.offline_grace = Some(86_400);
        let genuine = issue(&test_signing_key(), &claims).expect("sign");
        // The claims changed after signing: the signature no longer matches.
        let mut parts: Vec<String> = genuine.split('.').map(str::to_owned).collect();
        claims.plan = Some("enterprise".into());
        claims.max_seats = Some(1000);
        parts[1] = license_edge_token::encoding::base64url_encode(
            serde_json::to_vec(&claims).expect("claims"),
        );
        let tampered = parts.join(".");
        let foreign = issue(&other_signing_key("not-published"), &claims).expect("sign");
        let jwks = {
            let mut set = KeySet::new();
            set.insert(test_signing_key().verifying_key())
                .expect("one key");
            set.to_jwks_json()
        };
        let fetches = Arc::clone(&self.jwks_fetches);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (tampered, foreign, jwks, fetches) = (
                    tampered.clone(),
                    foreign.clone(),
                    jwks.clone(),
                    Arc::clone(&fetches),
                );
                tokio::spawn(async move {
                    let _ = serve_one(stream, |_method, path, _body| async move {
                        if path.ends_with("/.well-known/jwks.json") {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            return (200, jwks);
                        }
                        let token = if path.starts_with("/foreign/") {
                            foreign
                        } else {
                            tampered
                        };
                        let grant = json!({
                            "session_id": "ses_fake", "license_token": token,
                            "expires_at": "2030-01-01T00:00:00.000Z", "heartbeat_interval_s": 300,
                        });
                        (201, grant.to_string())
                    })
                    .await;
                });
            }
        });
        format!("http://{addr}")
    }

    async fn control(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let ok = || (200, "{}".to_owned());
        match (method, path) {
            ("GET", "/server") => (
                200,
                json!({
                    "url": format!("http://127.0.0.1:{}", self.front().port),
                    "product": PRODUCT,
                })
                .to_string(),
            ),
            ("POST", "/server/stop") => {
                self.stop();
                ok()
            }
            ("POST", "/server/start") => {
                self.start().await;
                ok()
            }
            ("POST", "/server/rotate") => {
                self.switch_app(true).await;
                ok()
            }
            ("POST", "/server/reset") => {
                self.switch_app(false).await;
                ok()
            }
            ("POST", "/license") => {
                let (id, key) = self.license(&body).await;
                (200, json!({ "id": id, "key": key }).to_string())
            }
            ("GET", p) if p.starts_with("/live/") => {
                let n = self.live_sessions(&p["/live/".len()..]).await;
                (200, json!({ "live": n }).to_string())
            }
            ("POST", "/fake") => {
                let machine = body["machine_id"].as_str().unwrap_or_default().to_owned();
                let url = self.fake_server(&machine).await;
                (200, json!({ "url": url }).to_string())
            }
            ("GET", "/fake/jwks_fetches") => (
                200,
                json!({ "count": self.jwks_fetches.load(Ordering::SeqCst) }).to_string(),
            ),
            _ => (404, json!({ "error": "no such control route" }).to_string()),
        }
    }
}

/// The app in the test host on a free loopback port, signing with the test key, or (rotated)
/// with [`ROTATED_KID`]'s key while publishing both.
async fn serve_app(db: &str, rotated: bool) -> (Host, SocketAddr, JoinHandle<()>) {
    let old = test_signing_key();
    let new = other_signing_key(ROTATED_KID);
    let (signing, public) = if rotated {
        (new.to_secret_text(), public_keys_text(&[&old, &new]))
    } else {
        (old.to_secret_text(), public_keys_text(&[&old]))
    };
    let host = app(
        db,
        redis_runtime_config(&redis_url()),
        &[("signing_key", &signing), ("public_keys", &public)],
    )
    .await;
    let (addr, task) = host
        .listen("127.0.0.1:0".parse().expect("an address"))
        .await
        .expect("serve the app");
    (host, addr, task)
}

/// Accepts connections and relays each to `upstream`; aborting this task drops every relay.
async fn relay_all(listener: TcpListener, upstream: SocketAddr) {
    let mut relays = tokio::task::JoinSet::new();
    while let Ok((mut client, _)) = listener.accept().await {
        relays.spawn(async move {
            if let Ok(mut server) = TcpStream::connect(upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
        while relays.try_join_next().is_some() {}
    }
}

/// Reads one HTTP/1.1 request (headers and a `content-length` body) and writes the answer
/// `handle` gives, JSON, then closes the connection.
async fn serve_one<F, Fut>(mut stream: TcpStream, handle: F) -> std::io::Result<()>
where
    F: FnOnce(String, String, String) -> Fut,
    Fut: std::future::Future<Output = (u16, String)>,
{
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let path = first.next().unwrap_or_default().to_owned();
    let length: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
    let (status, answer) = handle(method, path, body).await;
    let response = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
        answer.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
