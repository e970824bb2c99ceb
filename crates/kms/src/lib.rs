//! Cloud KMS signing for license-edge, without the I/O.
//!
//! With the `kms` signer, the acquire component never holds the private key: it builds a
//! token's signing input with the token crate ([`license_edge_token::signing_input`]), asks
//! Cloud KMS for an Ed25519 signature over it (`cryptoKeyVersions.asymmetricSign`, REST), and
//! assembles the token ([`license_edge_token::assemble`]). This crate is everything about that
//! exchange that is not I/O, so each rule is unit-tested:
//!
//! - [`KeyVersion`]: the key version's resource name, checked, its `:asymmetricSign` URL and
//!   the stable `kid` its tokens carry ([`KeyVersion::kid`]);
//! - [`sign_request_body`] and [`signature_from_answer`]: the request (`data` and its
//!   `dataCrc32c`) and every check on the answer (status, `name`, `verifiedDataCrc32c`,
//!   `signatureCrc32c`, a 64-byte signature). The caller still verifies the assembled token
//!   with the public key it serves before anyone sees it;
//! - [`access_token_from_answer`] and [`CachedToken`]: the GKE metadata server's access token
//!   (Workload Identity), and the entry that keeps it in the key-value store until
//!   [`REFRESH_MARGIN_MS`] before it expires;
//! - [`public_key_from_pem`] and [`jwk_for_key_version`]: a key version's public key (the PEM
//!   `getPublicKey` returns) as the JWKS entry validate serves.
//!
//! It does not send anything, read the clock or log: the component passes `now` in and sends
//! the requests through `edge_io::outbound::send`. No error carries a token, a signature or
//! an access token, so every error is safe to log.

#![deny(missing_docs)]

pub mod crc32c;

use license_edge_token::encoding::{base64_decode, base64_encode};
use license_edge_token::{TokenError, VerifyingKey};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

pub use crc32c::crc32c;

/// Cloud KMS's REST endpoint.
pub const GOOGLE_KMS_ENDPOINT: &str = "https://cloudkms.googleapis.com";

/// The GKE (and Compute Engine) metadata server.
pub const GOOGLE_METADATA_ENDPOINT: &str = "http://metadata.google.internal";

/// The metadata server's path for the access token of the pod's (Workload Identity) service
/// account.
pub const METADATA_TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// A cached access token is used until this long before it expires, then fetched again: it
/// covers a signing request in flight (at most the signer's deadline, 10 s) and clocks of
/// replicas that disagree by up to a minute.
pub const REFRESH_MARGIN_MS: i64 = 120_000;

/// The largest answer body read from KMS or the metadata server.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The longest access token accepted (Google's are a few hundred bytes; this bounds a header).
pub const MAX_ACCESS_TOKEN_BYTES: usize = 4096;

/// What went wrong with KMS or the metadata server. Never carries a secret: safe to log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KmsError {
    /// The configuration is unusable (a key version name or endpoint of the wrong shape).
    Config {
        /// What is wrong.
        what: &'static str,
    },
    /// KMS answered 401: the access token was not accepted (expired or revoked).
    Unauthorized,
    /// KMS or the metadata server answered an error status other than 401.
    Refused {
        /// The HTTP status.
        status: u16,
        /// Google's error status (`PERMISSION_DENIED`, `RESOURCE_EXHAUSTED`, ...), if given.
        reason: Option<String>,
    },
    /// The answer is not what the REST reference defines, or fails an integrity check.
    BadAnswer {
        /// What is wrong.
        what: &'static str,
    },
}

impl core::fmt::Display for KmsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            KmsError::Config { what } => write!(f, "KMS configuration: {what}"),
            KmsError::Unauthorized => f.write_str("KMS answered 401 (access token not accepted)"),
            KmsError::Refused {
                status,
                reason: Some(reason),
            } => write!(f, "answered {status} {reason}"),
            KmsError::Refused {
                status,
                reason: None,
            } => write!(f, "answered {status}"),
            KmsError::BadAnswer { what } => write!(f, "unusable answer: {what}"),
        }
    }
}

impl std::error::Error for KmsError {}

fn bad(what: &'static str) -> KmsError {
    KmsError::BadAnswer { what }
}

fn config(what: &'static str) -> KmsError {
    KmsError::Config { what }
}

