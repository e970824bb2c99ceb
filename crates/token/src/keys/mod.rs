//! Ed25519 keys: the one signing key, the set of public keys that verify, and their text forms.
//!
//! Nothing here draws randomness: [`SigningKey::from_seed`] takes 32 random bytes from the
//! caller (the CLI reads them from the OS). Every public key is checked to be a canonical point
//! encoding of large order, so a weak key can never verify anything: when it enters a
//! [`KeySet`], or, for a set read with [`KeySet::from_text_deferring_point_checks`], when it
//! verifies a signature (Ed25519 decodes the point there anyway, with the same checks).
//!
//! # Text forms
//!
//! Spin variables are strings, so both kinds of key have a one-line text form:
//!
//! - signing key: `ed25519-secret:<kid>:<seed>`, the 32-byte seed in base64url without padding
//!   (see [`SigningKey::from_text`], [`SigningKey::to_secret_text`]);
//! - public key set: one or more `ed25519:<kid>:<x>` entries (`x` the 32-byte public key in
//!   base64url) separated by commas and/or whitespace, or a JWKS JSON document
//!   (see [`KeySet::from_text`], [`KeySet::to_text`], [`KeySet::to_jwks_json`]).
//!
//! The two prefixes differ on purpose: a secret pasted where a public set belongs is refused
//! with a clear message instead of being read as a (wrong) public key.
//!
//! # `kid`
//!
//! A key id is 1 to [`MAX_KID_LEN`] characters from `A-Z a-z 0-9 . _ -`, so it needs no escaping
//! in JSON, in a header or in the text forms.
//!
//! # JWKS
//!
//! [`KeySet::from_jwks_json`] reads `{"keys":[...]}`. Entries for other key types (`kty` other
//! than `OKP`, or an `OKP` curve other than `Ed25519`) are skipped, as JOSE libraries do, so a
//! JWKS shared with RSA keys still loads. An `OKP`/`Ed25519` entry must be well formed or the
//! whole set is refused: `x` canonical base64url of a valid, large-order point; `kid` valid and
//! unique; `alg`, if present, `EdDSA`; `use`, if present, `sig`; no private `d`. A set that ends
//! up empty is refused too, since it could verify nothing.

use core::fmt;
use core::str::FromStr;
use std::collections::BTreeMap;

use ed25519_compact::{KeyPair, PublicKey, Seed};
use serde_json::{json, Map, Value};

use crate::encoding;
use crate::error::TokenError;

/// The longest `kid` accepted, in characters.
pub const MAX_KID_LEN: usize = 64;

/// The prefix of a signing key's text form, `ed25519-secret:<kid>:<seed>`.
pub const SECRET_KEY_PREFIX: &str = "ed25519-secret:";

/// The prefix of a public key's text form, `ed25519:<kid>:<x>`.
pub const PUBLIC_KEY_PREFIX: &str = "ed25519:";

