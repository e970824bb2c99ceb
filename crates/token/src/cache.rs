//! A bounded in-memory cache of verified tokens, so a verifier that sees the same token again
//! skips the signature check.
//!
//! Entries are keyed by [`token_digest`] (SHA-256 of the token bytes), so the cache holds no
//! token text. A hit is returned only if [`VerifiedToken::recheck`] passes at the caller's `now`
//! with the caller's policy and machine id, and only if the key that verified it is still in the
//! caller's key set with the same bytes: an expired token or a rotated-out key is never served
//! from the cache. Refusals are not cached. When full, the least recently used entry goes.
//!
//! Spin creates a fresh component instance per request, so inside a Spin component this cache
//! only lives as long as one request; it pays off in long-lived verifiers (vendor clients,
//! native services, a host that reuses instances).

use std::collections::{BTreeMap, HashMap};

use crate::error::TokenError;
use crate::jwt::{token_digest, verify, ValidationOptions, VerifiedToken};
use crate::keys::{KeySet, VerifyingKey};

/// A least-recently-used cache of [`VerifiedToken`]s keyed by the SHA-256 of the token.
#[derive(Debug)]
pub struct VerifiedCache {
    capacity: usize,
    entries: HashMap<[u8; 32], Entry>,
    /// Last use tick -> digest, oldest first.
    recency: BTreeMap<u64, [u8; 32]>,
    tick: u64,
}

#[derive(Debug)]
struct Entry {
    verified: VerifiedToken,
    key: VerifyingKey,
    last_used: u64,
}

impl VerifiedCache {
    /// A cache holding at most `capacity` tokens (0 disables caching).
    pub fn new(capacity: usize) -> Self {
        VerifiedCache {
            capacity,
            entries: HashMap::new(),
            recency: BTreeMap::new(),
            tick: 0,
        }
    }

