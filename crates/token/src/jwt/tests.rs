use serde_json::{json, Value};

use super::*;
use crate::keys::KeySet;

const NOW: i64 = 1_800_000_000;

fn signing_key(kid: &str, byte: u8) -> SigningKey {
    SigningKey::from_seed(kid, [byte; 32]).unwrap()
}

fn key_set(keys: &[&SigningKey]) -> KeySet {
    keys.iter()
        .map(|k| k.verifying_key())
        .collect::<Result<_, _>>()
        .unwrap()
}

fn claims() -> Claims {
    let mut c = Claims::new("https://lic.example", "lic_1", "prod_a", "ses_1", NOW, 600)
        .with_machine_id("machine-42");
    c.org = Some("org_1".into());
    c.plan = Some("pro".into());
    c.features = vec!["export".into()];
    c.max_seats = Some(3);
    c
}

fn policy() -> ValidationOptions {
    ValidationOptions::new()
        .with_issuer("https://lic.example")
        .with_audience("prod_a")
}

/// A valid token, its key and the matching key set.
fn fixture() -> (String, SigningKey, KeySet) {
    let key = signing_key("k1", 1);
    let set = key_set(&[&key]);
    (issue(&key, &claims()).unwrap(), key, set)
}

fn check(token: impl AsRef<[u8]>, set: &KeySet) -> Result<VerifiedToken, TokenError> {
    verify(token, set, &policy(), NOW, Some("machine-42"))
}

/// A validly signed token with any header and payload text, to reach checks behind the
/// signature.
fn forge(header: &str, payload: &str, key: &SigningKey) -> String {
    sign_jws(key, header.as_bytes(), payload.as_bytes())
}

fn good_header() -> String {
    r#"{"alg":"EdDSA","typ":"JWT","kid":"k1"}"#.to_owned()
}

fn good_payload() -> String {
    claims().to_json().to_string()
}

fn header_with(change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut header: serde_json::Map<String, Value> = serde_json::from_str(&good_header()).unwrap();
    change(&mut header);
    Value::Object(header).to_string()
}

fn payload_with(change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let Value::Object(mut map) = claims().to_json() else {
        unreachable!("claims serialize to an object")
    };
    change(&mut map);
    Value::Object(map).to_string()
}

fn segments(token: &str) -> Vec<&str> {
    token.split('.').collect()
}

// --- Known answers ---------------------------------------------------------------------------

