//! Sealed verification results: a cache of verified tokens that lives in a shared store.
//!
//! Spin makes a fresh instance for every request, so a component cannot remember that it
//! verified a token a moment ago; the key-value store can. [`seal`] turns a [`VerifiedToken`]
//! into an entry bound to the exact token (by its SHA-256) and to the exact public key that
//! verified it, authenticated with HMAC-SHA256 under a secret only the validating component
//! holds. [`verify_sealed`] accepts an entry only if all of that still holds, and then re-runs
//! every check that depends on time, policy and machine, so an entry never outlives the token's
//! `exp`, never survives the removal of its key from the set, and never skips a check. Anything
//! else (no entry, another token's entry, a forged or damaged entry, a key rotated out) falls
//! back to the full [`verify`]. Revocation is not this module's business: callers check the
//! read model after either path.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{check_claims, token_digest, verify, Policy, VerifiedToken};
use crate::b64;
use crate::claims::{hex, Claims};
use crate::error::TokenError;
use crate::json;
use crate::keys::KeySet;

/// The shortest sealing key accepted; shorter keys disable the cache.
pub const MIN_SEAL_KEY_BYTES: usize = 32;

/// The store key of a token's sealed entry: `vt:` and the token's SHA-256 in hex.
pub fn sealed_key(token: &str) -> String {
    format!("vt:{}", hex(&token_digest(token)))
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

fn mac(seal_key: &[u8], digest: &str, kid: &str, x: &str, claims: &str) -> String {
    let message = format!("license-edge sealed token v1\n{digest}\n{kid}\n{x}\n{claims}");
    hex(&hmac_sha256(seal_key, message.as_bytes()))
}

fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The sealed entry for `verified`, the result of verifying `token` against `keys`.
/// `None` when the key is shorter than [`MIN_SEAL_KEY_BYTES`] or the verifying key is no
/// longer in `keys`.
pub fn seal(
    verified: &VerifiedToken,
    token: &str,
    keys: &KeySet,
    seal_key: &[u8],
) -> Option<Vec<u8>> {
    if seal_key.len() < MIN_SEAL_KEY_BYTES {
        return None;
    }
    let x = b64::encode(keys.get(verified.kid())?.to_bytes());
    let digest = hex(&token_digest(token));
    let claims = verified.claims().to_json().to_string();
    let m = mac(seal_key, &digest, verified.kid(), &x, &claims);
    let entry = json!({ "d": digest, "kid": verified.kid(), "x": x, "c": claims, "m": m });
    Some(entry.to_string().into_bytes())
}

/// Reads a sealed entry for `token`; `None` unless it is intact, for this token, and for a key
/// still in `keys` with the same bytes.
fn open(token: &str, entry: &[u8], keys: &KeySet, seal_key: &[u8]) -> Option<VerifiedToken> {
    if seal_key.len() < MIN_SEAL_KEY_BYTES {
        return None;
    }
    let entry: Value = serde_json::from_slice(entry).ok()?;
    let field = |name: &str| entry.get(name).and_then(Value::as_str);
    let (d, kid, x, c, m) = (
        field("d")?,
        field("kid")?,
        field("x")?,
        field("c")?,
        field("m")?,
    );
    let expected = mac(seal_key, d, kid, x, c);
    if !equal_in_constant_time(expected.as_bytes(), m.as_bytes()) {
        return None;
    }
    if d != hex(&token_digest(token)) {
        return None;
    }
    let key = keys.get(kid)?;
    if b64::encode(key.to_bytes()) != x {
        return None;
    }
    let claims = Claims::from_json_object(json::parse_object(c.as_bytes())?).ok()?;
    Some(VerifiedToken {
        kid: kid.to_owned(),
        claims,
    })
}

/// Verifies `token`, using its sealed entry when there is a good one. Returns the verified
/// token and whether the entry was used (`true`: the signature was not checked again because
/// this very token was verified before with this very key).
pub fn verify_sealed(
    token: &str,
    entry: Option<&[u8]>,
    keys: &KeySet,
    policy: &Policy,
    now: i64,
    machine_id: Option<&str>,
    seal_key: &[u8],
) -> Result<(VerifiedToken, bool), TokenError> {
    if let Some(verified) = entry.and_then(|e| open(token, e, keys, seal_key)) {
        check_claims(verified.claims(), policy, now, machine_id)?;
        return Ok((verified, true));
    }
    verify(token, keys, policy, now, machine_id).map(|v| (v, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;
    use crate::token::issue;

    const SEAL: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn setup() -> (SigningKey, KeySet, String) {
        let key = SigningKey::from_seed("k1", [3; 32]).unwrap();
        let mut keys = KeySet::new();
        keys.insert(key.verifying_key()).unwrap();
        let claims = Claims::new("iss", "lic", "aud", "ses", 1_000, 600).with_machine_id("m");
        let token = issue(&key, &claims).unwrap();
        (key, keys, token)
    }

    #[test]
    fn preflight_refuses_without_signature_work() {
        let (_, keys, token) = setup();
        assert_eq!(crate::token::preflight(&token, &keys), Ok(()));
        assert_eq!(
            crate::token::preflight(&token, &KeySet::new()),
            Err(TokenError::UnknownKey)
        );
        assert!(matches!(
            crate::token::preflight("x.y", &keys),
            Err(TokenError::Malformed { .. })
        ));
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
        let (_, keys, token) = setup();
        let policy = Policy::new();
        let (v, hit) = verify_sealed(&token, None, &keys, &policy, 1_100, None, SEAL).unwrap();
        assert!(!hit);
        let entry = seal(&v, &token, &keys, SEAL).unwrap();
        let (again, hit) =
            verify_sealed(&token, Some(&entry), &keys, &policy, 1_100, Some("m"), SEAL).unwrap();
        assert!(hit);
        assert_eq!(again, v);
        // The entry never outlives exp, nor skips the machine or policy checks.
        let err =
            verify_sealed(&token, Some(&entry), &keys, &policy, 1_700, None, SEAL).unwrap_err();
        assert_eq!(err, TokenError::Expired);
        let err = verify_sealed(
            &token,
            Some(&entry),
            &keys,
            &policy,
            1_100,
            Some("other"),
            SEAL,
        )
        .unwrap_err();
        assert_eq!(err, TokenError::MachineMismatch);
        let err = verify_sealed(
            &token,
            Some(&entry),
            &keys,
            &policy.clone().with_audience("x"),
            1_100,
            None,
            SEAL,
        )
        .unwrap_err();
        assert_eq!(err, TokenError::WrongAudience);
    }

    #[test]
    fn rejects_entries_that_do_not_hold_any_more() {
        let (_, keys, token) = setup();
        let policy = Policy::new();
        let v = verify(&token, &keys, &policy, 1_100, None).unwrap();
        let entry = seal(&v, &token, &keys, SEAL).unwrap();
        // Another token's entry does not serve this one: a forged token is fully verified.
        let mut forged = token.clone();
        forged.pop();
        forged.push(if token.ends_with('A') { 'B' } else { 'A' });
        let err =
            verify_sealed(&forged, Some(&entry), &keys, &policy, 1_100, None, SEAL).unwrap_err();
        assert!(
            matches!(err, TokenError::BadSignature | TokenError::Malformed { .. }),
            "{err:?}"
        );
        // A key rotated out: the cached result goes with it.
        let other = SigningKey::from_seed("k2", [4; 32]).unwrap();
        let mut rotated = KeySet::new();
        rotated.insert(other.verifying_key()).unwrap();
        let err =
            verify_sealed(&token, Some(&entry), &rotated, &policy, 1_100, None, SEAL).unwrap_err();
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
        let err =
            verify_sealed(&token, Some(&entry), &swapped, &policy, 1_100, None, SEAL).unwrap_err();
        assert_eq!(err, TokenError::BadSignature);
        // Without the sealing key, an entry cannot be made or altered.
        let mut text = String::from_utf8(entry.clone()).unwrap();
        text = text.replace("\\\"lic\\\"", "\\\"lic2\\\"");
        let (v2, hit) = verify_sealed(
            &token,
            Some(text.as_bytes()),
            &keys,
            &policy,
            1_100,
            None,
            SEAL,
        )
        .unwrap();
        assert!(!hit, "an altered entry is ignored");
        assert_eq!(v2.claims().sub, "lic");
        let (_, hit) = verify_sealed(
            &token,
            Some(&entry),
            &keys,
            &policy,
            1_100,
            None,
            b"another key of thirty-two bytes!",
        )
        .unwrap();
        assert!(!hit);
        // Garbage and short keys are ignored, never a panic.
        for junk in [&b""[..], b"{}", b"[1]", b"\xff\xfe", b"{\"d\":1}"] {
            let (_, hit) =
                verify_sealed(&token, Some(junk), &keys, &policy, 1_100, None, SEAL).unwrap();
            assert!(!hit);
        }
        assert!(seal(&v, &token, &keys, b"short").is_none());
    }
}
