//! Entry points shared by the fuzz targets in `fuzz/` and their stable proptest twins.
//!
//! Not part of the API: each function wraps a parser of untrusted input with a fixed
//! configuration, so that a fuzz target is one line. They must never panic, whatever the bytes.

use std::sync::OnceLock;

use crate::error::TokenError;
use crate::jwt::{self, ValidationOptions, VerifiedToken};
use crate::keys::{KeySet, SigningKey};

/// The instant the fuzzed verifier believes it is.
pub const NOW: i64 = 1_800_000_000;

/// The machine id the fuzzed verifier checks tokens against.
pub const MACHINE_ID: &str = "fuzz-machine";

/// The signing key whose public half the fuzzed verifier trusts (seeds in `fuzz/corpus` are
/// signed with it, so mutations start from tokens that verify).
pub fn signing_key() -> SigningKey {
    // A constant, non-zero seed and a valid kid: `from_seed` cannot fail on them.
    SigningKey::from_seed("fuzz", [7; 32]).expect("constant fuzz key is valid")
}

/// The policy the fuzzed verifier applies.
pub fn policy() -> ValidationOptions {
    ValidationOptions::new()
        .with_issuer("fuzz-iss")
        .with_audience("fuzz-aud")
}

/// Verifies `data` as a token with the fuzz key set, policy, time and machine id.
pub fn verify_token(data: &[u8]) -> Result<VerifiedToken, TokenError> {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        let mut set = KeySet::new();
        // An empty set accepts any first key.
        set.insert(signing_key().verifying_key())
            .expect("an empty set accepts any key");
        set
    });
    jwt::verify(data, keys, &policy(), NOW, Some(MACHINE_ID))
}

/// Reads `data` as a public key set text (JWKS JSON or `ed25519:<kid>:<x>` entries), checked
/// and with point checks deferred. Panics if the deferred reading refuses a set the checked one
/// accepts, or reads it differently: it may only skip the point checks.
pub fn parse_key_set(data: &[u8]) -> Result<KeySet, TokenError> {
    let text =
        core::str::from_utf8(data).map_err(|_| TokenError::bad_key("the key set is not UTF-8"))?;
    let checked = KeySet::from_text(text);
    let deferred = KeySet::from_text_deferring_point_checks(text);
    if let Ok(set) = &checked {
        assert_eq!(deferred.as_ref(), Ok(set), "deferred reading differs");
    }
    checked
}

/// Signs the bytes before the first newline as the protected header and the rest as the
/// payload with the fuzz key, then verifies the result: reaches the claims parser, which a
/// fuzzer mutating whole tokens never gets past the signature to.
pub fn verify_signed(data: &[u8]) -> Result<VerifiedToken, TokenError> {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (header, payload) = data.split_at(split);
    let payload = payload.get(1..).unwrap_or_default();
    let token = jwt::sign_jws(&signing_key(), header, payload);
    verify_token(token.as_bytes())
}
