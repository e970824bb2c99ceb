//! The read model's verified-token cache: proof, kept in the shared key-value store, that a
//! token's signature was checked before.
//!
//! Spin makes a fresh instance for every request, so a component cannot remember that it
//! verified a token a moment ago; the key-value store can. After a full verification,
//! [`verify_cached`] hands back an entry to store at the session's
//! [`verify_cache_key`]: the token's `exp` (the entry's lifetime) and an HMAC-SHA256, under a secret
//! only the validating component holds, of the token's SHA-256, its `exp` and the `kid` and
//! key bytes that verified it.
//! Given that entry later, it skips exactly one check, the signature: the token is still
//! parsed, its header checked, its `kid` looked up in the current key set, and its claims read
//! from the token itself and checked against the time, policy and machine as in
//! [`verify`]. So an entry never outlives the token's `exp`, never survives the
//! removal or replacement of its key, and cannot be made or altered without the secret.
//! Anything else (no entry, another token's entry, a forged or damaged one) means a full
//! verification. Whether the session is still live is the read model's business
//! ([`crate::read_model`]): validation reads the session's end marker whether or not an entry was
//! used.

use hmac::{Hmac, Mac};
use license_edge_token::encoding::{constant_time_eq, hex};
use license_edge_token::jwt::{token_digest, verify, verify_vouched, ClaimsObject};
use license_edge_token::{KeySet, TokenError, ValidationOptions, VerifiedToken, VerifyingKey};
use sha2::Sha256;

use super::verify_cache_key;

/// The shortest cache secret (`verify_cache_key`) accepted; shorter ones disable the cache.
pub const MIN_CACHE_SECRET_BYTES: usize = 32;

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length (longer ones are hashed first, RFC 2104).
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// The entry for the token with `digest` and `exp`, verified under `key`: the token's `exp`
/// (the entry's lifetime, readable by anyone who sweeps the store), a `.`, and the MAC in hex.
fn entry_for(cache_secret: &[u8], digest: &[u8; 32], exp: i64, key: &VerifyingKey) -> Vec<u8> {
    let mut message = b"license-edge sealed token v3\n".to_vec();
    message.extend_from_slice(&digest[..]);
    message.extend_from_slice(exp.to_string().as_bytes());
    message.push(b'\n');
    message.extend_from_slice(key.kid().as_bytes());
    message.push(b'\n');
    message.extend_from_slice(&key.to_bytes());
    format!("{exp}.{}", hex(&hmac_sha256(cache_secret, &message))).into_bytes()
}

/// What [`verify_cached`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheCheck {
    /// The verified token.
    pub verified: VerifiedToken,
    /// Whether the session's cache entry stood in for the signature check.
    pub from_cache: bool,
    /// After a full verification with caching on: the store key and the entry to write there,
    /// so the next validation of this token can skip the signature check.
    pub new_entry: Option<(String, Vec<u8>)>,
}