/// A Cloud KMS key version's resource name,
/// `projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/V`, checked so that it
/// can go into a URL path as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVersion {
    name: String,
    version: String,
}

impl KeyVersion {
    /// Reads a resource name. Project ids may hold `.` and `:` (domain-scoped projects);
    /// locations are lower case; key ring and key ids are `[A-Za-z0-9_-]`, 1 to 63
    /// characters; the version is a number.
    pub fn parse(name: &str) -> Result<Self, KmsError> {
        let shape = "the key version must be projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N";
        let parts: Vec<&str> = name.split('/').collect();
        let [p, project, l, location, r, ring, k, key, v, version] = parts[..] else {
            return Err(config(shape));
        };
        if (p, l, r, k, v)
            != (
                "projects",
                "locations",
                "keyRings",
                "cryptoKeys",
                "cryptoKeyVersions",
            )
        {
            return Err(config(shape));
        }
        let id = |s: &str, max: usize, extra: &[u8]| {
            !s.is_empty()
                && s.len() <= max
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || extra.contains(&b))
        };
        let ok = id(project, 100, b"_.:")
            && id(location, 63, b"")
            && location.bytes().all(|b| !b.is_ascii_uppercase())
            && id(ring, 63, b"_")
            && id(key, 63, b"_")
            && !version.is_empty()
            && version.len() <= 19
            && version.bytes().all(|b| b.is_ascii_digit());
        if !ok {
            return Err(config(shape));
        }
        Ok(KeyVersion {
            name: name.to_owned(),
            version: version.to_owned(),
        })
    }

    /// The resource name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `kid` of tokens signed by this key version: `kms-v<N>-<16 hex digits of the SHA-256
    /// of the resource name>`. It depends on the name alone, so every replica, every restart
    /// and `licensectl kms-jwk` agree on it, and key versions (whose names KMS never reuses)
    /// never share one.
    pub fn kid(&self) -> String {
        let digest = Sha256::digest(self.name.as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("kms-v{}-{hex}", self.version)
    }

    /// The URL of `asymmetricSign` on `endpoint` (see [`endpoint`]).
    pub fn sign_url(&self, endpoint: &str) -> Result<String, KmsError> {
        Ok(format!(
            "{}/v1/{}:asymmetricSign",
            self::endpoint(endpoint)?,
            self.name
        ))
    }
}

/// Checks an endpoint, `http(s)://host[:port]` with no path (a trailing `/` is dropped), and
/// returns it without the slash. `http://` is for the metadata server and tests; the KMS
/// endpoint in production is `https://`.
pub fn endpoint(text: &str) -> Result<&str, KmsError> {
    let text = text.strip_suffix('/').unwrap_or(text);
    let authority = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or(config("an endpoint must start with https:// or http://"))?;
    if authority.is_empty()
        || authority
            .bytes()
            .any(|b| matches!(b, b'/' | b'?' | b'#' | b'@' | b'%') || !b.is_ascii_graphic())
    {
        return Err(config("an endpoint is scheme://host[:port], with no path"));
    }
    Ok(text)
}

/// The metadata server's token URL on `endpoint`.
pub fn metadata_token_url(endpoint: &str) -> Result<String, KmsError> {
    Ok(format!(
        "{}{METADATA_TOKEN_PATH}",
        self::endpoint(endpoint)?
    ))
}

/// The JSON body of an `asymmetricSign` request for Ed25519 (which signs the data itself, not
/// a digest): `{"data": base64(data), "dataCrc32c": "<CRC32C of data>"}`. KMS checks the
/// checksum and says so in `verifiedDataCrc32c`.
pub fn sign_request_body(data: &[u8]) -> String {
    json!({
        "data": base64_encode(data),
        "dataCrc32c": crc32c(data).to_string(),
    })
    .to_string()
}

