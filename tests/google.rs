//! A small Cloud KMS and GKE metadata server of the tests' own, on loopback, for the `kms`
//! signer. It holds an Ed25519 key of the test's, and checks requests as the REST references
//! define them:
//!
//! - KMS: `POST /v1/{name=projects/*/locations/*/keyRings/*/cryptoKeys/*/cryptoKeyVersions/*}:asymmetricSign`
//!   with `Authorization: Bearer <token>` (a token this metadata server issued and the test
//!   has not revoked, else 401 as Google answers it), `Content-Type: application/json`, body
//!   `{"data": base64}` with an optional `dataCrc32c` (a decimal string; a mismatch is 400
//!   `INVALID_ARGUMENT`), nothing else. It answers `{"signature", "signatureCrc32c",
//!   "verifiedDataCrc32c", "name", "protectionLevel"}`.
//! - metadata: `GET /computeMetadata/v1/instance/service-accounts/default/token` with
//!   `Metadata-Flavor: Google` (else 403) answers `{"access_token", "expires_in",
//!   "token_type": "Bearer"}`.
//!
//! A request that breaks a rule is refused and recorded in [`Seen::malformed`], which tests
//! assert stays empty. Faults are set per server ([`KmsMode`], [`MetadataMode`]). Both listen
//! on 127.0.0.1 only and stop when dropped.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use ed25519_compact::{KeyPair, Seed};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The key version the fake KMS holds.
pub const KEY_VERSION: &str = "projects/le-test/locations/europe-west1/keyRings/license-edge/cryptoKeys/token-signing/cryptoKeyVersions/1";

/// How the fake KMS answers a well-formed, authorized request.
#[derive(Debug, Clone)]
pub enum KmsMode {
    /// Signs, as KMS does.
    Sign,
    /// Answers this status with Google's error body.
    Status(u16),
    /// Waits this long, then signs.
    Slow(Duration),
    /// A valid-looking answer whose signature is over other data (its checksum matches).
    WrongSignature,
    /// A signature cut to 63 bytes (its checksum matches the cut bytes).
    Truncated,
}

/// How the fake metadata server answers.
#[derive(Debug, Clone)]
pub enum MetadataMode {
    /// A fresh token `ya29.test-N`, valid for `expires_in` seconds.
    Token {
        /// Seconds the token is valid for.
        expires_in: u64,
    },
    /// Answers this status.
    Status(u16),
    /// Waits this long, then answers a token.
    Slow(Duration),
}

/// What the fake servers saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// The bearer token of every asymmetricSign request, in order.
    pub sign_tokens: Vec<String>,
    /// The data of every asymmetricSign request that was signed.
    pub signed: Vec<Vec<u8>>,
    /// Metadata token requests answered.
    pub token_requests: u32,
    /// Requests refused for breaking the REST reference (tests expect none).
    pub malformed: Vec<String>,
}

struct State {
    key: KeyPair,
    kms: KmsMode,
    metadata: MetadataMode,
    issued: Vec<String>,
    revoked: HashSet<String>,
    seen: Seen,
}

/// The fake KMS and metadata server.
pub struct FakeGoogle {
    state: Arc<Mutex<State>>,
    kms_addr: SocketAddr,
    metadata_addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

#[derive(Clone, Copy)]
enum Role {
    Kms,
    Metadata,
}

impl FakeGoogle {
    /// Starts both servers, with a KMS key from `seed`.
    pub async fn start(seed: [u8; 32]) -> Self {
        let state = Arc::new(Mutex::new(State {
            key: KeyPair::from_seed(Seed::new(seed)),
            kms: KmsMode::Sign,
            metadata: MetadataMode::Token { expires_in: 3599 },
            issued: Vec::new(),
            revoked: HashSet::new(),
            seen: Seen::default(),
        }));
        let (kms_addr, kms) = serve(state.clone(), Role::Kms).await;
        let (metadata_addr, metadata) = serve(state.clone(), Role::Metadata).await;
        FakeGoogle {
            state,
            kms_addr,
            metadata_addr,
            tasks: vec![kms, metadata],
        }
    }

    /// The `kms_endpoint` to configure.
    pub fn kms_endpoint(&self) -> String {
        format!("http://{}", self.kms_addr)
    }

    /// The `metadata_endpoint` to configure.
    pub fn metadata_endpoint(&self) -> String {
        format!("http://{}", self.metadata_addr)
    }

    /// The KMS key's public key, as `getPublicKey` gives it (PEM).
    pub fn public_key_pem(&self) -> String {
        let state = self.state.lock().unwrap();
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(&state.key.pk[..]);
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(der)
        )
    }

    /// The KMS key's raw public key.
    pub fn public_key(&self) -> [u8; 32] {
        *self.state.lock().unwrap().key.pk
    }

    /// Sets how KMS answers.
    pub fn set_kms(&self, mode: KmsMode) {
        self.state.lock().unwrap().kms = mode;
    }

    /// Sets how the metadata server answers.
    pub fn set_metadata(&self, mode: MetadataMode) {
        self.state.lock().unwrap().metadata = mode;
    }

    /// Makes KMS answer 401 to every token issued so far (as if they had expired).
    pub fn revoke_issued_tokens(&self) {
        let mut state = self.state.lock().unwrap();
        let issued = state.issued.clone();
        state.revoked.extend(issued);
    }

    /// What the servers saw so far.
    pub fn seen(&self) -> Seen {
        self.state.lock().unwrap().seen.clone()
    }
}

impl Drop for FakeGoogle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn serve(state: Arc<Mutex<State>>, role: Role) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the fake Google server");
    let addr = listener.local_addr().expect("its address");
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(&state, role, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, task)
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=UTF-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