/// Checks that `kid` is a valid key id (see the module docs).
pub fn validate_kid(kid: &str) -> Result<(), TokenError> {
    if kid.is_empty() || kid.len() > MAX_KID_LEN {
        return Err(TokenError::bad_key(format!(
            "kid must be 1 to {MAX_KID_LEN} characters long"
        )));
    }
    if !kid
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(TokenError::bad_key(
            "kid may only contain letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(())
}

/// The private key that signs license tokens, with its `kid`.
///
/// Only the `acquire` component (and the CLI) ever hold one. `Debug` shows the `kid` and the
/// public key, never the secret; the secret bytes are wiped when the key is dropped.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    pair: KeyPair,
}

impl SigningKey {
    /// Derives the key pair from a 32-byte random `seed` the caller drew.
    ///
    /// Refuses an invalid `kid` and the all-zero seed (a sure sign the caller forgot to fill it).
    pub fn from_seed(kid: &str, seed: [u8; 32]) -> Result<Self, TokenError> {
        validate_kid(kid)?;
        let pair = KeyPair::try_from_seed(Seed::new(seed))
            .map_err(|_| TokenError::bad_key("the seed is all zeros"))?;
        Ok(SigningKey {
            kid: kid.to_owned(),
            pair,
        })
    }

    /// Reads the text form `ed25519-secret:<kid>:<seed>`. Surrounding whitespace (a trailing
    /// newline in a file) is ignored.
    pub fn from_text(text: &str) -> Result<Self, TokenError> {
        let text = text.trim();
        let Some(rest) = text.strip_prefix(SECRET_KEY_PREFIX) else {
            if text.starts_with(PUBLIC_KEY_PREFIX) || text.starts_with('{') {
                return Err(TokenError::bad_key(
                    "this is a public key, not a signing key (expected ed25519-secret:<kid>:<seed>)",
                ));
            }
            return Err(TokenError::bad_key(
                "a signing key must look like ed25519-secret:<kid>:<seed>",
            ));
        };
        let Some((kid, seed)) = rest.split_once(':') else {
            return Err(TokenError::bad_key(
                "a signing key must look like ed25519-secret:<kid>:<seed>",
            ));
        };
        let seed = encoding::base64url_decode_array::<32>(seed).ok_or_else(|| {
            TokenError::bad_key("the seed must be 32 bytes of base64url without padding")
        })?;
        Self::from_seed(kid, seed)
    }

    /// The text form `ed25519-secret:<kid>:<seed>`. This is secret material: store it in a
    /// secret Spin variable or a mode-0600 file, never in a log.
    pub fn to_secret_text(&self) -> String {
        format!(
            "{SECRET_KEY_PREFIX}{}:{}",
            self.kid,
            encoding::base64url_encode(&self.pair.sk[..Seed::BYTES])
        )
    }

    /// The key id put in the header of every token this key signs.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The matching public key, with the same `kid`.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey {
            kid: self.kid.clone(),
            key: self.pair.pk,
        }
    }

    /// Signs `message` (deterministic Ed25519, RFC 8032: the same message gives the same
    /// signature, so no randomness is needed here).
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        *self.pair.sk.sign(message, None)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("x", &encoding::base64url_encode(*self.pair.pk))
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl FromStr for SigningKey {
    type Err = TokenError;

    fn from_str(text: &str) -> Result<Self, TokenError> {
        Self::from_text(text)
    }
}

/// A public key that verifies tokens, with its `kid`. A valid, large-order point: checked when
/// made, or (see [`KeySet::from_text_deferring_point_checks`]) at every verification.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    kid: String,
    key: PublicKey,
}

/// When a public key's point is checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PointCheck {
    /// When the key is read: a bad point refuses the key (and the set holding it).
    Now,
    /// When the key verifies a signature, which decodes the point with the same checks.
    AtVerification,
}

impl VerifyingKey {
    /// Builds a public key from its 32 raw bytes, refusing an invalid `kid`, a non-canonical
    /// encoding, a point not on the curve, and small-order (weak) points.
    pub fn from_bytes(kid: &str, x: [u8; 32]) -> Result<Self, TokenError> {
        Self::read(kid, x, PointCheck::Now)
    }

