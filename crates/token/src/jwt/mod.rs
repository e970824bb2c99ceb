//! License tokens: JWS compact serialization (a JWT) signed with Ed25519, `alg: "EdDSA"`
//! (RFC 7515, RFC 7519, RFC 8037).
//!
//! [`issue`] signs [`Claims`] with a [`SigningKey`]; [`verify`] checks a token against a
//! [`KeySet`], a [`ValidationOptions`] and the instant `now` the caller read, and returns a
//! [`VerifiedToken`], which nothing else can construct.
//!
//! # What verification refuses, in order
//!
//! 1. more than [`MAX_TOKEN_BYTES`] bytes ([`TokenError::TokenTooLarge`]), before anything else;
//! 2. anything but three `.`-separated segments of canonical base64url without padding
//!    (no `=`, no whitespace, no trailing data, no non-zero trailing bits), a header that is not
//!    a JSON object, a duplicate JSON key at any depth ([`TokenError::Malformed`]);
//! 3. a header `alg` other than exactly `EdDSA` ([`TokenError::UnsupportedAlgorithm`]): the
//!    server decides the algorithm, so `none`, `HS256`, `RS256`, `eddsa`, ... are all refused;
//! 4. a `crit` header parameter of any value ([`TokenError::CriticalHeader`]);
//! 5. a `typ` other than `JWT`, compared ASCII-case-insensitively as RFC 7515 4.1.9 says media
//!    types are; an absent `typ` is accepted ([`TokenError::UnsupportedType`]);
//! 6. no `kid`, or one not in the key set ([`TokenError::UnknownKey`]);
//! 7. a signature segment that is not base64url (`Malformed`); a signature that is not 64
//!    bytes, is non-canonical (`S >= L`) or does not verify
//!    ([`TokenError::BadSignature`]); only then is the claims set decoded and parsed;
//! 8. a claims set that is not a JSON object or has duplicate keys (`Malformed`), lacks a
//!    required claim or has one of the wrong type ([`TokenError::MissingClaim`],
//!    [`TokenError::InvalidClaim`]);
//! 9. `now >= exp + leeway` ([`TokenError::Expired`]; with
//!    [`ValidationOptions::honouring_offline_grace`], `now >= exp + max(leeway, offline_grace)`), `now + leeway < nbf`
//!    ([`TokenError::NotYetValid`]), `iat > now + leeway` ([`TokenError::IssuedInFuture`]);
//! 10. an `iss` or `aud` other than the policy's, when the policy sets one
//!     ([`TokenError::WrongIssuer`], [`TokenError::WrongAudience`]);
//! 11. when the caller gives a machine id, a `mid` that is absent or is not that machine's
//!     hash ([`TokenError::MachineMismatch`]).
//!
//! Header parameters other than `alg`, `typ`, `kid` and `crit` (`jku`, `jwk`, `x5u`, ...) are
//! ignored: keys only ever come from the configured set, never from the token.

use sha2::{Digest, Sha256};

use crate::claims::{machine_id_hash, Claims};
use crate::encoding;
use crate::error::TokenError;
use crate::keys::{KeySet, SigningKey, VerifyingKey};
use crate::strict_json;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

/// The largest token [`verify`] looks at, in bytes. [`issue`] refuses to sign a larger one.
///
/// A license token is a few hundred bytes; 4 KiB leaves room for many features and extra
/// claims, and stays under common HTTP header limits.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// The only JWS algorithm issued or accepted.
pub const ALGORITHM: &str = "EdDSA";

/// The clock skew tolerated by default on `exp`, `nbf` and `iat`, in seconds.
pub const DEFAULT_LEEWAY_SECS: u32 = 60;

/// What a verifier requires of a token besides a valid signature and current times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationOptions {
    issuer: Option<String>,
    audience: Option<String>,
    leeway_secs: u32,
    offline_grace: bool,
}

impl Default for ValidationOptions {
    fn default() -> Self {
        ValidationOptions {
            issuer: None,
            audience: None,
            leeway_secs: DEFAULT_LEEWAY_SECS,
            offline_grace: false,
        }
    }
}

impl ValidationOptions {
    /// No issuer or audience requirement, [`DEFAULT_LEEWAY_SECS`] of leeway.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires `iss` to equal `issuer`.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Requires `aud` to equal `audience`.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Sets the clock skew tolerated on `exp`, `nbf` and `iat`.
    pub fn with_leeway_secs(mut self, leeway_secs: u32) -> Self {
        self.leeway_secs = leeway_secs;
        self
    }