/// Verifies `token`, using its session's cache entry when it is a good one for this token.
///
/// `cache_secret` of at least [`MIN_CACHE_SECRET_BYTES`] turns the cache on; then `lookup` is called
/// with the store key (at most once, and only for a token whose structure, header and `kid`
/// passed and whose payload names a session, so a token that cannot verify costs no I/O) and
/// returns the entry stored there, if any. `lookup` is where the caller does its I/O; this
/// function does none.
pub fn verify_cached(
    token: &str,
    keys: &KeySet,
    policy: &ValidationOptions,
    now: i64,
    machine_id: Option<&str>,
    cache_secret: Option<&[u8]>,
    lookup: impl FnOnce(&str) -> Option<Vec<u8>>,
) -> Result<CacheCheck, TokenError> {
    let Some(cache_secret) = cache_secret.filter(|k| k.len() >= MIN_CACHE_SECRET_BYTES) else {
        let verified = verify(token, keys, policy, now, machine_id)?;
        return Ok(CacheCheck {
            verified,
            from_cache: false,
            new_entry: None,
        });
    };
    let digest = token_digest(token);
    let mut expected = None;
    let vouch = |key: &VerifyingKey, claims: &ClaimsObject| {
        let Some(session) = claims.get("sid").and_then(|s| s.as_str()) else {
            return false;
        };
        let Some(exp) = claims.get("exp").and_then(|e| e.as_i64()) else {
            return false;
        };
        let entry = entry_for(cache_secret, &digest, exp, key);
        let store_key = verify_cache_key(session);
        let vouched = lookup(&store_key).is_some_and(|s| constant_time_eq(&s, &entry));
        expected = Some((store_key, entry));
        vouched
    };
    let (verified, from_cache) =
        verify_vouched(token.as_bytes(), keys, policy, now, machine_id, Some(vouch))?;
    // The entry is keyed by the session the verified claims name (the lookup used the same
    // `sid`, read from the same bytes before the signature held).
    let new_entry = if from_cache { None } else { expected };
    Ok(CacheCheck {
        verified,
        from_cache,
        new_entry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use license_edge_token::encoding::base64url_encode;
    use license_edge_token::{issue, Claims, SigningKey};

    const SEAL: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn setup() -> (KeySet, String) {
        let key = SigningKey::from_seed("k1", [3; 32]).unwrap();
        let mut keys = KeySet::new();
        keys.insert(key.verifying_key()).unwrap();
        let claims = Claims::new("iss", "lic", "aud", "ses", 1_000, 600).with_machine_id("m");
        (keys, issue(&key, &claims).unwrap())
    }

    /// Verifies `token` against a store holding at most `stored`, with the defaults below.
    fn check_with(
        token: &str,
        keys: &KeySet,
        stored: Option<&[u8]>,
        now: i64,
        machine_id: Option<&str>,
        cache_secret: &[u8],
    ) -> Result<CacheCheck, TokenError> {
        let policy = ValidationOptions::new();
        verify_cached(
            token,
            keys,
            &policy,
            now,
            machine_id,
            Some(cache_secret),
            |k| {
                assert_eq!(k, verify_cache_key("ses"));
                stored.map(<[u8]>::to_vec)
            },
        )
    }

    /// The entry a first, full verification asks to store.
    fn first_entry(token: &str, keys: &KeySet) -> Vec<u8> {
        let first = check_with(token, keys, None, 1_100, None, SEAL).unwrap();
        assert!(!first.from_cache);
        let (key, entry) = first.new_entry.unwrap();
        assert_eq!(key, verify_cache_key("ses"), "keyed by the session");
        entry
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_sealed_entry_is_used_and_still_rechecked() {
        let (keys, token) = setup();
        let entry = first_entry(&token, &keys);
        assert!(
            entry.starts_with(b"1600."),
            "the entry states its token's exp"
        );
        let full = verify(&token, &keys, &ValidationOptions::new(), 1_100, None).unwrap();
        let hit = check_with(&token, &keys, Some(&entry), 1_100, Some("m"), SEAL).unwrap();
        assert!(hit.from_cache);
        assert_eq!(hit.new_entry, None, "nothing to write on a hit");
        assert_eq!(hit.verified, full);
        // The entry never outlives exp, nor skips the machine or policy checks.
        let err = check_with(&token, &keys, Some(&entry), 1_700, None, SEAL).unwrap_err();
        assert_eq!(err, TokenError::Expired);
        let err = check_with(&token, &keys, Some(&entry), 1_100, Some("other"), SEAL).unwrap_err();
        assert_eq!(err, TokenError::MachineMismatch);
        let policy = ValidationOptions::new().with_audience("x");
        let err = verify_cached(&token, &keys, &policy, 1_100, None, Some(SEAL), |_| {
            Some(entry.clone())
        })
        .unwrap_err();
        assert_eq!(err, TokenError::WrongAudience);
    }

    #[test]
    fn no_lookup_for_a_token_that_cannot_verify_or_without_a_key() {
        let (keys, token) = setup();
        for bad in ["x.y", "a.b.c", ""] {
            let err = verify_cached(
                bad,
                &keys,
                &ValidationOptions::new(),
                1_100,
                None,
                Some(SEAL),
                |_| panic!("looked up {bad:?}"),
            )
            .unwrap_err();
            assert!(
                matches!(err, TokenError::Malformed { .. }),
                "{bad}: {err:?}"
            );
        }
        let err = verify_cached(
            &token,
            &KeySet::new(),
            &ValidationOptions::new(),
            1_100,
            None,
            Some(SEAL),
            |_| panic!("looked up a token of an unknown key"),
        )
        .unwrap_err();
        assert_eq!(err, TokenError::UnknownKey);
        // A payload that is not JSON (under a bad signature): no lookup, and the signature is
        // what is reported, as without the cache.
        let [h, _, sig] = token.split('.').collect::<Vec<_>>()[..] else {
            unreachable!()
        };
        let garbage = format!("{h}.{}.{sig}", base64url_encode(b"not json"));
        let err = verify_cached(
            &garbage,
            &keys,
            &ValidationOptions::new(),
            1_100,
            None,
            Some(SEAL),
            |_| panic!("looked up a payload that names no session"),
        )
        .unwrap_err();
        assert_eq!(err, TokenError::BadSignature);
        for short in [None, Some(&b"short"[..])] {
            let plain = verify_cached(
                &token,
                &keys,
                &ValidationOptions::new(),
                1_100,
                None,
                short,
                |_| panic!("looked up with the cache off"),
            )
            .unwrap();
            assert!(!plain.from_cache && plain.new_entry.is_none());
        }
    }

    #[test]
    fn rejects_entries_that_do_not_hold_any_more() {
        let (keys, token) = setup();
        let entry = first_entry(&token, &keys);
        // Another token under the same entry is fully verified: a forged token stays forged.
        let mut forged = token.clone();
        forged.pop();
        forged.push(if token.ends_with('A') { 'B' } else { 'A' });
        let err = verify_cached(
            &forged,
            &keys,
            &ValidationOptions::new(),
            1_100,
            None,
            Some(SEAL),
            |_| Some(entry.clone()),
        )
        .unwrap_err();
        assert!(
            matches!(err, TokenError::BadSignature | TokenError::Malformed { .. }),
            "{err:?}"
        );
        // A key rotated out: the cached result goes with it.
        let other = SigningKey::from_seed("k2", [4; 32]).unwrap();
        let mut rotated = KeySet::new();
        rotated.insert(other.verifying_key()).unwrap();
        let err = check_with(&token, &rotated, Some(&entry), 1_100, None, SEAL).unwrap_err();
        assert_eq!(err, TokenError::UnknownKey);
        // The same kid with other key bytes: not a hit, and the signature fails.
        let mut swapped = KeySet::new();
        swapped
            .insert(
                SigningKey::from_seed("k1", [5; 32])
                    .unwrap()
                    .verifying_key(),
            )
            .unwrap();
        let err = check_with(&token, &swapped, Some(&entry), 1_100, None, SEAL).unwrap_err();
        assert_eq!(err, TokenError::BadSignature);
        // Another sealing key, an altered entry, garbage: all misses, never a panic.
        let other_seal = b"another key of thirty-two bytes!";
        let miss = check_with(&token, &keys, Some(&entry), 1_100, None, other_seal).unwrap();
        assert!(!miss.from_cache);
        let mut altered = entry.clone();
        altered[0] ^= 1;
        for junk in [&altered[..], b"", b"{}", b"\xff\xfe", &entry[..63]] {
            let miss = check_with(&token, &keys, Some(junk), 1_100, None, SEAL).unwrap();
            assert!(!miss.from_cache, "{junk:?}");
            assert!(miss.new_entry.is_some(), "a miss offers a fresh entry");
        }
    }
}
