//! Signed-in users for license-edge: the checks an OpenID Connect ID token must pass before a
//! seat is taken for its user, with no I/O of its own.
//!
//! - [`jwks`]: the issuer's published key set (RSA keys, by `kid`).
//! - [`id_token`]: an ID token checked against that set and the deployment's issuer and
//!   audience ([`verify_id_token`]): RS256 only, so a token that names another algorithm
//!   (`none`, `HS256` keyed with the public key, `EdDSA`) is refused before any key is looked at.
//! - [`rsa`]: RS256 signature verification (RSASSA-PKCS1-v1_5 with SHA-256), no more.
//! - [`cache`]: how long a fetched key set may be reused (its `Cache-Control`), and when an
//!   unknown `kid` may trigger a refetch.
//!
//! Firebase / Google Identity Platform is the documented default issuer
//! (`https://securetoken.google.com/<project>`, audience `<project>`), but nothing here is
//! specific to it.

pub mod cache;
pub mod id_token;
pub mod jwks;
pub mod rsa;

pub use cache::{cache_key, cache_max_age_s, CachedKeySet, MAX_CACHE_S, MIN_REFETCH_INTERVAL_MS};
pub use id_token::{verify_id_token, IdTokenError, IssuerConfig, SignedInUser, ID_TOKEN_LEEWAY_S};
pub use jwks::{IssuerKeys, JwksError};

/// Whether a bearer credential is shaped like a JWT (three base64url parts, the signature
/// possibly empty, as in an `alg: none` token): an ID token to check (and perhaps refuse)
/// rather than a license key, which never holds a dot.
pub fn looks_like_jwt(credential: &str) -> bool {
    let base64url = |p: &str| {
        p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let parts: Vec<&str> = credential.split('.').collect();
    matches!(parts.as_slice(), [h, p, s] if !h.is_empty() && !p.is_empty() && base64url(h) && base64url(p) && base64url(s))
}

#[cfg(test)]
mod tests {
    use super::looks_like_jwt;

    #[test]
    fn jwt_shapes() {
        assert!(looks_like_jwt("eyJh.eyJz.c2ln"));
        assert!(!looks_like_jwt("lk_0123456789abcdef"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("a..c"));
        assert!(
            looks_like_jwt("a.b."),
            "an alg:none token is checked, then refused"
        );
        assert!(!looks_like_jwt("a.b+.c"));
    }
}