    /// For a verifier working offline: accept a token after its `exp` for as long as the
    /// token's own `offline_grace` claim says (the grace the server chose for the license),
    /// and never longer. The clock leeway still applies when it is the longer of the two; a
    /// token without the claim gets only the leeway. Online validation must not use this.
    pub fn honouring_offline_grace(mut self) -> Self {
        self.offline_grace = true;
        self
    }

    /// Whether the token's `offline_grace` claim extends its life (see
    /// [`ValidationOptions::honouring_offline_grace`]).
    pub fn honours_offline_grace(&self) -> bool {
        self.offline_grace
    }

    /// The required issuer, if any.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The required audience, if any.
    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    /// The tolerated clock skew, in seconds.
    pub fn leeway_secs(&self) -> u32 {
        self.leeway_secs
    }
}

/// A token whose signature, claims and policy checks all passed.
///
/// Only [`verify`] constructs one, so a function that takes a `VerifiedToken` cannot be handed
/// unchecked claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    kid: String,
    claims: Claims,
}

impl VerifiedToken {
    /// The verified claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The `kid` of the key that verified the signature.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The verified claims, by value.
    pub fn into_claims(self) -> Claims {
        self.claims
    }

    /// Re-runs the checks that depend on the time, the policy and the machine, for a token
    /// verified earlier (e.g. taken from a cache). The signature is not checked again.
    pub fn recheck(
        &self,
        policy: &ValidationOptions,
        now: i64,
        machine_id: Option<&str>,
    ) -> Result<(), TokenError> {
        check_claims(&self.claims, policy, now, machine_id)
    }
}

/// Signs `claims` with `key` into a token with header `{"alg":"EdDSA","typ":"JWT","kid":...}`.
///
/// Refuses claims that [`verify`] would refuse whatever the time ([`TokenError::InvalidClaim`])
/// and tokens over [`MAX_TOKEN_BYTES`]. Signing is deterministic, so it needs no randomness.
/// This is [`signing_input`], the key's signature over it, then [`assemble`]: a signer kept
/// elsewhere (a KMS) builds the same token through the same two functions.
pub fn issue(key: &SigningKey, claims: &Claims) -> Result<String, TokenError> {
    let input = signing_input(key.kid(), claims)?;
    let signature = key.sign(input.as_bytes());
    assemble(&input, &signature)
}

/// The length of an Ed25519 signature in base64url without padding, as a token carries it.
const SIGNATURE_B64_LEN: usize = 86;

/// The JWS signing input of a token for `claims` under `kid`: `BASE64URL(header) "."
/// BASE64URL(claims)`, with the header `{"alg":"EdDSA","typ":"JWT","kid":...}`. These are the
/// bytes an Ed25519 signer signs; [`assemble`] then appends the signature.
///
/// Refuses an invalid `kid`, claims that [`verify`] would refuse whatever the time, and claims
/// whose token would be over [`MAX_TOKEN_BYTES`] once signed (checked here, before anything is
/// sent to a signer).
pub fn signing_input(kid: &str, claims: &Claims) -> Result<String, TokenError> {
    crate::keys::validate_kid(kid)?;
    claims.check_consistency()?;
    // The kid is valid (letters, digits, `._-`), so it needs no JSON escaping.
    let header = format!(r#"{{"alg":"{ALGORITHM}","typ":"JWT","kid":"{kid}"}}"#);
    // Serializing `Claims` directly (not through a `Value`) keeps the registered claims first.
    let payload =
        serde_json::to_vec(claims).map_err(|_| TokenError::InvalidClaim { claim: "extra" })?;
    let mut input = encoding::base64url_encode(header.as_bytes());
    input.push('.');
    input.push_str(&encoding::base64url_encode(&payload));
    if input.len() + 1 + SIGNATURE_B64_LEN > MAX_TOKEN_BYTES {
        return Err(TokenError::TokenTooLarge {
            limit_bytes: MAX_TOKEN_BYTES,
        });
    }
    Ok(input)
}

/// The token made of a [`signing_input`] and the 64-byte Ed25519 signature over it:
/// `input "." BASE64URL(signature)`. Nothing is verified here: a caller that got the signature
/// from elsewhere verifies the token (e.g. with [`verify_jws`]) before trusting it.
pub fn assemble(signing_input: &str, signature: &[u8; 64]) -> Result<String, TokenError> {
    let mut token = String::with_capacity(signing_input.len() + 1 + SIGNATURE_B64_LEN);
    token.push_str(signing_input);
    token.push('.');
    token.push_str(&encoding::base64url_encode(signature));
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TokenTooLarge {
            limit_bytes: MAX_TOKEN_BYTES,
        });
    }
    Ok(token)
}

