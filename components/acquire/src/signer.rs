//! Who signs license tokens, chosen by the `signer` variable, and what happens to a seat when
//! signing fails.
//!
//! - `local` (the default): the Ed25519 key in the secret `signing_key` variable signs in the
//!   component, as it always has, through the same `license_edge_token::issue`. `signer`,
//!   `signing_key` and `token_issuer` arrive in the request's one `seat_settings` read
//!   (`settings.rs`).
//! - `kms`: a Cloud KMS key version (`kms_key_version`) signs. The component builds the same
//!   token's signing input, asks `asymmetricSign` for the signature through Spin's outbound
//!   HTTP (`kms_endpoint`), with an access token from the metadata server (`metadata_endpoint`,
//!   Workload Identity) that it caches in the key-value store, and verifies the assembled token
//!   with the key `public_keys` serves under the key version's `kid` before anyone sees it.
//!   Everything is bounded by one deadline (`kms_timeout_ms`); a failure of any kind is
//!   [`ApiError::SigningUnavailable`] (503 `signing_unavailable`).
//!
//! A token is signed after its seat function committed (its claims come from the seat
//! decision), so when signing fails the seat must not outlive the request: a new session is
//! released ([`release_unissued`]) and a renewal or borrow is taken back ([`undo_extend`],
//! `migrations/0010_signing_undo.sql`). Nothing here logs a secret: access tokens, signatures
//! and keys never reach stderr.

use std::time::{Duration, Instant};

use edge_io::db::{self, Row};
use edge_io::now_millis;
use edge_io::outbound::{self, OutboundError, Outgoing};
use le_kms::{
    access_token_from_answer, metadata_token_url, sign_request_body, signature_from_answer,
    AccessToken, CachedToken, KeyVersion, KmsError, MAX_ANSWER_BYTES,
};
use license_edge::api::ApiError;
use license_edge::outcome::SeatOutcome;
use license_edge_token::jwt::verify_jws;
use license_edge_token::{
    assemble, issue, signing_input, Claims, KeySet, SigningKey, VerifyingKey,
};
use spin_sdk::key_value::Store;
use spin_sdk::pg4::{Connection, ParameterValue as P};
use spin_sdk::variables;

use crate::settings::Parts;

/// The signing deadline when `kms_timeout_ms` is not set, and its bounds.
const DEFAULT_TIMEOUT_MS: u64 = 3_000;
const TIMEOUT_RANGE_MS: std::ops::RangeInclusive<u64> = 100..=10_000;

/// The configured signer and the issuer it signs for.
pub struct Signing {
    signer: Signer,
    /// The `iss` claim (`token_issuer`).
    pub issuer: String,
}

enum Signer {
    Local(SigningKey),
    Kms(Box<Kms>),
}

struct Kms {
    key: KeyVersion,
    sign_url: String,
    token_url: String,
    /// The key `public_keys` serves under the key version's kid: what clients verify with.
    served: VerifyingKey,
    timeout: Duration,
}

fn variable(name: &str) -> Result<String, ApiError> {
    variables::get(name).map_err(|e| {
        eprintln!("acquire: {name} variable: {e}");
        ApiError::Internal
    })
}

fn misconfigured(what: impl std::fmt::Display) -> ApiError {
    eprintln!("acquire: signer configuration: {what}");
    ApiError::Internal
}

/// The signer's configuration, from the request's settings (and, for KMS, its own
/// variables). Called before anything is written, so a configuration error (500, logged) never
/// takes a seat.
pub fn configured(parts: &Parts<'_>) -> Result<Signing, ApiError> {
    // No fallback: a token signed with a guessed issuer would fail validation everywhere (an
    // unreadable `seat_settings` is an error above, never an empty issuer).
    let issuer = parts.token_issuer.to_owned();
    let signer = match parts.signer.trim() {
        "" | "local" => Signer::Local(local_key(parts.signing_key)?),
        "kms" => Signer::Kms(Box::new(kms()?)),
        other => {
            return Err(misconfigured(format!(
                "signer {other:?} is neither local nor kms"
            )))
        }
    };
    Ok(Signing { signer, issuer })
}

fn local_key(text: &str) -> Result<SigningKey, ApiError> {
    SigningKey::from_text(text).map_err(|e| {
        eprintln!("acquire: signing_key is not a usable key: {e}");
        ApiError::Internal
    })
}

