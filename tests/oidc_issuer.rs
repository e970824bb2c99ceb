//! A small OpenID Connect issuer of the tests' own, on loopback: it publishes a JWKS at
//! `/jwks` and signs RS256 ID tokens with keys it holds, and can rotate its keys, fail, or hang,
//! so that tests can drive every path of the acquire component's sign-in.

use license_edge_token::encoding::base64url_encode;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How the issuer answers `/jwks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwksMode {
    /// The published keys, 200.
    Serve,
    /// 500, no body.
    Fail,
    /// Accepts the connection and never answers.
    Hang,
}

struct State {
    /// (kid, key) published, in order.
    published: Vec<(String, RsaPrivateKey)>,
    mode: JwksMode,
    cache_control: Option<String>,
}

/// The issuer. Dropping it stops nothing (its task ends with the test's runtime).
pub struct Issuer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    fetches: Arc<AtomicUsize>,
    /// The `iss` its tokens carry.
    pub issuer: String,
    /// The `aud` its tokens carry (the project id).
    pub audience: String,
}

/// RSA keys are slow to make: a few per process, made once.
pub fn rsa_key(n: usize) -> RsaPrivateKey {
    static KEYS: OnceLock<Mutex<Vec<RsaPrivateKey>>> = OnceLock::new();
    let keys = KEYS.get_or_init(Mutex::default);
    let mut keys = keys.lock().unwrap();
    while keys.len() <= n {
        keys.push(RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("an RSA key"));
    }
    keys[n].clone()
}

/// The public JWK of `key` under `kid`.
pub fn jwk(key: &RsaPrivateKey, kid: &str) -> Value {
    let public = key.to_public_key();
    json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
           "n": base64url_encode(public.n().to_bytes_be()),
           "e": base64url_encode(public.e().to_bytes_be())})
}

/// A compact JWS of `claims` with `header`, signed RS256 by `key` (whatever the header says).
pub fn sign_rs256(key: &RsaPrivateKey, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        base64url_encode(header.to_string()),
        base64url_encode(claims.to_string())
    );
    let digest = Sha256::digest(input.as_bytes());
    let sig = key
        .sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
        .expect("sign");
    format!("{input}.{}", base64url_encode(sig))
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl Issuer {
    /// Starts an issuer publishing one key (`kid-0`), with `Cache-Control: max-age=3600`.
    pub async fn start(project: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            published: vec![("kid-0".into(), rsa_key(0))],
            mode: JwksMode::Serve,
            cache_control: Some("public, max-age=3600".into()),
        }));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (st, count) = (state.clone(), fetches.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let (st, count) = (st.clone(), count.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut got = 0;
                    while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf[got..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got += n,
                        }
                        if got == buf.len() {
                            return;
                        }
                    }
                    let head = String::from_utf8_lossy(&buf[..got]).into_owned();
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let (mode, body, cache) = {
                        let s = st.lock().unwrap();
                        let keys: Vec<Value> =
                            s.published.iter().map(|(kid, k)| jwk(k, kid)).collect();
                        (
                            s.mode,
                            json!({ "keys": keys }).to_string(),
                            s.cache_control.clone(),
                        )
                    };
                    if path != "/jwks" {
                        let _ = stream
                            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await;
                        return;
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    match mode {
                        JwksMode::Hang => {
                            tokio::time::sleep(std::time::Duration::from_secs(600)).await;
                        }
                        JwksMode::Fail => {
                            let _ = stream
                                .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                                .await;
                        }
                        JwksMode::Serve => {
                            let cache = cache
                                .map(|c| format!("cache-control: {c}\r\n"))
                                .unwrap_or_default();
                            let resp = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{cache}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                                body.len()
                            );
                            let _ = stream.write_all(resp.as_bytes()).await;
                        }
                    }
                });
            }
        });
        Issuer {
            addr,
            state,
            fetches,
            issuer: format!("https://securetoken.google.com/{project}"),
            audience: project.to_owned(),
        }
    }

    /// `http://127.0.0.1:PORT`, for `oidc_jwks_origin`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The JWKS URL, for `oidc_jwks_url`.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.origin())
    }

    /// The app variables that make the acquire component trust this issuer.
    pub fn variables(&self) -> Vec<(&'static str, String)> {
        vec![
            ("oidc_issuer", self.issuer.clone()),
            ("oidc_audience", self.audience.clone()),
            ("oidc_jwks_url", self.jwks_url()),
            ("oidc_jwks_origin", self.origin()),
        ]
    }

    /// How many times `/jwks` was asked for.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Sets how `/jwks` answers.
    pub fn set_mode(&self, mode: JwksMode) {
        self.state.lock().unwrap().mode = mode;
    }

    /// Sets the `Cache-Control` of `/jwks` (None: no header).
    pub fn set_cache_control(&self, value: Option<&str>) {
        self.state.lock().unwrap().cache_control = value.map(str::to_owned);
    }

    /// Publishes exactly these keys (index into [`rsa_key`], kid).
    pub fn publish(&self, keys: &[(usize, &str)]) {
        self.state.lock().unwrap().published = keys
            .iter()
            .map(|(n, kid)| ((*kid).to_owned(), rsa_key(*n)))
            .collect();
    }

    /// Standard claims for `sub`, valid for an hour from now.
    pub fn claims(&self, sub: &str) -> Value {
        let now = now_s();
        json!({"iss": self.issuer, "aud": self.audience, "sub": sub, "user_id": sub,
               "email": format!("{sub}@example.com"), "email_verified": true,
               "iat": now - 5, "auth_time": now - 60, "exp": now + 3600,
               "firebase": {"sign_in_provider": "password"}})
    }

    /// An ID token for `sub` signed with key `key` under `kid`.
    pub fn token_with(&self, key: usize, kid: &str, claims: &Value) -> String {
        sign_rs256(
            &rsa_key(key),
            &json!({"alg": "RS256", "kid": kid, "typ": "JWT"}),
            claims,
        )
    }

    /// A good ID token for `sub` (key 0, `kid-0`).
    pub fn token(&self, sub: &str) -> String {
        self.token_with(0, "kid-0", &self.claims(sub))
    }
}