    fn read(kid: &str, x: [u8; 32], check: PointCheck) -> Result<Self, TokenError> {
        validate_kid(kid)?;
        let key = PublicKey::new(x);
        if check == PointCheck::Now {
            key.validate().map_err(|e| match e {
                ed25519_compact::Error::WeakPublicKey => {
                    TokenError::bad_key("the public key is a weak (small-order) point")
                }
                _ => TokenError::bad_key("the public key is not a valid Ed25519 point"),
            })?;
        }
        Ok(VerifyingKey {
            kid: kid.to_owned(),
            key,
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The raw 32-byte public key.
    pub fn to_bytes(&self) -> [u8; 32] {
        *self.key
    }

    /// The public key as a JWK: `{"kty":"OKP","crv":"Ed25519","x":...,"kid":...,"alg":"EdDSA","use":"sig"}`.
    pub fn to_jwk(&self) -> Value {
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": encoding::base64url_encode(*self.key),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        })
    }

    /// Reads one JWK of type `OKP`/`Ed25519` (see the module docs for what is refused).
    pub fn from_jwk(jwk: &Value) -> Result<Self, TokenError> {
        match parse_jwk(jwk, PointCheck::Now)? {
            Some(key) => Ok(key),
            None => Err(TokenError::bad_key("the JWK is not an OKP Ed25519 key")),
        }
    }

    /// The text form `ed25519:<kid>:<x>`.
    pub fn to_text(&self) -> String {
        format!(
            "{PUBLIC_KEY_PREFIX}{}:{}",
            self.kid,
            encoding::base64url_encode(*self.key)
        )
    }

    /// Checks an Ed25519 signature over `message`. Refuses non-canonical signatures
    /// (`S >= L`, undecodable `R`).
    pub(crate) fn verify_signature(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        // `PublicKey::verify` rejects S >= L (`sc_reject_noncanonical`), an `R` or key that
        // does not decode, and small-order keys, before doing the group equation: the same
        // point checks as `from_bytes`, which is what lets a set defer them to here.
        self.key
            .verify(message, &ed25519_compact::Signature::new(*signature))
            .is_ok()
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("x", &encoding::base64url_encode(*self.key))
            .finish()
    }
}

/// Reads a JWK: `Ok(None)` for a key of another type (skipped in a set), `Ok(Some)` for a
/// well-formed Ed25519 key, an error for anything else.
fn parse_jwk(jwk: &Value, check: PointCheck) -> Result<Option<VerifyingKey>, TokenError> {
    let Value::Object(entry) = jwk else {
        return Err(TokenError::bad_key("a JWK must be a JSON object"));
    };
    let kty =
        str_member(entry, "kty")?.ok_or_else(|| TokenError::bad_key("a JWK has no \"kty\""))?;
    if kty != "OKP" {
        return Ok(None);
    }
    let crv = str_member(entry, "crv")?
        .ok_or_else(|| TokenError::bad_key("an OKP JWK has no \"crv\""))?;
    if crv != "Ed25519" {
        return Ok(None);
    }
    if entry.contains_key("d") {
        return Err(TokenError::bad_key(
            "a public JWK set must not contain private key material (\"d\")",
        ));
    }
    if let Some(alg) = str_member(entry, "alg")? {
        if alg != "EdDSA" {
            return Err(TokenError::bad_key(
                "an Ed25519 JWK's \"alg\" must be EdDSA",
            ));
        }
    }
    if let Some(usage) = str_member(entry, "use")? {
        if usage != "sig" {
            return Err(TokenError::bad_key("an Ed25519 JWK's \"use\" must be sig"));
        }
    }
    let kid = str_member(entry, "kid")?
        .ok_or_else(|| TokenError::bad_key("an Ed25519 JWK has no \"kid\""))?;
    let x = str_member(entry, "x")?
        .ok_or_else(|| TokenError::bad_key("an Ed25519 JWK has no \"x\""))?;
    let x = encoding::base64url_decode_array::<32>(x).ok_or_else(|| {
        TokenError::bad_key("an Ed25519 JWK's \"x\" must be 32 bytes of base64url without padding")
    })?;
    VerifyingKey::read(kid, x, check).map(Some)
}

/// A string member of a JWK: `Ok(None)` if absent, an error if present and not a string.
fn str_member<'a>(
    entry: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, TokenError> {
    match entry.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(TokenError::bad_key(format!(
            "a JWK's \"{name}\" must be a string"
        ))),
    }
}

/// The public keys that verify tokens, by `kid`. Holding several at once is how keys rotate:
/// the old key stays in the set until its last token expires.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: BTreeMap<String, VerifyingKey>,
}

impl KeySet {
    /// An empty set (it verifies nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key`, refusing a second key with the same `kid`.
    pub fn insert(&mut self, key: VerifyingKey) -> Result<(), TokenError> {
        if self.keys.contains_key(&key.kid) {
            return Err(TokenError::bad_key(format!(
                "two keys have the kid \"{}\"",
                key.kid
            )));
        }
        self.keys.insert(key.kid.clone(), key);
        Ok(())
    }