fn kms() -> Result<Kms, ApiError> {
    let key = KeyVersion::parse(variable("kms_key_version")?.trim()).map_err(misconfigured)?;
    let sign_url = key
        .sign_url(variable("kms_endpoint")?.trim())
        .map_err(misconfigured)?;
    let token_url =
        metadata_token_url(variable("metadata_endpoint")?.trim()).map_err(misconfigured)?;
    let timeout = match variable("kms_timeout_ms")?.trim() {
        "" => DEFAULT_TIMEOUT_MS,
        text => text
            .parse()
            .ok()
            .filter(|ms| TIMEOUT_RANGE_MS.contains(ms))
            .ok_or_else(|| misconfigured("kms_timeout_ms must be 100 to 10000"))?,
    };
    let kid = key.kid();
    let keys = KeySet::from_text_deferring_point_checks(&variable("public_keys")?)
        .map_err(|e| misconfigured(format!("public_keys: {e}")))?;
    let served = keys.get(&kid).cloned().ok_or_else(|| {
        misconfigured(format!(
            "public_keys has no key {kid} for {}: add `licensectl kms-jwk` output before signing with it",
            key.name()
        ))
    })?;
    Ok(Kms {
        key,
        sign_url,
        token_url,
        served,
        timeout: Duration::from_millis(timeout),
    })
}

impl Signing {
    /// Whether signing can fail at run time (KMS), so that seat changes must be undoable.
    pub fn is_remote(&self) -> bool {
        matches!(self.signer, Signer::Kms(_))
    }

    /// Signs `claims` into a token.
    pub fn sign(&self, claims: &Claims) -> Result<String, ApiError> {
        match &self.signer {
            Signer::Local(key) => issue(key, claims).map_err(|e| {
                eprintln!("acquire: issuing the token failed: {e}");
                ApiError::Internal
            }),
            Signer::Kms(kms) => kms.sign(claims),
        }
    }
}

/// Why the KMS signer gave no token, for the log.
enum Failure {
    Metadata(KmsError),
    MetadataIo(OutboundError),
    Kms(KmsError),
    KmsIo(OutboundError),
    Unverified,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Metadata(e) => write!(f, "metadata server: {e}"),
            Failure::MetadataIo(e) => write!(f, "metadata server: {e}"),
            Failure::Kms(e) => write!(f, "KMS: {e}"),
            Failure::KmsIo(e) => write!(f, "KMS: {e}"),
            Failure::Unverified => {
                f.write_str("KMS: the signature does not verify with the served public key")
            }
        }
    }
}

impl Kms {
    fn sign(&self, claims: &Claims) -> Result<String, ApiError> {
        let started = Instant::now();
        let input = signing_input(self.served.kid(), claims).map_err(|e| {
            eprintln!("acquire: the token cannot be built: {e}");
            ApiError::Internal
        })?;
        let result = self
            .signature(input.as_bytes(), started)
            .and_then(|signature| {
                let token = assemble(&input, &signature).map_err(|_| Failure::Unverified)?;
                // What a client will check, checked first: a wrong or damaged signature from
                // anywhere never reaches one.
                verify_jws(&token, &self.served).map_err(|_| Failure::Unverified)?;
                Ok(token)
            });
        result.map_err(|failure| {
            eprintln!(
                "acquire: signing unavailable after {} ms ({}): {failure}",
                started.elapsed().as_millis(),
                self.key.name()
            );
            ApiError::SigningUnavailable
        })
    }

    fn remaining(&self, started: Instant) -> Duration {
        self.timeout.saturating_sub(started.elapsed())
    }

    /// The signature over `data`: with the cached access token, or a fresh one; on a 401,
    /// once more with a fresh one.
    fn signature(&self, data: &[u8], started: Instant) -> Result<[u8; 64], Failure> {
        let store = Store::open_default()
            .map_err(|e| eprintln!("acquire: key-value store (access token cache): {e}"))
            .ok();
        let cached = store.as_ref().and_then(cached_token);
        let token = match cached {
            Some(token) => token,
            None => self.fresh_token(store.as_ref(), started)?,
        };
        match self.ask_kms(&token, data, started) {
            Err(Failure::Kms(KmsError::Unauthorized)) => {
                let token = self.fresh_token(store.as_ref(), started)?;
                self.ask_kms(&token, data, started)
            }
            other => other,
        }
    }