    /// How many tokens the cache holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache holds no token.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// [`verify`], answered from the cache when this token was verified before with a key
    /// still in `keys`; the time, policy and machine checks always run again.
    pub fn verify(
        &mut self,
        token: impl AsRef<[u8]>,
        keys: &KeySet,
        policy: &ValidationOptions,
        now: i64,
        machine_id: Option<&str>,
    ) -> Result<VerifiedToken, TokenError> {
        let token = token.as_ref();
        let digest = token_digest(token);
        if let Some(entry) = self.entries.get(&digest) {
            if keys.get(entry.verified.kid()) == Some(&entry.key) {
                match entry.verified.recheck(policy, now, machine_id) {
                    Ok(()) => {
                        let verified = entry.verified.clone();
                        self.touch(digest);
                        return Ok(verified);
                    }
                    Err(TokenError::Expired) => {
                        // It will never be valid again.
                        self.remove(&digest);
                        return Err(TokenError::Expired);
                    }
                    Err(err) => return Err(err),
                }
            }
            // The key left the set or changed: verify from scratch.
            self.remove(&digest);
        }
        let verified = verify(token, keys, policy, now, machine_id)?;
        if self.capacity > 0 {
            // The key just verified the token, so it is in the set.
            if let Some(key) = keys.get(verified.kid()) {
                self.insert(digest, verified.clone(), key.clone());
            }
        }
        Ok(verified)
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    fn touch(&mut self, digest: [u8; 32]) {
        let tick = self.next_tick();
        if let Some(entry) = self.entries.get_mut(&digest) {
            self.recency.remove(&entry.last_used);
            entry.last_used = tick;
            self.recency.insert(tick, digest);
        }
    }

    fn remove(&mut self, digest: &[u8; 32]) {
        if let Some(entry) = self.entries.remove(digest) {
            self.recency.remove(&entry.last_used);
        }
    }

    fn insert(&mut self, digest: [u8; 32], verified: VerifiedToken, key: VerifyingKey) {
        while self.entries.len() >= self.capacity {
            let Some((_, oldest)) = self.recency.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        let tick = self.next_tick();
        self.recency.insert(tick, digest);
        self.entries.insert(
            digest,
            Entry {
                verified,
                key,
                last_used: tick,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::Claims;
    use crate::jwt::issue;
    use crate::keys::SigningKey;

    const NOW: i64 = 1_800_000_000;

    fn key(kid: &str, byte: u8) -> SigningKey {
        SigningKey::from_seed(kid, [byte; 32]).unwrap()
    }

    fn set(keys: &[&SigningKey]) -> KeySet {
        keys.iter()
            .map(|k| k.verifying_key())
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn token(key: &SigningKey, sid: &str) -> String {
        let claims = Claims::new("iss", "lic", "aud", sid, NOW, 600).with_machine_id("m");
        issue(key, &claims).unwrap()
    }

    #[test]
    fn a_hit_returns_the_same_claims_as_verify() {
        let k = key("k", 1);
        let keys = set(&[&k]);
        let t = token(&k, "s1");
        let mut cache = VerifiedCache::new(8);
        let first = cache
            .verify(&t, &keys, &ValidationOptions::new(), NOW, Some("m"))
            .unwrap();
        assert_eq!(cache.len(), 1);
        let second = cache
            .verify(&t, &keys, &ValidationOptions::new(), NOW, Some("m"))
            .unwrap();
        assert_eq!(first, second);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn never_serves_an_expired_token_and_drops_it() {
        let k = key("k", 1);
        let keys = set(&[&k]);
        let t = token(&k, "s1");
        let mut cache = VerifiedCache::new(8);
        cache
            .verify(&t, &keys, &ValidationOptions::new(), NOW, None)
            .unwrap();
        let later = NOW + 600 + 60;
        assert_eq!(
            cache
                .verify(&t, &keys, &ValidationOptions::new(), later, None)
                .unwrap_err(),
            TokenError::Expired
        );
        assert!(cache.is_empty());
    }

    #[test]
    fn rechecks_policy_and_machine_on_a_hit() {
        let k = key("k", 1);
        let keys = set(&[&k]);
        let t = token(&k, "s1");
        let mut cache = VerifiedCache::new(8);
        cache
            .verify(&t, &keys, &ValidationOptions::new(), NOW, Some("m"))
            .unwrap();
        assert_eq!(
            cache
                .verify(&t, &keys, &ValidationOptions::new(), NOW, Some("other"))
                .unwrap_err(),
            TokenError::MachineMismatch
        );
        assert_eq!(
            cache
                .verify(
                    &t,
                    &keys,
                    &ValidationOptions::new().with_audience("x"),
                    NOW,
                    None
                )
                .unwrap_err(),
            TokenError::WrongAudience
        );
        assert_eq!(cache.len(), 1, "still valid for the right machine");
    }

    #[test]
    fn a_rotated_out_or_replaced_key_is_not_trusted_from_the_cache() {
        let old = key("old", 1);
        let new = key("new", 2);
        let t = token(&old, "s1");
        let mut cache = VerifiedCache::new(8);
        cache
            .verify(
                &t,
                &set(&[&old, &new]),
                &ValidationOptions::new(),
                NOW,
                None,
            )
            .unwrap();
        assert_eq!(
            cache
                .verify(&t, &set(&[&new]), &ValidationOptions::new(), NOW, None)
                .unwrap_err(),
            TokenError::UnknownKey
        );
        cache
            .verify(&t, &set(&[&old]), &ValidationOptions::new(), NOW, None)
            .unwrap();
        // Another key under the same kid.
        let impostor = key("old", 3);
        assert_eq!(
            cache
                .verify(&t, &set(&[&impostor]), &ValidationOptions::new(), NOW, None)
                .unwrap_err(),
            TokenError::BadSignature
        );
    }

    #[test]
    fn evicts_the_least_recently_used() {
        let k = key("k", 1);
        let keys = set(&[&k]);
        let (a, b, c) = (token(&k, "a"), token(&k, "b"), token(&k, "c"));
        let mut cache = VerifiedCache::new(2);
        let p = ValidationOptions::new();
        cache.verify(&a, &keys, &p, NOW, None).unwrap();
        cache.verify(&b, &keys, &p, NOW, None).unwrap();
        cache.verify(&a, &keys, &p, NOW, None).unwrap(); // a is now the most recent
        cache.verify(&c, &keys, &p, NOW, None).unwrap(); // evicts b
        assert_eq!(cache.len(), 2);
        assert!(cache.entries.contains_key(&token_digest(&a)));
        assert!(!cache.entries.contains_key(&token_digest(&b)));
        assert!(cache.entries.contains_key(&token_digest(&c)));
        assert_eq!(cache.recency.len(), cache.entries.len());
    }

    #[test]
    fn refusals_are_not_cached_and_zero_capacity_caches_nothing() {
        let k = key("k", 1);
        let keys = set(&[&k]);
        let mut cache = VerifiedCache::new(0);
        cache
            .verify(token(&k, "a"), &keys, &ValidationOptions::new(), NOW, None)
            .unwrap();
        assert!(cache.is_empty());
        let mut cache = VerifiedCache::new(4);
        assert!(cache
            .verify("x.y.z", &keys, &ValidationOptions::new(), NOW, None)
            .is_err());
        assert!(cache.is_empty());
    }
}