/// RFC 8037 appendix A.4 ("Ed25519 Signing") and A.5 ("Ed25519 Validation").
#[test]
fn rfc8037_appendix_a_vector_is_reproduced_byte_for_byte_and_verifies() {
    const D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    const X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    const EXPECTED: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.\
                            hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5B\
                            hVsPt9g7sVvpAr_MuM0KAg";
    let key =
        SigningKey::from_seed("rfc8037", encoding::base64url_decode_array(D).unwrap()).unwrap();
    assert_eq!(
        encoding::base64url_encode(key.verifying_key().to_bytes()),
        X
    );

    let token = sign_jws(&key, br#"{"alg":"EdDSA"}"#, b"Example of Ed25519 signing");
    assert_eq!(token, EXPECTED);

    let public =
        VerifyingKey::from_bytes("rfc8037", encoding::base64url_decode_array(X).unwrap()).unwrap();
    assert_eq!(
        verify_jws(EXPECTED, &public).unwrap(),
        b"Example of Ed25519 signing"
    );
    // A license token must name its key; the RFC's header has no kid.
    let set = key_set(&[&key]);
    assert_eq!(
        verify(EXPECTED, &set, &ValidationOptions::new(), NOW, None).unwrap_err(),
        TokenError::UnknownKey
    );
}

#[test]
fn issued_header_is_exactly_alg_typ_kid() {
    let (token, _, _) = fixture();
    let header = encoding::base64url_decode(segments(&token)[0]).unwrap();
    assert_eq!(header, br#"{"alg":"EdDSA","typ":"JWT","kid":"k1"}"#);
    let payload: Value =
        serde_json::from_slice(&encoding::base64url_decode(segments(&token)[1]).unwrap()).unwrap();
    assert_eq!(payload["jti"], "ses_1");
    assert_eq!(payload["sid"], "ses_1");
    assert_eq!(payload["mid"], crate::claims::machine_id_hash("machine-42"));
}

#[test]
fn issue_is_deterministic() {
    let key = signing_key("k1", 1);
    assert_eq!(
        issue(&key, &claims()).unwrap(),
        issue(&key, &claims()).unwrap()
    );
}

/// The split that lets a key held elsewhere sign: `issue` is exactly the previous one-step
/// construction (`sign_jws` over our header and the serialized claims), byte for byte, and
/// `signing_input` + an Ed25519 signature + `assemble` gives the same token.
#[test]
fn issue_is_signing_input_then_assemble_byte_for_byte() {
    let key = signing_key("k1", 1);
    let token = issue(&key, &claims()).unwrap();
    let one_step = sign_jws(
        &key,
        br#"{"alg":"EdDSA","typ":"JWT","kid":"k1"}"#,
        &serde_json::to_vec(&claims()).unwrap(),
    );
    assert_eq!(token, one_step);
    let input = signing_input("k1", &claims()).unwrap();
    assert!(token.starts_with(&format!("{input}.")));
    let signature = key.sign(input.as_bytes());
    assert_eq!(assemble(&input, &signature).unwrap(), token);
    // What a remote signer's answer must pass before it is trusted.
    let set = key_set(&[&key]);
    assert!(check(&token, &set).is_ok());
    let mut wrong = signature;
    wrong[0] ^= 1;
    let forged = assemble(&input, &wrong).unwrap();
    assert_eq!(
        verify_jws(&forged, &key.verifying_key()),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn signing_input_refuses_a_bad_kid_inconsistent_claims_and_oversized_tokens() {
    assert!(matches!(
        signing_input("bad kid", &claims()),
        Err(TokenError::BadKey { .. })
    ));
    let mut c = claims();
    c.exp = c.iat - 1;
    assert_eq!(
        signing_input("k1", &c).map_err(|e| e.code()),
        issue(&signing_key("k1", 1), &c).map_err(|e| e.code())
    );
    let mut big = claims();
    big.features = (0..400).map(|i| format!("feature-{i}")).collect();
    assert_eq!(
        signing_input("k1", &big),
        Err(TokenError::TokenTooLarge {
            limit_bytes: MAX_TOKEN_BYTES
        })
    );
    // The largest input accepted still assembles into a token within the limit.
    let input = "a".repeat(MAX_TOKEN_BYTES - 1 - SIGNATURE_B64_LEN);
    assert_eq!(assemble(&input, &[0; 64]).unwrap().len(), MAX_TOKEN_BYTES);
    assert!(assemble(&format!("{input}a"), &[0; 64]).is_err());
}

// --- What verifies -----------------------------------------------------------------------------

#[test]
fn issued_token_verifies_with_its_claims() {
    let (token, _, set) = fixture();
    let verified = check(&token, &set).unwrap();
    assert_eq!(verified.claims(), &claims());
    assert_eq!(verified.kid(), "k1");
    assert_eq!(verified.clone().into_claims(), claims());
    // The same token verifies as bytes and without the optional checks.
    assert!(verify(token.as_bytes(), &set, &ValidationOptions::new(), NOW, None).is_ok());
}

#[test]
fn old_and_new_keys_verify_at_once_during_rotation() {
    let old = signing_key("2025-old", 1);
    let new = signing_key("2026-new", 2);
    let set = key_set(&[&old, &new]);
    for key in [&old, &new] {
        let token = issue(key, &claims()).unwrap();
        assert_eq!(check(&token, &set).unwrap().kid(), key.kid());
    }
    // Once the old key leaves the set, its tokens stop verifying.
    let old_token = issue(&old, &claims()).unwrap();
    assert_eq!(
        check(&old_token, &key_set(&[&new])).unwrap_err(),
        TokenError::UnknownKey
    );
}

#[test]
fn typ_is_optional_and_case_insensitive() {
    let key = signing_key("k1", 1);
    let set = key_set(&[&key]);
    for typ in [None, Some("JWT"), Some("jwt"), Some("Jwt")] {
        let header = header_with(|h| match typ {
            None => {
                h.remove("typ");
            }
            Some(t) => {
                h.insert("typ".into(), json!(t));
            }
        });
        let token = forge(&header, &good_payload(), &key);
        assert!(check(&token, &set).is_ok(), "typ {typ:?}");
    }
}

#[test]
fn unknown_claims_and_header_parameters_are_kept_or_ignored_not_rejected() {
    let key = signing_key("k1", 1);
    let set = key_set(&[&key]);
    let mut c = claims();
    c.extra
        .insert("tier".into(), json!({"level": 2, "tags": ["a"]}));
    let token = issue(&key, &c).unwrap();
    assert_eq!(
        check(&token, &set).unwrap().claims().extra["tier"]["level"],
        2
    );
    // Header parameters that could point at other keys are ignored: keys come from the set.
    let header = header_with(|h| {
        h.insert("jku".into(), json!("https://attacker.example/jwks.json"));
        h.insert("x5u".into(), json!("https://attacker.example/cert"));
    });
    assert!(check(forge(&header, &good_payload(), &key), &set).is_ok());
}

// --- Structure ---------------------------------------------------------------------------------

#[test]
fn rejects_anything_but_three_segments() {
    let (token, _, set) = fixture();
    let [h, p, s] = segments(&token)[..] else {
        unreachable!()
    };
    for bad in [
        String::new(),
        ".".into(),
        "..".into(),
        "...".into(),
        format!("{h}.{p}"),
        format!("{h}.{p}.{s}.{s}"),
        format!("{h}.{p}.{s}."),
        format!(".{h}.{p}.{s}"),
        format!("{h}..{p}.{s}"),
        format!("{h}{p}{s}"),
    ] {
        assert_eq!(
            check(&bad, &set).unwrap_err().code(),
            "malformed",
            "{bad:?}"
        );
    }
}

#[test]
fn rejects_padding() {
    let (token, key, set) = fixture();
    let [h, p, s] = segments(&token)[..] else {
        unreachable!()
    };
    let padded = |seg: &str| {
        let pad = (4 - seg.len() % 4) % 4;
        format!("{seg}{}", "=".repeat(pad.max(1)))
    };
    for bad in [
        format!("{}.{p}.{s}", padded(h)),
        format!("{h}.{p}.{}", padded(s)),
    ] {
        assert_eq!(check(&bad, &set).unwrap_err().code(), "malformed", "{bad}");
    }
    // The payload is only decoded once the signature (over its text) verifies.
    let bad = format!("{h}.{}.{s}", padded(p));
    assert_eq!(check(&bad, &set).unwrap_err(), TokenError::BadSignature);
    // Padding inside the signed text, so the signature is valid: still refused.
    let (header_b64, payload_b64) = (
        encoding::base64url_encode(good_header()),
        encoding::base64url_encode(good_payload()),
    );
    for (input, what) in [
        (
            format!("{}.{payload_b64}", padded(&header_b64)),
            "header is not base64url",
        ),
        (
            format!("{header_b64}.{}", padded(&payload_b64)),
            "payload is not base64url",
        ),
    ] {
        let sig = encoding::base64url_encode(key.sign(input.as_bytes()));
        assert_eq!(
            check(format!("{input}.{sig}"), &set).unwrap_err(),
            TokenError::malformed(what)
        );
    }
}

#[test]
fn rejects_standard_alphabet_and_non_canonical_base64() {
    let (token, _, set) = fixture();
    // Every `-`/`_` rewritten to `+`/`/` (the standard alphabet) is refused.
    let std_alphabet = token.replace('-', "+").replace('_', "/");
    if std_alphabet != token {
        assert!(check(&std_alphabet, &set).is_err());
    }
    // The signature's last character carries 4 unused bits; setting any of them gives another
    // spelling of the same 64 bytes, which a lax decoder would accept.
    let (rest, last) = token.split_at(token.len() - 1);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let index = alphabet
        .iter()
        .position(|&c| c == last.as_bytes()[0])
        .unwrap();
    for low_bits in 1..4 {
        let other = char::from(alphabet[(index & !3) | low_bits]);
        let bad = format!("{rest}{other}");
        assert_eq!(
            check(&bad, &set).unwrap_err(),
            TokenError::malformed("signature is not base64url"),
            "{other}"
        );
    }
}

#[test]
fn rejects_trailing_data() {
    let (token, key, set) = fixture();
    for suffix in ["\n", " ", "\0", "x", "=", ".", ".x"] {
        let bad = format!("{token}{suffix}");
        assert_eq!(
            check(&bad, &set).unwrap_err().code(),
            "malformed",
            "{suffix:?}"
        );
    }
    for prefix in [" ", "\n", "Bearer "] {
        let bad = format!("{prefix}{token}");
        assert_eq!(
            check(&bad, &set).unwrap_err().code(),
            "malformed",
            "{prefix:?}"
        );
    }
    // Trailing data inside the signed JSON.
    let bad = forge(&format!("{} x", good_header()), &good_payload(), &key);
    assert_eq!(check(&bad, &set).unwrap_err().code(), "malformed");
    let bad = forge(&good_header(), &format!("{}{{}}", good_payload()), &key);
    assert_eq!(check(&bad, &set).unwrap_err().code(), "malformed");
}

#[test]
fn rejects_tokens_over_the_size_limit() {
    let (_, key, set) = fixture();
    assert_eq!(
        check("a".repeat(MAX_TOKEN_BYTES + 1), &set).unwrap_err(),
        TokenError::TokenTooLarge {
            limit_bytes: MAX_TOKEN_BYTES
        }
    );
    assert_eq!(
        check(vec![b'.'; 1 << 20], &set).unwrap_err().code(),
        "token_too_large"
    );
    // A validly signed token just over the limit is refused, one at the limit is not.
    let base = issue(&key, &claims()).unwrap().len();
    let mut fits = claims();
    // `,"pad":""` adds 9 bytes of JSON, base64 adds a third.
    let room = (MAX_TOKEN_BYTES - base) * 3 / 4 - 9;
    fits.extra.insert("pad".into(), json!("p".repeat(room)));
    let token = issue(&key, &fits).unwrap();
    assert!(token.len() <= MAX_TOKEN_BYTES && token.len() > MAX_TOKEN_BYTES - 8);
    assert!(check(&token, &set).is_ok());
    let mut too_big = fits.clone();
    too_big
        .extra
        .insert("pad".into(), json!("p".repeat(room + 8)));
    assert_eq!(issue(&key, &too_big).unwrap_err().code(), "token_too_large");
    let forged = forge(&good_header(), &too_big.to_json().to_string(), &key);
    assert!(forged.len() > MAX_TOKEN_BYTES);
    assert_eq!(check(&forged, &set).unwrap_err().code(), "token_too_large");
}

#[test]
fn rejects_headers_and_claims_that_are_not_json_objects() {
    let (_, key, set) = fixture();
    for header in [
        "[]",
        "\"EdDSA\"",
        "null",
        "1",
        "",
        "{",
        "not json",
        "{\"alg\":\"EdDSA\",}",
    ] {
        let bad = forge(header, &good_payload(), &key);
        assert_eq!(
            check(&bad, &set).unwrap_err().code(),
            "malformed",
            "{header}"
        );
    }
    for payload in [
        "[]",
        "\"x\"",
        "null",
        "",
        "{",
        "{\"iss\":\"\u{0}\"",
        "\u{feff}{}",
    ] {
        let bad = forge(&good_header(), payload, &key);
        assert_eq!(
            check(&bad, &set).unwrap_err().code(),
            "malformed",
            "{payload:?}"
        );
    }
    // Invalid UTF-8 in the claims.
    let bad = sign_jws(&key, good_header().as_bytes(), b"{\"iss\":\"\xff\"}");
    assert_eq!(check(&bad, &set).unwrap_err().code(), "malformed");
}

#[test]
fn rejects_duplicate_json_keys() {
    let (_, key, set) = fixture();
    // serde_json alone would read the last `alg` and accept this header.
    let header = r#"{"alg":"none","alg":"EdDSA","typ":"JWT","kid":"k1"}"#;
    assert_eq!(
        check(forge(header, &good_payload(), &key), &set).unwrap_err(),
        TokenError::malformed("header is not a JSON object without duplicate keys")
    );
    let header = r#"{"alg":"EdDSA","typ":"JWT","kid":"k1","kid":"k1"}"#;
    assert_eq!(
        check(forge(header, &good_payload(), &key), &set)
            .unwrap_err()
            .code(),
        "malformed"
    );
    // Two `aud`s: one verifier would read the first, another the last.
    let payload = good_payload().replacen(
        "\"aud\":\"prod_a\"",
        "\"aud\":\"other\",\"aud\":\"prod_a\"",
        1,
    );
    assert!(payload.contains("other"));
    assert_eq!(
        check(forge(&good_header(), &payload, &key), &set).unwrap_err(),
        TokenError::malformed("claims are not a JSON object without duplicate keys")
    );
    let payload = good_payload().replacen('}', r#","x":{"a":1,"a":2}}"#, 1);
    assert_eq!(
        check(forge(&good_header(), &payload, &key), &set)
            .unwrap_err()
            .code(),
        "malformed"
    );
}

// --- Header --------------------------------------------------------------------------------------

#[test]
fn rejects_every_algorithm_but_eddsa() {
    let (token, key, set) = fixture();
    for alg in [
        json!("none"),
        json!("None"),
        json!("HS256"),
        json!("HS512"),
        json!("RS256"),
        json!("PS256"),
        json!("ES256"),
        json!("ES256K"),
        json!("Ed25519"),
        json!("eddsa"),
        json!("EDDSA"),
        json!("EdDSA "),
        json!(""),
        json!(null),
        json!(["EdDSA"]),
        json!({"name": "EdDSA"}),
    ] {
        let header = header_with(|h| {
            h.insert("alg".into(), alg.clone());
        });
        // Signed with the real key: only the alg is wrong.
        let bad = forge(&header, &good_payload(), &key);
        assert_eq!(
            check(&bad, &set).unwrap_err(),
            TokenError::UnsupportedAlgorithm,
            "{alg}"
        );
    }
    // The classic `alg: none` token with an empty signature.
    let none = format!(
        "{}.{}.",
        encoding::base64url_encode(r#"{"alg":"none","typ":"JWT","kid":"k1"}"#),
        segments(&token)[1]
    );
    assert_eq!(
        check(&none, &set).unwrap_err(),
        TokenError::UnsupportedAlgorithm
    );
    let header = header_with(|h| {
        h.remove("alg");
    });
    assert_eq!(
        check(forge(&header, &good_payload(), &key), &set).unwrap_err(),
        TokenError::malformed("header has no alg")
    );
}

#[test]
fn rejects_crit_headers() {
    let (_, key, set) = fixture();
    for crit in [
        json!(["exp"]),
        json!([]),
        json!(["b64"]),
        json!(null),
        json!("x"),
    ] {
        let header = header_with(|h| {
            h.insert("crit".into(), crit.clone());
            h.insert("b64".into(), json!(false));
        });
        let bad = forge(&header, &good_payload(), &key);
        assert_eq!(
            check(&bad, &set).unwrap_err(),
            TokenError::CriticalHeader,
            "{crit}"
        );
    }
}

#[test]
fn rejects_wrong_typ() {
    let (_, key, set) = fixture();
    for typ in [
        json!("JWS"),
        json!("at+jwt"),
        json!("JWT "),
        json!(""),
        json!(1),
        json!(null),
        json!(["JWT"]),
    ] {
        let header = header_with(|h| {
            h.insert("typ".into(), typ.clone());
        });
        let bad = forge(&header, &good_payload(), &key);
        assert_eq!(
            check(&bad, &set).unwrap_err(),
            TokenError::UnsupportedType,
            "{typ}"
        );
    }
}

#[test]
fn rejects_unknown_or_missing_kid() {
    let (_, key, set) = fixture();
    for kid in ["k2", "K1", "k1 ", ""] {
        let header = header_with(|h| {
            h.insert("kid".into(), json!(kid));
        });
        let bad = forge(&header, &good_payload(), &key);
        assert_eq!(
            check(&bad, &set).unwrap_err(),
            TokenError::UnknownKey,
            "{kid:?}"
        );
    }
    let header = header_with(|h| {
        h.remove("kid");
    });
    assert_eq!(
        check(forge(&header, &good_payload(), &key), &set).unwrap_err(),
        TokenError::UnknownKey
    );
    let header = header_with(|h| {
        h.insert("kid".into(), json!(1));
    });
    assert_eq!(
        check(forge(&header, &good_payload(), &key), &set)
            .unwrap_err()
            .code(),
        "malformed"
    );
    // A token from another key set's key, even with a kid this set knows.
    let stranger = signing_key("k1", 9);
    let token = issue(&stranger, &claims()).unwrap();
    assert_eq!(check(&token, &set).unwrap_err(), TokenError::BadSignature);
    assert!(KeySet::new().is_empty());
    assert_eq!(
        check(&token, &KeySet::new()).unwrap_err(),
        TokenError::UnknownKey
    );
}

// --- Signature -----------------------------------------------------------------------------------

#[test]
fn rejects_bad_signatures() {
    let (token, _, set) = fixture();
    let [h, p, s] = segments(&token)[..] else {
        unreachable!()
    };
    let sig = encoding::base64url_decode(s).unwrap();
    let zero = encoding::base64url_encode([0u8; 64]);
    let short = encoding::base64url_encode(&sig[..63]);
    let long = encoding::base64url_encode([&sig[..], &[0]].concat());
    for (bad, code) in [
        (format!("{h}.{p}.{zero}"), "bad_signature"),
        (format!("{h}.{p}.{short}"), "bad_signature"),
        (format!("{h}.{p}.{long}"), "bad_signature"),
        (format!("{h}.{p}."), "bad_signature"),
        (format!("{h}.{p}.!!"), "malformed"),
    ] {
        assert_eq!(check(&bad, &set).unwrap_err().code(), code, "{bad}");
    }
}

/// Adds the group order L to S. S + L is another solution of the verification equation, so a
/// verifier that skips the `S < L` check accepts it: signature malleability.
#[test]
fn rejects_non_canonical_signatures() {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x10,
    ];
    let (token, _, set) = fixture();
    let [h, p, s] = segments(&token)[..] else {
        unreachable!()
    };
    let mut sig: [u8; 64] = encoding::base64url_decode_array(s).unwrap();
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(sig[32 + i]) + u16::from(L[i]) + carry;
        sig[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0, "S + L fits in 256 bits since S < L < 2^253");
    let bad = format!("{h}.{p}.{}", encoding::base64url_encode(sig));
    assert_eq!(check(&bad, &set).unwrap_err(), TokenError::BadSignature);
}

/// The checks this crate relies on inside ed25519-compact: with the identity as public key and
/// the signature (R = identity, S = 0), a verifier without them accepts every message.
#[test]
fn weak_key_checks_are_enabled_in_ed25519_compact() {
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut sig = [0u8; 64];
    sig[0] = 1;
    let pk = ed25519_compact::PublicKey::new(identity);
    assert_eq!(
        pk.verify(b"anything", &ed25519_compact::Signature::new(sig)),
        Err(ed25519_compact::Error::WeakPublicKey)
    );
    assert!(VerifyingKey::from_bytes("weak", identity).is_err());
}

/// A set that defers point checks holds the weak key, yet the forgery above still fails: the
/// check happens at verification. Good keys in the same set verify as in a checked set.
#[test]
fn deferred_point_checks_still_refuse_weak_keys_at_verification() {
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let (token, key, _) = fixture();
    let text = format!(
        "ed25519:weak:{},{}",
        encoding::base64url_encode(identity),
        key.verifying_key().to_text()
    );
    assert!(KeySet::from_text(&text).is_err());
    let deferred = KeySet::from_text_deferring_point_checks(&text).unwrap();
    let mut sig = [0u8; 64];
    sig[0] = 1;
    let header = header_with(|h| {
        h.insert("kid".into(), json!("weak"));
    });
    let forged = format!(
        "{}.{}.{}",
        encoding::base64url_encode(header.as_bytes()),
        encoding::base64url_encode(good_payload().as_bytes()),
        encoding::base64url_encode(sig)
    );
    assert_eq!(
        check(&forged, &deferred).unwrap_err(),
        TokenError::BadSignature
    );
    assert_eq!(
        check(&token, &deferred).unwrap().claims(),
        check(&token, &key_set(&[&key])).unwrap().claims()
    );
}

#[test]
fn signature_is_verified_before_the_claims_are_parsed() {
    let (_, _, set) = fixture();
    let stranger = signing_key("k1", 9);
    // Garbage claims under a bad signature report the signature, not the claims.
    for payload in ["not json", "{\"exp\":\"soon\"}", "[]"] {
        let bad = forge(&good_header(), payload, &stranger);
        assert_eq!(
            check(&bad, &set).unwrap_err(),
            TokenError::BadSignature,
            "{payload}"
        );
    }
    // Even a payload segment that is not base64url.
    let token = forge(&good_header(), &good_payload(), &stranger);
    let [h, _, s] = segments(&token)[..] else {
        unreachable!()
    };
    assert_eq!(
        check(format!("{h}.!!!.{s}"), &set).unwrap_err(),
        TokenError::BadSignature
    );
}

// --- Claims --------------------------------------------------------------------------------------

#[test]
fn rejects_missing_or_malformed_claims() {
    let (_, key, set) = fixture();
    let missing = payload_with(|m| {
        m.remove("exp");
    });
    assert_eq!(
        check(forge(&good_header(), &missing, &key), &set).unwrap_err(),
        TokenError::MissingClaim { claim: "exp" }
    );
    for (claim, value) in [
        ("exp", json!("1800000600")),
        ("exp", json!(1.8e9)),
        ("aud", json!(["prod_a"])),
        ("features", json!([1])),
        ("mid", json!("not-a-hash")),
        ("jti", json!("ses_2")),
        ("max_seats", json!(-3)),
    ] {
        let bad = payload_with(|m| {
            m.insert(claim.into(), value.clone());
        });
        assert_eq!(
            check(forge(&good_header(), &bad, &key), &set).unwrap_err(),
            TokenError::InvalidClaim { claim },
            "{claim} = {value}"
        );
    }
}

#[test]
fn issue_refuses_claims_verify_would_refuse() {
    let key = signing_key("k1", 1);
    let mut c = claims();
    c.mid = Some("ABC".into());
    assert_eq!(
        issue(&key, &c).unwrap_err(),
        TokenError::InvalidClaim { claim: "mid" }
    );
    let mut c = claims();
    c.extra.insert("sub".into(), json!("someone-else"));
    assert_eq!(
        issue(&key, &c).unwrap_err(),
        TokenError::InvalidClaim { claim: "sub" }
    );
    let mut c = claims();
    c.nbf = c.exp + 1;
    assert_eq!(
        issue(&key, &c).unwrap_err(),
        TokenError::InvalidClaim { claim: "nbf" }
    );
}

// --- Time, issuer, audience, machine -------------------------------------------------------------

#[test]
fn rejects_expired_tokens_with_leeway() {
    let (token, _, set) = fixture();
    let exp = claims().exp;
    let leeway = i64::from(DEFAULT_LEEWAY_SECS);
    let at = |now: i64| verify(&token, &set, &policy(), now, None);
    assert!(at(exp - 1).is_ok());
    assert!(at(exp).is_ok(), "within the leeway");
    assert!(at(exp + leeway - 1).is_ok());
    assert_eq!(at(exp + leeway).unwrap_err(), TokenError::Expired);
    assert_eq!(at(i64::MAX).unwrap_err(), TokenError::Expired);
    let strict = policy().with_leeway_secs(0);
    assert_eq!(
        verify(&token, &set, &strict, exp, None).unwrap_err(),
        TokenError::Expired
    );
    assert!(verify(&token, &set, &strict, exp - 1, None).is_ok());
}

#[test]
fn rejects_tokens_not_yet_valid() {
    let key = signing_key("k1", 1);
    let set = key_set(&[&key]);
    let mut c = claims();
    c.nbf = NOW + 300;
    let token = issue(&key, &c).unwrap();
    let leeway = i64::from(DEFAULT_LEEWAY_SECS);
    let at = |now: i64| verify(&token, &set, &policy(), now, None);
    assert_eq!(at(NOW).unwrap_err(), TokenError::NotYetValid);
    assert_eq!(
        at(NOW + 300 - leeway - 1).unwrap_err(),
        TokenError::NotYetValid
    );
    assert!(at(NOW + 300 - leeway).is_ok());
    assert_eq!(at(i64::MIN).unwrap_err(), TokenError::NotYetValid);
}

#[test]
fn rejects_tokens_issued_in_the_future() {
    let key = signing_key("k1", 1);
    let set = key_set(&[&key]);
    let mut c = claims();
    c.iat = NOW + 120;
    c.nbf = NOW - 10;
    let token = issue(&key, &c).unwrap();
    assert_eq!(
        verify(&token, &set, &policy(), NOW, None).unwrap_err(),
        TokenError::IssuedInFuture
    );
    assert!(verify(&token, &set, &policy(), NOW + 60, None).is_ok());
}

#[test]
fn extreme_times_do_not_overflow() {
    let key = signing_key("k1", 1);
    let set = key_set(&[&key]);
    let mut c = claims();
    c.iat = i64::MIN;
    c.nbf = i64::MIN;
    c.exp = i64::MAX;
    let token = issue(&key, &c).unwrap();
    let max_leeway = policy().with_leeway_secs(u32::MAX);
    for now in [i64::MIN, -1, 0, NOW, i64::MAX - 1] {
        assert!(
            verify(&token, &set, &max_leeway, now, None).is_ok(),
            "{now}"
        );
    }
    assert_eq!(
        verify(&token, &set, &max_leeway, i64::MAX, None).unwrap_err(),
        TokenError::Expired
    );
}

#[test]
fn rejects_wrong_issuer_and_audience_only_when_the_policy_sets_them() {
    let (token, _, set) = fixture();
    let verify_with = |p: ValidationOptions| verify(&token, &set, &p, NOW, None);
    assert_eq!(
        verify_with(ValidationOptions::new().with_issuer("https://evil.example")).unwrap_err(),
        TokenError::WrongIssuer
    );
    assert_eq!(
        verify_with(ValidationOptions::new().with_audience("prod_b")).unwrap_err(),
        TokenError::WrongAudience
    );
    assert_eq!(
        verify_with(ValidationOptions::new().with_audience("PROD_A")).unwrap_err(),
        TokenError::WrongAudience
    );
    assert!(verify_with(ValidationOptions::new()).is_ok());
    assert!(verify_with(policy()).is_ok());
    assert_eq!(policy().issuer(), Some("https://lic.example"));
    assert_eq!(policy().audience(), Some("prod_a"));
    assert_eq!(ValidationOptions::new().leeway_secs(), DEFAULT_LEEWAY_SECS);
}

#[test]
fn rejects_machine_mismatch() {
    let (token, key, set) = fixture();
    let with_machine = |t: &str, m: Option<&str>| verify(t, &set, &policy(), NOW, m);
    assert!(with_machine(&token, Some("machine-42")).is_ok());
    assert!(
        with_machine(&token, None).is_ok(),
        "no machine given, none checked"
    );
    assert_eq!(
        with_machine(&token, Some("machine-43")).unwrap_err(),
        TokenError::MachineMismatch
    );
    assert_eq!(
        with_machine(&token, Some("")).unwrap_err(),
        TokenError::MachineMismatch
    );
    // The hash itself is not the machine id.
    let hash = crate::claims::machine_id_hash("machine-42");
    assert_eq!(
        with_machine(&token, Some(&hash)).unwrap_err(),
        TokenError::MachineMismatch
    );
    // A token bound to no machine does not pass a machine check.
    let mut unbound = claims();
    unbound.mid = None;
    let unbound = issue(&key, &unbound).unwrap();
    assert_eq!(
        with_machine(&unbound, Some("machine-42")).unwrap_err(),
        TokenError::MachineMismatch
    );
    assert!(with_machine(&unbound, None).is_ok());
}

#[test]
fn recheck_applies_time_policy_and_machine_again() {
    let (token, _, set) = fixture();
    let verified = check(&token, &set).unwrap();
    assert!(verified.recheck(&policy(), NOW, Some("machine-42")).is_ok());
    assert_eq!(
        verified.recheck(&policy(), NOW + 10_000, None).unwrap_err(),
        TokenError::Expired
    );
    assert_eq!(
        verified.recheck(&policy(), NOW, Some("other")).unwrap_err(),
        TokenError::MachineMismatch
    );
    assert_eq!(
        verified
            .recheck(&ValidationOptions::new().with_audience("x"), NOW, None)
            .unwrap_err(),
        TokenError::WrongAudience
    );
}

// --- Exhaustive mutations ------------------------------------------------------------------------

#[test]
fn rejects_every_single_bit_flip() {
    let (token, _, set) = fixture();
    assert!(check(&token, &set).is_ok());
    let bytes = token.as_bytes();
    let mut refused = 0;
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut flipped = bytes.to_vec();
            flipped[i] ^= 1 << bit;
            let result = check(&flipped, &set);
            assert!(
                result.is_err(),
                "flipping bit {bit} of byte {i} was accepted"
            );
            refused += 1;
        }
    }
    assert_eq!(refused, bytes.len() * 8);
}

#[test]
fn rejects_every_truncation() {
    let (token, _, set) = fixture();
    for len in 0..token.len() {
        assert!(
            check(&token.as_bytes()[..len], &set).is_err(),
            "prefix of {len} bytes accepted"
        );
        // And every suffix: a token cut at the front.
        assert!(
            check(&token.as_bytes()[len + 1..], &set).is_err(),
            "suffix from {} accepted",
            len + 1
        );
    }
}

#[test]
fn token_digest_is_sha256_of_the_bytes() {
    assert_eq!(
        crate::encoding::hex(&token_digest("abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let (token, _, _) = fixture();
    assert_ne!(token_digest(&token), token_digest(format!("{token}x")));
}

#[test]
fn offline_grace_comes_from_the_token_and_only_an_offline_policy_uses_it() {
    let key = signing_key("k1", 1);
    let set = key_set(&[&key]);
    let mut c = claims();
    c.offline_grace = Some(3600);
    let token = issue(&key, &c).unwrap();
    let exp = c.exp;
    let offline = policy().honouring_offline_grace();
    // Within the grace: accepted offline, refused by an online (default) policy.
    assert!(verify(&token, &set, &offline, exp + 3599, None).is_ok());
    assert_eq!(
        verify(&token, &set, &policy(), exp + 3599, None),
        Err(TokenError::Expired)
    );
    // Never longer than the claim, whatever the caller would like.
    assert_eq!(
        verify(&token, &set, &offline, exp + 3600, None),
        Err(TokenError::Expired)
    );
    // A grace shorter than the clock leeway still gets the leeway.
    c.offline_grace = Some(0);
    let short = issue(&key, &c).unwrap();
    assert!(verify(&short, &set, &offline, exp + 59, None).is_ok());
    assert_eq!(
        verify(&short, &set, &offline, exp + 60, None),
        Err(TokenError::Expired)
    );
    // No claim: only the leeway.
    let (plain, _, set) = fixture();
    assert_eq!(
        verify(&plain, &set, &offline, exp + 60, None),
        Err(TokenError::Expired)
    );
    // The claim is typed.
    let bad = forge(
        &good_header(),
        &payload_with(|m| {
            m.insert("offline_grace".into(), json!("1d"));
        }),
        &key,
    );
    assert_eq!(
        check(&bad, &set),
        Err(TokenError::InvalidClaim {
            claim: "offline_grace"
        })
    );
}
