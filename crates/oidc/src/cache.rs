//! How long an issuer's key set may be reused, and the key-value entry that holds it.
//!
//! The acquire component keeps the fetched JWKS in the key-value store (every instance is new,
//! so memory cannot hold it), for as long as the response's `Cache-Control` allows. An ID token
//! whose `kid` the cached set lacks (the issuer rotated) triggers one refetch, but not more
//! often than [`MIN_REFETCH_INTERVAL_MS`]: tokens with made-up `kid`s must not turn the server
//! into a flood of requests at the issuer.

use serde::{Deserialize, Serialize};

/// The longest a key set is kept, whatever `Cache-Control` says: a day.
pub const MAX_CACHE_S: u64 = 24 * 3600;
/// How long a set is kept when the response has no `Cache-Control` at all (RFC 9111 leaves it
/// to the cache; five minutes keeps rotation prompt).
pub const DEFAULT_CACHE_S: u64 = 300;
/// The shortest time between two fetches caused by an unknown `kid`, milliseconds.
pub const MIN_REFETCH_INTERVAL_MS: i64 = 1000;
/// How long past its freshness a stored set may still be used when the issuer cannot be
/// reached: an hour. Google publishes a new key well before it signs with it.
pub const STALE_IF_ERROR_MS: i64 = 3600 * 1000;

/// The freshness lifetime `Cache-Control` grants, seconds: `max-age` (or `s-maxage`, which
/// wins for a shared cache like this one), 0 for `no-store`/`no-cache`, [`DEFAULT_CACHE_S`]
/// without the header, capped at [`MAX_CACHE_S`].
pub fn cache_max_age_s(cache_control: Option<&str>) -> u64 {
    let Some(header) = cache_control else {
        return DEFAULT_CACHE_S;
    };
    let mut max_age = None;
    let mut shared = None;
    for directive in header.split(',') {
        let directive = directive.trim();
        let (name, value) = match directive.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (directive, None),
        };
        let name = name.to_ascii_lowercase();
        match (name.as_str(), value) {
            ("no-store" | "no-cache", _) => return 0,
            ("max-age", Some(v)) => max_age = v.parse::<u64>().ok().or(Some(0)),
            ("s-maxage", Some(v)) => shared = v.parse::<u64>().ok().or(Some(0)),
            _ => {}
        }
    }
    shared.or(max_age).unwrap_or(0).min(MAX_CACHE_S)
}

/// The stored key set: the JWKS body as fetched, and when it stops being fresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedKeySet {
    /// When it was fetched, Unix milliseconds.
    pub fetched_at: i64,
    /// Until when it is fresh, Unix milliseconds.
    pub fresh_until: i64,
    /// The JWKS document.
    pub jwks: String,
}

impl CachedKeySet {
    /// A set fetched at `now_ms` with the response's `Cache-Control`.
    pub fn new(jwks: String, now_ms: i64, cache_control: Option<&str>) -> Self {
        let age_ms = i64::try_from(cache_max_age_s(cache_control) * 1000).unwrap_or(i64::MAX);
        CachedKeySet {
            fetched_at: now_ms,
            fresh_until: now_ms.saturating_add(age_ms),
            jwks,
        }
    }

    /// The stored form (JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a key set entry serializes")
    }

    /// Reads the stored form; `None` for anything else.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    /// Whether it may be used without asking the issuer.
    pub fn is_fresh(&self, now_ms: i64) -> bool {
        now_ms < self.fresh_until
    }

    /// Whether an unknown `kid` may fetch the set again now.
    pub fn may_refetch(&self, now_ms: i64) -> bool {
        now_ms.saturating_sub(self.fetched_at) >= MIN_REFETCH_INTERVAL_MS
            || now_ms < self.fetched_at
    }

    /// Whether it may stand in when the issuer cannot be reached.
    pub fn usable_when_issuer_down(&self, now_ms: i64) -> bool {
        now_ms < self.fresh_until.saturating_add(STALE_IF_ERROR_MS)
    }
}

/// The key-value key of the stored set for a JWKS URL.
pub fn cache_key(jwks_url: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(jwks_url.as_bytes());
    format!(
        "oidc:jwks:{}",
        license_edge_token::encoding::hex(&digest[..16])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_decides_the_lifetime() {
        assert_eq!(cache_max_age_s(None), DEFAULT_CACHE_S);
        // What Google sends for its securetoken JWKS.
        assert_eq!(
            cache_max_age_s(Some("public, max-age=22279, must-revalidate, no-transform")),
            22279
        );
        assert_eq!(cache_max_age_s(Some("max-age=60, s-maxage=10")), 10);
        assert_eq!(cache_max_age_s(Some("no-store")), 0);
        assert_eq!(cache_max_age_s(Some("max-age=600, no-cache")), 0);
        assert_eq!(cache_max_age_s(Some("max-age=abc")), 0);
        assert_eq!(cache_max_age_s(Some("public")), 0);
        assert_eq!(cache_max_age_s(Some("max-age=99999999")), MAX_CACHE_S);
        assert_eq!(cache_max_age_s(Some("MAX-AGE=\"30\"")), 30);
    }

    #[test]
    fn freshness_refetch_and_staleness() {
        let set = CachedKeySet::new("{}".into(), 1_000_000, Some("max-age=60"));
        assert!(set.is_fresh(1_059_999));
        assert!(!set.is_fresh(1_060_000));
        assert!(!set.may_refetch(1_000_999));
        assert!(set.may_refetch(1_001_000));
        assert!(
            set.may_refetch(999_000),
            "a clock that went back must not lock the set in"
        );
        assert!(set.usable_when_issuer_down(1_060_000 + STALE_IF_ERROR_MS - 1));
        assert!(!set.usable_when_issuer_down(1_060_000 + STALE_IF_ERROR_MS));
        assert_ne!(cache_key("https://a/jwks"), cache_key("https://b/jwks"));
        assert!(cache_key("https://a/jwks").starts_with("oidc:jwks:"));
    }
}