/// Verifies `token` (see the module docs for every check, in order) and returns its claims.
///
/// `now` is the current Unix time in seconds, read by the caller. `machine_id`, when given, is
/// the raw machine id the client presented; the token's `mid` must be its
/// [`machine_id_hash`]. Any byte string is accepted as input and none makes this panic.
pub fn verify(
    token: impl AsRef<[u8]>,
    keys: &KeySet,
    policy: &ValidationOptions,
    now: i64,
    machine_id: Option<&str>,
) -> Result<VerifiedToken, TokenError> {
    let no_voucher: Option<fn(&VerifyingKey, &ClaimsObject) -> bool> = None;
    verify_checked(token.as_ref(), keys, policy, now, machine_id, no_voucher).map(|(v, _)| v)
}

/// A claims set as parsed JSON, before its claims are read.
pub type ClaimsObject = serde_json::Map<String, serde_json::Value>;

/// [`verify`], except that the signature check is skipped when `vouched(key, claims)` says
/// this very token was verified under `key` before (the proof a verification cache keeps, such
/// as the server's `license_edge::read_model::verify_cache`; only with the `vouched` feature). `vouched` is
/// asked only once the structure, the header and the `kid` have passed and the payload parses
/// as a JSON object (given to it unverified, to find the entry); every check after the
/// signature is made either way, in the same order. Returns whether the voucher was used.
#[cfg(feature = "vouched")]
pub fn verify_vouched(
    token: &[u8],
    keys: &KeySet,
    policy: &ValidationOptions,
    now: i64,
    machine_id: Option<&str>,
    vouched: Option<impl FnOnce(&VerifyingKey, &ClaimsObject) -> bool>,
) -> Result<(VerifiedToken, bool), TokenError> {
    verify_checked(token, keys, policy, now, machine_id, vouched)
}

/// [`verify`] and [`verify_vouched`] in one: every check, with the optional voucher.
fn verify_checked(
    token: &[u8],
    keys: &KeySet,
    policy: &ValidationOptions,
    now: i64,
    machine_id: Option<&str>,
    vouched: Option<impl FnOnce(&VerifyingKey, &ClaimsObject) -> bool>,
) -> Result<(VerifiedToken, bool), TokenError> {
    let jws = Jws::parse(token)?;
    let kid = match jws.header.get("kid") {
        None => return Err(TokenError::UnknownKey),
        Some(serde_json::Value::String(kid)) => kid,
        Some(_) => return Err(TokenError::malformed("header kid is not a string")),
    };
    let key = keys.get(kid).ok_or(TokenError::UnknownKey)?;
    // Without a voucher, nothing of the payload is decoded before the signature holds.
    let unverified = vouched.and_then(|vouched| {
        let map = strict_json::parse_object(&jws.payload().ok()?)?;
        Some((vouched(key, &map), map))
    });
    let (map, from_voucher) = match unverified {
        Some((true, map)) => (map, true),
        _ => {
            let payload = jws.verified_payload(key)?;
            let map = strict_json::parse_object(&payload).ok_or(TokenError::malformed(
                "claims are not a JSON object without duplicate keys",
            ))?;
            (map, false)
        }
    };
    let claims = Claims::from_json_object(map)?;
    check_claims(&claims, policy, now, machine_id)?;
    let verified = VerifiedToken {
        kid: key.kid().to_owned(),
        claims,
    };
    Ok((verified, from_voucher))
}

/// The SHA-256 of a token's bytes, a cheap key for caching verification results.
pub fn token_digest(token: impl AsRef<[u8]>) -> [u8; 32] {
    Sha256::digest(token.as_ref()).into()
}

/// Low level: a JWS compact serialization of `payload` under the protected header
/// `protected_header`, signed with `key`. The header is used as given, byte for byte, and is
/// not checked. [`issue`] is this with our header and claims.
pub fn sign_jws(key: &SigningKey, protected_header: &[u8], payload: &[u8]) -> String {
    let mut token = encoding::base64url_encode(protected_header);
    token.push('.');
    token.push_str(&encoding::base64url_encode(payload));
    let signature = key.sign(token.as_bytes());
    token.push('.');
    token.push_str(&encoding::base64url_encode(signature));
    token
}