/// An `Int64Value` in JSON: a decimal string (how Google writes it) or a number.
fn int64_value(value: &Value) -> Option<u64> {
    match value {
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// The object of a JSON answer, or `what` as the error.
fn json_object(body: &[u8], what: &'static str) -> Result<Map<String, Value>, KmsError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(bad(what)),
    }
}

/// Google's error status (`{"error": {"status": "PERMISSION_DENIED", ...}}`), when the body
/// has one made of upper-case letters and `_` (so nothing else of the body reaches a log).
fn google_status(body: &[u8]) -> Option<String> {
    let map = json_object(body, "").ok()?;
    let status = map.get("error")?.get("status")?.as_str()?;
    let plain = !status.is_empty()
        && status.len() <= 40
        && status.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    plain.then(|| status.to_owned())
}

/// The signature in an `asymmetricSign` answer (`status` and `body`), after every check the
/// REST reference makes possible: status 200 (401 is [`KmsError::Unauthorized`], so the caller
/// can refresh its access token once); `name` is the key version asked for (a proxy or a
/// misrouted request cannot substitute another key); `verifiedDataCrc32c` is `true` (KMS
/// checked the data it signed against the checksum sent); `signatureCrc32c` is present and is
/// the signature's CRC32C (the signature was not damaged on the way); the signature is 64
/// bytes. A signature passing all of this may still be wrong: the caller verifies the token.
pub fn signature_from_answer(
    status: u16,
    body: &[u8],
    key: &KeyVersion,
) -> Result<[u8; 64], KmsError> {
    match status {
        200 => {}
        401 => return Err(KmsError::Unauthorized),
        _ => {
            return Err(KmsError::Refused {
                status,
                reason: google_status(body),
            })
        }
    }
    let map = json_object(body, "the answer is not a JSON object")?;
    if map.get("name").and_then(Value::as_str) != Some(key.name()) {
        return Err(bad("the answer names another key version"));
    }
    if map.get("verifiedDataCrc32c") != Some(&Value::Bool(true)) {
        return Err(bad("KMS did not verify the data's CRC32C"));
    }
    let signature = map
        .get("signature")
        .and_then(Value::as_str)
        .ok_or(bad("the answer has no signature"))?;
    let signature = base64_decode(signature).ok_or(bad("the signature is not base64"))?;
    let expected = map
        .get("signatureCrc32c")
        .and_then(int64_value)
        .ok_or(bad("the answer has no signatureCrc32c"))?;
    if u64::from(crc32c(&signature)) != expected {
        return Err(bad("the signature does not match its signatureCrc32c"));
    }
    signature
        .try_into()
        .map_err(|_| bad("the signature is not 64 bytes"))
}

/// An access token from the metadata server.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The bearer token (secret: never log it).
    pub token: String,
    /// Seconds it stays valid, as the metadata server said.
    pub expires_in_s: u64,
}

impl core::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_in_s", &self.expires_in_s)
            .finish()
    }
}

/// Whether `token` can go into an `Authorization: Bearer` header as it is.
fn is_header_safe(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_ACCESS_TOKEN_BYTES
        && token.bytes().all(|b| b.is_ascii_graphic())
}

/// The access token in the metadata server's answer (`status`, `body`):
/// `{"access_token", "expires_in", "token_type": "Bearer"}`, status 200.
pub fn access_token_from_answer(status: u16, body: &[u8]) -> Result<AccessToken, KmsError> {
    if status != 200 {
        return Err(KmsError::Refused {
            status,
            reason: None,
        });
    }
    let map = json_object(body, "the token answer is not a JSON object")?;
    if !map
        .get("token_type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("bearer"))
    {
        return Err(bad("the token is not a Bearer token"));
    }
    let token = map
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| is_header_safe(t))
        .ok_or(bad("the answer has no usable access_token"))?;
    let expires_in_s = map
        .get("expires_in")
        .and_then(Value::as_u64)
        .filter(|&s| s > 0)
        .ok_or(bad("the answer has no positive expires_in"))?;
    Ok(AccessToken {
        token: token.to_owned(),
        expires_in_s,
    })
}

/// An access token as the key-value store keeps it: `{"token", "expires_at"}` (epoch ms).
#[derive(Clone, PartialEq, Eq)]
pub struct CachedToken {
    /// The bearer token (secret).
    pub token: String,
    /// When it expires, epoch milliseconds on the clock of the instance that fetched it.
    pub expires_at_ms: i64,
}

impl core::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CachedToken")
            .field("token", &"<redacted>")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

impl CachedToken {
    /// The key-value key of the cached access token.
    pub const KEY: &'static str = "signer:access_token";

    /// The entry for a token fetched at `now_ms`; `None` when it would not be usable for
    /// longer than [`REFRESH_MARGIN_MS`] (not worth caching: use it once).
    pub fn new(token: &AccessToken, now_ms: i64) -> Option<Self> {
        let lifetime_ms = i64::try_from(token.expires_in_s).ok()?.checked_mul(1000)?;
        let entry = CachedToken {
            token: token.token.clone(),
            expires_at_ms: now_ms.checked_add(lifetime_ms)?,
        };
        entry.usable(now_ms).then_some(entry)
    }