    fn ask_kms(&self, token: &str, data: &[u8], started: Instant) -> Result<[u8; 64], Failure> {
        let authorization = format!("Bearer {token}");
        let body = sign_request_body(data);
        let reply = outbound::send(
            &Outgoing {
                method: "POST",
                url: &self.sign_url,
                headers: &[
                    ("authorization", authorization.as_str()),
                    ("content-type", "application/json"),
                ],
                body: body.as_bytes(),
            },
            self.remaining(started),
            MAX_ANSWER_BYTES,
        )
        .map_err(Failure::KmsIo)?;
        signature_from_answer(reply.status, &reply.body, &self.key).map_err(Failure::Kms)
    }

    /// An access token from the metadata server, written to the cache when it lives long
    /// enough (a cache write that fails costs a metadata request next time, nothing more).
    fn fresh_token(&self, store: Option<&Store>, started: Instant) -> Result<String, Failure> {
        let reply = outbound::send(
            &Outgoing {
                method: "GET",
                url: &self.token_url,
                headers: &[("metadata-flavor", "Google")],
                body: b"",
            },
            self.remaining(started),
            MAX_ANSWER_BYTES,
        )
        .map_err(Failure::MetadataIo)?;
        let token: AccessToken =
            access_token_from_answer(reply.status, &reply.body).map_err(Failure::Metadata)?;
        if let (Some(store), Some(entry)) = (store, CachedToken::new(&token, now_millis())) {
            if let Err(e) = store.set(CachedToken::KEY, &entry.encode()) {
                eprintln!("acquire: key-value store (access token cache): {e}");
            }
        }
        Ok(token.token)
    }
}

/// The cached access token, while usable.
fn cached_token(store: &Store) -> Option<String> {
    let bytes = store
        .get(CachedToken::KEY)
        .map_err(|e| eprintln!("acquire: key-value store (access token cache): {e}"))
        .ok()??;
    CachedToken::decode(&bytes)
        .filter(|entry| entry.usable(now_millis()))
        .map(|entry| entry.token)
}

/// Ends a session created in this request whose token could not be signed, so its seat is
/// free at once (the audit trail says `system` released it). No end marker is needed: no
/// token of it exists. If this fails too, the seat comes back when the lease lapses.
pub fn release_unissued(conn: &Connection, session_id: &str) {
    let ended = db::query(
        conn,
        "SELECT * FROM le_release(NULL, $1, 'system', NULL)",
        &[P::Str(session_id.to_owned())],
    )
    .and_then(|set| Row::first(&set)?.outcome(SeatOutcome::parse));
    match ended {
        Ok(SeatOutcome::Released) => {}
        other => eprintln!(
            "acquire: releasing {session_id}, whose token could not be signed: {other:?}; its seat returns when the lease lapses"
        ),
    }
}

/// What `le_extend_undoable` answered beside `le_extend`'s columns: enough to take the
/// extension back.
pub struct Undo {
    version: i64,
    prev_expires_at: i64,
    prev_seat_until: i64,
    prev_borrowed_until: Option<i64>,
}

impl Undo {
    /// Reads the undo columns of a granted `le_extend_undoable` row.
    pub fn from_row(row: &Row) -> Result<Self, ApiError> {
        Ok(Undo {
            version: row.required_int("o_version")?,
            prev_expires_at: row.required_int("o_prev_expires_at")?,
            prev_seat_until: row.required_int("o_prev_seat_until")?,
            prev_borrowed_until: row.int("o_prev_borrowed_until")?,
        })
    }
}

/// Takes back a renewal or borrow whose token could not be signed, unless something changed
/// the session since (`migrations/0010_signing_undo.sql`). If this fails, the extension
/// stands: the session stays held by the client that asked, to the new end.
pub fn undo_extend(conn: &Connection, session_id: &str, undo: &Undo) {
    let outcome = db::query(
        conn,
        "SELECT * FROM le_extend_undo($1, $2, $3, $4, $5::bigint)",
        &[
            P::Str(session_id.to_owned()),
            P::Int64(undo.version),
            P::Int64(undo.prev_expires_at),
            P::Int64(undo.prev_seat_until),
            undo.prev_borrowed_until.map_or(P::DbNull, P::Int64),
        ],
    )
    .and_then(|set| Row::first(&set)?.outcome(SeatOutcome::parse));
    match outcome {
        Ok(SeatOutcome::Undone) => {}
        other => eprintln!(
            "acquire: taking back the extension of {session_id}, whose token could not be signed: {other:?}"
        ),
    }
}