/// Low level: verifies a JWS compact serialization against one given `key` and returns the
/// payload bytes, unparsed.
///
/// Applies every structural and header check of [`verify`] except the `kid` lookup (the
/// caller chose the key, and a `kid` is not required). The payload is not interpreted.
pub fn verify_jws(token: impl AsRef<[u8]>, key: &VerifyingKey) -> Result<Vec<u8>, TokenError> {
    Jws::parse(token.as_ref())?.verified_payload(key)
}

/// A token split into its parts, with the header parsed and checked; not yet verified.
struct Jws<'a> {
    header: serde_json::Map<String, serde_json::Value>,
    signing_input: &'a [u8],
    payload_b64: &'a [u8],
    signature_b64: &'a [u8],
}

impl<'a> Jws<'a> {
    fn parse(token: &'a [u8]) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TokenTooLarge {
                limit_bytes: MAX_TOKEN_BYTES,
            });
        }
        let mut dots = token
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'.')
            .map(|(i, _)| i);
        let (Some(first), Some(second), None) = (dots.next(), dots.next(), dots.next()) else {
            return Err(TokenError::malformed("a token has exactly three segments"));
        };
        let header_b64 = &token[..first];
        let payload_b64 = &token[first + 1..second];
        let signature_b64 = &token[second + 1..];

        let header_bytes = encoding::base64url_decode(header_b64)
            .ok_or(TokenError::malformed("header is not base64url"))?;
        let header = strict_json::parse_object(&header_bytes).ok_or(TokenError::malformed(
            "header is not a JSON object without duplicate keys",
        ))?;
        match header.get("alg") {
            None => return Err(TokenError::malformed("header has no alg")),
            Some(serde_json::Value::String(alg)) if alg == ALGORITHM => {}
            Some(_) => return Err(TokenError::UnsupportedAlgorithm),
        }
        if header.contains_key("crit") {
            return Err(TokenError::CriticalHeader);
        }
        match header.get("typ") {
            None => {}
            Some(serde_json::Value::String(typ)) if typ.eq_ignore_ascii_case("JWT") => {}
            Some(_) => return Err(TokenError::UnsupportedType),
        }
        Ok(Jws {
            header,
            signing_input: &token[..second],
            payload_b64,
            signature_b64,
        })
    }

    /// Checks the signature with `key`, then (and only then) decodes the payload.
    fn verified_payload(&self, key: &VerifyingKey) -> Result<Vec<u8>, TokenError> {
        let signature: [u8; 64] = encoding::base64url_decode(self.signature_b64)
            .ok_or(TokenError::malformed("signature is not base64url"))?
            .try_into()
            .map_err(|_| TokenError::BadSignature)?;
        if !key.verify_signature(self.signing_input, &signature) {
            return Err(TokenError::BadSignature);
        }
        self.payload()
    }

    /// The payload bytes, decoded, with no signature check: only for a token vouched for.
    fn payload(&self) -> Result<Vec<u8>, TokenError> {
        encoding::base64url_decode(self.payload_b64)
            .ok_or(TokenError::malformed("payload is not base64url"))
    }
}

fn check_claims(
    claims: &Claims,
    policy: &ValidationOptions,
    now: i64,
    machine_id: Option<&str>,
) -> Result<(), TokenError> {
    let leeway = i64::from(policy.leeway_secs);
    let after_exp = match (policy.offline_grace, claims.offline_grace) {
        (true, Some(grace)) => leeway.max(i64::from(grace)),
        _ => leeway,
    };
    // Saturating: hostile times near i64::MAX/MIN must not overflow.
    if now >= claims.exp.saturating_add(after_exp) {
        return Err(TokenError::Expired);
    }
    if now.saturating_add(leeway) < claims.nbf {
        return Err(TokenError::NotYetValid);
    }
    if claims.iat > now.saturating_add(leeway) {
        return Err(TokenError::IssuedInFuture);
    }
    if let Some(issuer) = &policy.issuer {
        if claims.iss != *issuer {
            return Err(TokenError::WrongIssuer);
        }
    }
    if let Some(audience) = &policy.audience {
        if claims.aud != *audience {
            return Err(TokenError::WrongAudience);
        }
    }
    if let Some(machine_id) = machine_id {
        if claims.mid.as_deref() != Some(machine_id_hash(machine_id).as_str()) {
            return Err(TokenError::MachineMismatch);
        }
    }
    Ok(())
}