/// Google's error body.
fn google_error(status: u16, reason: &str, message: &str) -> Response<Full<Bytes>> {
    reply(
        status,
        json!({"error": {"code": status, "message": message, "status": reason}}),
    )
}

async fn answer(
    state: &Arc<Mutex<State>>,
    role: Role,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let malformed = |why: String| {
        state.lock().unwrap().seen.malformed.push(why.clone());
        google_error(400, "INVALID_ARGUMENT", &why)
    };
    match role {
        Role::Metadata => {
            if parts.method != hyper::Method::GET
                || parts.uri.path() != "/computeMetadata/v1/instance/service-accounts/default/token"
            {
                return malformed(format!("metadata: {} {}", parts.method, parts.uri));
            }
            if header("metadata-flavor").as_deref() != Some("Google") {
                state
                    .lock()
                    .unwrap()
                    .seen
                    .malformed
                    .push("metadata: no Metadata-Flavor: Google".into());
                return reply(403, json!("Missing Metadata-Flavor:Google header."));
            }
            let mode = state.lock().unwrap().metadata.clone();
            let expires_in = match mode {
                MetadataMode::Token { expires_in } => expires_in,
                MetadataMode::Status(status) => return reply(status, json!("unavailable")),
                MetadataMode::Slow(wait) => {
                    tokio::time::sleep(wait).await;
                    3599
                }
            };
            let mut s = state.lock().unwrap();
            s.seen.token_requests += 1;
            let token = format!("ya29.test-{}", s.issued.len() + 1);
            s.issued.push(token.clone());
            reply(
                200,
                json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}),
            )
        }
        Role::Kms => {
            let path = parts.uri.path();
            let name = path
                .strip_prefix("/v1/")
                .and_then(|p| p.strip_suffix(":asymmetricSign"));
            let name_ok = name.is_some_and(|n| {
                let s: Vec<&str> = n.split('/').collect();
                s.len() == 10
                    && [s[0], s[2], s[4], s[6], s[8]]
                        == [
                            "projects",
                            "locations",
                            "keyRings",
                            "cryptoKeys",
                            "cryptoKeyVersions",
                        ]
                    && s.iter().all(|p| !p.is_empty())
            });
            if parts.method != hyper::Method::POST || !name_ok || parts.uri.query().is_some() {
                return malformed(format!("kms: {} {}", parts.method, parts.uri));
            }
            let name = name.unwrap_or_default().to_owned();
            if name != KEY_VERSION {
                return google_error(404, "NOT_FOUND", "CryptoKeyVersion not found.");
            }
            let Some(token) =
                header("authorization").and_then(|a| a.strip_prefix("Bearer ").map(str::to_owned))
            else {
                return google_error(
                    401,
                    "UNAUTHENTICATED",
                    "Request is missing required authentication credential.",
                );
            };
            {
                let mut s = state.lock().unwrap();
                s.seen.sign_tokens.push(token.clone());
                if !s.issued.contains(&token) || s.revoked.contains(&token) {
                    return google_error(
                        401,
                        "UNAUTHENTICATED",
                        "Request had invalid authentication credentials.",
                    );
                }
            }
            if !header("content-type").is_some_and(|c| c.starts_with("application/json")) {
                return malformed("kms: not application/json".into());
            }
            let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
                return malformed("kms: the body is not a JSON object".into());
            };
            if fields.keys().any(|k| k != "data" && k != "dataCrc32c") {
                return malformed(format!("kms: unexpected fields {:?}", fields.keys()));
            }
            let Some(data) = fields
                .get("data")
                .and_then(Value::as_str)
                .and_then(|d| STANDARD.decode(d).ok())
            else {
                return malformed("kms: data is not base64".into());
            };
            let verified = match fields.get("dataCrc32c") {
                None => false,
                Some(Value::String(crc)) => {
                    if crc.parse::<u64>().ok() != Some(u64::from(le_kms::crc32c(&data))) {
                        return malformed("kms: dataCrc32c does not match the data".into());
                    }
                    true
                }
                Some(other) => return malformed(format!("kms: dataCrc32c is {other}")),
            };
            let mode = state.lock().unwrap().kms.clone();
            let signature: Vec<u8> = match mode {
                KmsMode::Status(status) => {
                    let reason = match status {
                        401 => "UNAUTHENTICATED",
                        403 => "PERMISSION_DENIED",
                        429 => "RESOURCE_EXHAUSTED",
                        503 => "UNAVAILABLE",
                        _ => "INTERNAL",
                    };
                    return google_error(status, reason, "Refused by the test.");
                }
                KmsMode::Slow(wait) => {
                    tokio::time::sleep(wait).await;
                    sign(state, &data)
                }
                KmsMode::Sign => sign(state, &data),
                KmsMode::WrongSignature => sign(state, b"other data"),
                KmsMode::Truncated => sign(state, &data)[..63].to_vec(),
            };
            if matches!(mode, KmsMode::Sign | KmsMode::Slow(_)) {
                state.lock().unwrap().seen.signed.push(data);
            }
            reply(
                200,
                json!({
                    "signature": STANDARD.encode(&signature),
                    "signatureCrc32c": le_kms::crc32c(&signature).to_string(),
                    "verifiedDataCrc32c": verified,
                    "name": name,
                    "protectionLevel": "HSM",
                }),
            )
        }
    }
}

fn sign(state: &Arc<Mutex<State>>, data: &[u8]) -> Vec<u8> {
    state.lock().unwrap().key.sk.sign(data, None).to_vec()
}
