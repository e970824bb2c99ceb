//! An OpenID Connect issuer's key set (RFC 7517 JWKS): the RSA signing keys, by `kid`.
//!
//! Keys that are not RSA, are marked for encryption (`use: enc`) or for another algorithm than
//! RS256 are skipped rather than refused: issuers publish mixed sets, and a key this server
//! cannot use must not make the others unusable. A set with no usable key at all is an error.

use crate::rsa::RsaPublicKey;
use license_edge_token::encoding::base64url_decode;
use serde_json::Value;

/// The smallest RSA modulus accepted, bits (NIST SP 800-131A: 2048 and up).
pub const MIN_RSA_BITS: usize = 2048;
/// The largest, bits: bounds the work one verification may cost.
pub const MAX_RSA_BITS: usize = 8192;
/// The most keys a set may hold; issuers publish two or three.
pub const MAX_KEYS: usize = 32;

/// Why a key set could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksError {
    /// Not a JSON object with a `keys` array.
    Malformed,
    /// No RS256 signing key with a `kid` in it.
    NoUsableKey,
}

impl std::fmt::Display for JwksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksError::Malformed => f.write_str("the key set is not a JWKS document"),
            JwksError::NoUsableKey => f.write_str("the key set holds no RS256 signing key"),
        }
    }
}

impl std::error::Error for JwksError {}

/// One usable key.
#[derive(Debug, Clone)]
struct IssuerKey {
    kid: String,
    key: RsaPublicKey,
}

/// The usable keys of an issuer's JWKS.
#[derive(Debug, Clone)]
pub struct IssuerKeys {
    keys: Vec<IssuerKey>,
}

impl IssuerKeys {
    /// Parses a JWKS document (the body of the issuer's `jwks_uri`).
    pub fn from_jwks(body: &[u8]) -> Result<Self, JwksError> {
        let doc: Value = serde_json::from_slice(body).map_err(|_| JwksError::Malformed)?;
        let list = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::Malformed)?;
        let keys: Vec<IssuerKey> = list.iter().take(MAX_KEYS).filter_map(usable_key).collect();
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        Ok(IssuerKeys { keys })
    }

    /// The key with this `kid`, if the set holds it.
    pub fn get(&self, kid: &str) -> Option<&RsaPublicKey> {
        self.keys.iter().find(|k| k.kid == kid).map(|k| &k.key)
    }

    /// The `kid`s of the set, in its order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.kid.as_str())
    }
}

fn usable_key(jwk: &Value) -> Option<IssuerKey> {
    let field = |name: &str| jwk.get(name).and_then(Value::as_str);
    if field("kty") != Some("RSA") {
        return None;
    }
    if field("use").is_some_and(|u| u != "sig") || field("alg").is_some_and(|a| a != "RS256") {
        return None;
    }
    let kid = field("kid").filter(|k| !k.is_empty() && k.len() <= 256)?;
    let key = RsaPublicKey::from_be_bytes(
        &base64url_decode(field("n")?)?,
        &base64url_decode(field("e")?)?,
        MIN_RSA_BITS,
        MAX_RSA_BITS,
    )?;
    Some(IssuerKey {
        kid: kid.to_owned(),
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id_token::tests::{jwk_of, test_key};

    #[test]
    fn usable_keys_are_kept_and_the_rest_skipped() {
        let good = jwk_of(&test_key().to_public_key(), "k1");
        let mut enc = good.clone();
        enc["use"] = "enc".into();
        enc["kid"] = "enc".into();
        let mut es = good.clone();
        es["alg"] = "ES256".into();
        es["kid"] = "es".into();
        let ec =
            serde_json::json!({"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"});
        let body = serde_json::json!({ "keys": [ec, enc, es, good] }).to_string();
        let keys = IssuerKeys::from_jwks(body.as_bytes()).unwrap();
        assert_eq!(keys.kids().collect::<Vec<_>>(), ["k1"]);
        assert!(keys.get("k1").is_some());
        assert!(keys.get("enc").is_none());
    }

    #[test]
    fn sets_without_usable_keys_are_errors() {
        assert_eq!(
            IssuerKeys::from_jwks(b"[]").unwrap_err(),
            JwksError::Malformed
        );
        assert_eq!(
            IssuerKeys::from_jwks(b"{\"keys\": {}}").unwrap_err(),
            JwksError::Malformed
        );
        assert_eq!(
            IssuerKeys::from_jwks(b"{\"keys\": []}").unwrap_err(),
            JwksError::NoUsableKey
        );
        // A 512-bit modulus is too small to trust.
        let small = serde_json::json!({"keys": [{"kty": "RSA", "kid": "s", "e": "AQAB",
            "n": license_edge_token::encoding::base64url_encode([0xffu8; 64])}]});
        assert_eq!(
            IssuerKeys::from_jwks(small.to_string().as_bytes()).unwrap_err(),
            JwksError::NoUsableKey
        );
    }
}