    /// Whether the token may still be used at `now_ms`: until [`REFRESH_MARGIN_MS`] before it
    /// expires.
    pub fn usable(&self, now_ms: i64) -> bool {
        now_ms < self.expires_at_ms.saturating_sub(REFRESH_MARGIN_MS)
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        json!({"token": self.token, "expires_at": self.expires_at_ms})
            .to_string()
            .into_bytes()
    }

    /// Reads a stored entry; `None` for anything else (it is then fetched again and
    /// overwritten).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let map = json_object(bytes, "").ok()?;
        if map.len() != 2 {
            return None;
        }
        let token = map.get("token")?.as_str().filter(|t| is_header_safe(t))?;
        let expires_at_ms = map.get("expires_at")?.as_i64()?;
        Some(CachedToken {
            token: token.to_owned(),
            expires_at_ms,
        })
    }
}

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE { OID
/// 1.3.101.112 }, BIT STRING (0 unused bits) } with the 32 key bytes after it.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The 32-byte Ed25519 public key in a PEM `PUBLIC KEY` block (what `getPublicKey` and
/// `gcloud kms keys versions get-public-key` give for an `EC_SIGN_ED25519` key). Anything
/// else, another key type included, is refused.
pub fn public_key_from_pem(pem: &str) -> Result<[u8; 32], KmsError> {
    let pem = pem.trim();
    let body = pem
        .strip_prefix("-----BEGIN PUBLIC KEY-----")
        .and_then(|rest| rest.strip_suffix("-----END PUBLIC KEY-----"))
        .ok_or(config("not a PEM PUBLIC KEY block"))?;
    let b64: String = body.split_ascii_whitespace().collect();
    let der = base64_decode(b64).ok_or(config("the PEM body is not base64"))?;
    match der.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
        Some(key) => key
            .try_into()
            .map_err(|_| config("not an Ed25519 public key")),
        None => Err(config(
            "not an Ed25519 public key (the key must be EC_SIGN_ED25519)",
        )),
    }
}

/// The key version's public key as a verifying key under its [`KeyVersion::kid`], from the
/// PEM, or from the JSON `getPublicKey` answers (`{"pem", "algorithm", "pemCrc32c", "name",
/// ...}`, whose `algorithm` must be `EC_SIGN_ED25519`, `name` this key version and
/// `pemCrc32c`, when present, the PEM's).
pub fn verifying_key(key: &KeyVersion, pem_or_json: &str) -> Result<VerifyingKey, KmsError> {
    let text = pem_or_json.trim();
    let pem = if text.starts_with('{') {
        let map = json_object(text.as_bytes(), "the getPublicKey answer is not JSON")?;
        if map.get("algorithm").and_then(Value::as_str) != Some("EC_SIGN_ED25519") {
            return Err(config("the key's algorithm is not EC_SIGN_ED25519"));
        }
        if map.get("name").and_then(Value::as_str) != Some(key.name()) {
            return Err(config("the getPublicKey answer names another key version"));
        }
        let pem = map
            .get("pem")
            .and_then(Value::as_str)
            .ok_or(config("the getPublicKey answer has no pem"))?;
        if let Some(crc) = map.get("pemCrc32c") {
            if int64_value(crc) != Some(u64::from(crc32c(pem.as_bytes()))) {
                return Err(config("the pem does not match its pemCrc32c"));
            }
        }
        pem.to_owned()
    } else {
        text.to_owned()
    };
    let x = public_key_from_pem(&pem)?;
    VerifyingKey::from_bytes(&key.kid(), x).map_err(|e| match e {
        TokenError::BadKey { .. } => config("the public key is not a valid Ed25519 point"),
        _ => config("the public key is unusable"),
    })
}

/// The JWKS entry of a key version (see [`verifying_key`]): `{"kty":"OKP","crv":"Ed25519",
/// "x","kid","alg":"EdDSA","use":"sig"}`.
pub fn jwk_for_key_version(key: &KeyVersion, pem_or_json: &str) -> Result<Value, KmsError> {
    verifying_key(key, pem_or_json).map(|k| k.to_jwk())
}

#[cfg(test)]
mod tests;