    /// The key with this `kid`, if any.
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    /// The keys, ordered by `kid`.
    pub fn iter(&self) -> impl Iterator<Item = &VerifyingKey> {
        self.keys.values()
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The set as a JWKS document, `{"keys":[...]}`, for `/.well-known/jwks.json`.
    pub fn to_jwks(&self) -> Value {
        json!({ "keys": self.keys.values().map(VerifyingKey::to_jwk).collect::<Vec<_>>() })
    }

    /// The set as compact JWKS JSON text.
    pub fn to_jwks_json(&self) -> String {
        self.to_jwks().to_string()
    }

    /// Reads a JWKS document (see the module docs for what is skipped and what is refused).
    pub fn from_jwks(jwks: &Value) -> Result<Self, TokenError> {
        Self::read_jwks(jwks, PointCheck::Now)
    }

    fn read_jwks(jwks: &Value, check: PointCheck) -> Result<Self, TokenError> {
        let Some(Value::Array(entries)) = jwks.as_object().and_then(|o| o.get("keys")) else {
            return Err(TokenError::bad_key(
                "a JWKS must be a JSON object with a \"keys\" array",
            ));
        };
        let mut set = KeySet::new();
        for (i, entry) in entries.iter().enumerate() {
            let key = parse_jwk(entry, check).map_err(|e| match e {
                TokenError::BadKey { reason } => {
                    TokenError::bad_key(format!("JWKS entry {i}: {reason}"))
                }
                other => other,
            })?;
            if let Some(key) = key {
                set.insert(key)?;
            }
        }
        set.non_empty()
    }

    /// Reads JWKS JSON text. Duplicate JSON keys are refused, as in tokens.
    pub fn from_jwks_json(text: &str) -> Result<Self, TokenError> {
        Self::read_jwks_json(text, PointCheck::Now)
    }

    fn read_jwks_json(text: &str, check: PointCheck) -> Result<Self, TokenError> {
        let map = crate::strict_json::parse_object(text.as_bytes()).ok_or_else(|| {
            TokenError::bad_key("the JWKS is not a JSON object (or has duplicate keys)")
        })?;
        Self::read_jwks(&Value::Object(map), check)
    }

    /// Reads a public key set from a Spin variable or file: JWKS JSON if it starts with `{`,
    /// otherwise `ed25519:<kid>:<x>` entries separated by commas and/or whitespace.
    pub fn from_text(text: &str) -> Result<Self, TokenError> {
        Self::read_text(text, PointCheck::Now)
    }

    /// [`KeySet::from_text`] without the curve check of each key's point, which costs a field
    /// exponentiation per key (about 17 us in WebAssembly) and would be paid on every request
    /// by a component that reads the set per request. Every other check is made. The set
    /// verifies exactly the tokens a checked one would, since verification decodes the point
    /// with the same checks and refuses a signature under a bad one; what is lost is only the
    /// early, whole-set error for a bad point, so a set to be published (JWKS) or reported on
    /// should come from [`KeySet::from_text`].
    pub fn from_text_deferring_point_checks(text: &str) -> Result<Self, TokenError> {
        Self::read_text(text, PointCheck::AtVerification)
    }

    fn read_text(text: &str, check: PointCheck) -> Result<Self, TokenError> {
        let text = text.trim();
        if text.starts_with('{') {
            return Self::read_jwks_json(text, check);
        }
        let mut set = KeySet::new();
        for entry in text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
        {
            if entry.starts_with(SECRET_KEY_PREFIX) {
                return Err(TokenError::bad_key(
                    "this is a signing key; a public key set takes ed25519:<kid>:<x> entries",
                ));
            }
            let parsed = entry
                .strip_prefix(PUBLIC_KEY_PREFIX)
                .and_then(|rest| rest.split_once(':'));
            let Some((kid, x)) = parsed else {
                return Err(TokenError::bad_key(
                    "a public key must look like ed25519:<kid>:<x>",
                ));
            };
            let x = encoding::base64url_decode_array::<32>(x).ok_or_else(|| {
                TokenError::bad_key(format!(
                    "public key \"{kid}\": x must be 32 bytes of base64url without padding"
                ))
            })?;
            set.insert(VerifyingKey::read(kid, x, check)?)?;
        }
        set.non_empty()
    }

    /// The set's text form: `ed25519:<kid>:<x>` entries joined by commas.
    pub fn to_text(&self) -> String {
        self.keys
            .values()
            .map(VerifyingKey::to_text)
            .collect::<Vec<_>>()
            .join(",")
    }

    fn non_empty(self) -> Result<Self, TokenError> {
        if self.is_empty() {
            Err(TokenError::bad_key("the key set holds no Ed25519 key"))
        } else {
            Ok(self)
        }
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.keys.values()).finish()
    }
}

impl FromIterator<VerifyingKey> for Result<KeySet, TokenError> {
    fn from_iter<I: IntoIterator<Item = VerifyingKey>>(iter: I) -> Self {
        let mut set = KeySet::new();
        for key in iter {
            set.insert(key)?;
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests;
