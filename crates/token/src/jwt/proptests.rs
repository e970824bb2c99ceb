//! Property tests: issued tokens verify with their own key set and no other; nothing panics the
//! verifier. `crate::fuzzing::verify_token`, the fuzz target's entry point, is driven here too,
//! so the fuzzed code path is exercised on stable Rust.

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::*;
use crate::claims::REGISTERED_CLAIMS;
use crate::fuzzing;

const NOW: i64 = 1_800_000_000;

fn seed() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>().prop_filter("the all-zero seed is refused", |s| {
        s.iter().any(|&b| b != 0)
    })
}

fn kid() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{1,64}"
}

fn extra_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,20}".prop_map(Value::String),
        vec(".{0,8}", 0..4).prop_map(|v| json!(v)),
        Just(Value::Null),
    ]
}

prop_compose! {
    fn claims()(
        iss in ".{0,40}",
        sub in ".{0,40}",
        aud in ".{0,40}",
        sid in ".{0,40}",
        iat_offset in -1000i64..=0,
        ttl in 1i64..100_000,
        org in proptest::option::of(".{0,20}"),
        plan in proptest::option::of(".{0,20}"),
        features in vec(".{0,16}", 0..8),
        machine in proptest::option::of(".{0,40}"),
        max_seats in proptest::option::of(any::<u32>()),
        extra in btree_map("[a-z_]{1,12}", extra_value(), 0..5),
    ) -> Claims {
        let mut c = Claims::new(iss, sub, aud, sid, NOW + iat_offset, ttl - iat_offset);
        c.org = org;
        c.plan = plan;
        c.features = features;
        c.mid = machine.map(|m| crate::claims::machine_id_hash(&m));
        c.max_seats = max_seats;
        c.extra = extra
            .into_iter()
            .filter(|(k, _)| !REGISTERED_CLAIMS.contains(&k.as_str()))
            .collect::<Map<_, _>>();
        c
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn anything_issued_verifies_with_its_key_set_and_no_other(
        seed in seed(),
        other_seed in seed(),
        kid in kid(),
        other_kid in kid(),
        claims in claims(),
    ) {
        prop_assume!(seed != other_seed && kid != other_kid);
        let key = SigningKey::from_seed(&kid, seed).unwrap();
        let token = issue(&key, &claims).unwrap();
        let policy = ValidationOptions::new().with_issuer(claims.iss.clone()).with_audience(claims.aud.clone());

        let mut own = KeySet::new();
        own.insert(key.verifying_key()).unwrap();
        let verified = verify(&token, &own, &policy, NOW, None).unwrap();
        prop_assert_eq!(verified.claims(), &claims);

        // Same kid, another key: the signature fails.
        let impostor = SigningKey::from_seed(&kid, other_seed).unwrap();
        let mut wrong = KeySet::new();
        wrong.insert(impostor.verifying_key()).unwrap();
        prop_assert_eq!(verify(&token, &wrong, &policy, NOW, None).unwrap_err(), TokenError::BadSignature);

        // The right key under another kid: the kid is unknown.
        let renamed = SigningKey::from_seed(&other_kid, seed).unwrap();
        let mut elsewhere = KeySet::new();
        elsewhere.insert(renamed.verifying_key()).unwrap();
        prop_assert_eq!(verify(&token, &elsewhere, &policy, NOW, None).unwrap_err(), TokenError::UnknownKey);

        // Rotation: a set holding both keys verifies.
        let mut both = KeySet::new();
        both.insert(key.verifying_key()).unwrap();
        both.insert(SigningKey::from_seed(&other_kid, other_seed).unwrap().verifying_key()).unwrap();
        prop_assert!(verify(&token, &both, &policy, NOW, None).is_ok());

        // Through the text forms the components load keys from.
        let via_text = KeySet::from_text(&own.to_text()).unwrap();
        prop_assert!(verify(&token, &via_text, &policy, NOW, None).is_ok());
        let via_jwks = KeySet::from_text(&own.to_jwks_json()).unwrap();
        prop_assert!(verify(&token, &via_jwks, &policy, NOW, None).is_ok());
        let reloaded = SigningKey::from_text(&key.to_secret_text()).unwrap();
        prop_assert_eq!(issue(&reloaded, &claims).unwrap(), token);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_verifier(data in vec(any::<u8>(), 0..5000)) {
        prop_assert!(fuzzing::verify_token(&data).is_err());
        let _ = fuzzing::parse_key_set(&data);
    }

    #[test]
    fn arbitrary_strings_never_panic_the_verifier(text in ".{0,300}") {
        prop_assert!(fuzzing::verify_token(text.as_bytes()).is_err());
        let _ = fuzzing::parse_key_set(text.as_bytes());
    }

    #[test]
    fn token_shaped_strings_never_panic_the_verifier(
        text in "[A-Za-z0-9_=+/.-]{0,40}\\.[A-Za-z0-9_=-]{0,200}\\.[A-Za-z0-9_=-]{0,100}",
    ) {
        prop_assert!(fuzzing::verify_token(text.as_bytes()).is_err());
    }

    #[test]
    fn arbitrary_signed_headers_and_claims_never_panic(header in "[^\n]{0,80}", payload in ".{0,200}") {
        // Validly signed, so parsing goes all the way to the claims.
        let _ = fuzzing::verify_signed(format!("{header}\n{payload}").as_bytes());
    }

    #[test]
    fn arbitrary_bytes_signed_never_panic(data in vec(any::<u8>(), 0..600)) {
        let _ = fuzzing::verify_signed(&data);
    }

    #[test]
    fn json_shaped_claims_signed_never_panic(
        claims in claims(),
        key in "[a-z_]{1,10}",
        value in extra_value(),
    ) {
        // Registered claims replaced by values of any type.
        let mut map = match claims.to_json() { Value::Object(map) => map, _ => unreachable!() };
        map.insert(key, value);
        let data = format!("{{\"alg\":\"EdDSA\",\"kid\":\"fuzz\"}}\n{}", Value::Object(map));
        let _ = fuzzing::verify_signed(data.as_bytes());
    }

    #[test]
    fn edited_tokens_are_refused(
        claims in claims(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let token = issue(&fuzzing::signing_key(), &claims).unwrap();
        let mut bytes = token.into_bytes();
        let mut changed = false;
        for (index, byte) in edits {
            let i = index.index(bytes.len());
            changed |= bytes[i] != byte;
            bytes[i] = byte;
        }
        prop_assume!(changed);
        let mut keys = KeySet::new();
        keys.insert(fuzzing::signing_key().verifying_key()).unwrap();
        prop_assert!(verify(&bytes, &keys, &ValidationOptions::new(), NOW, None).is_err());
    }
}

#[test]
fn fuzz_corpus_seeds_reach_the_end_of_verification() {
    // If the fuzz key, policy or time change, these seeds must be regenerated, or the fuzzers
    // start from tokens that fail early.
    let token = include_bytes!("../../fuzz/corpus/verify/valid_token");
    assert!(fuzzing::verify_token(token).is_ok());
    let signed = include_bytes!("../../fuzz/corpus/signed/valid");
    assert!(fuzzing::verify_signed(signed).is_ok());
    let rfc = include_bytes!("../../fuzz/corpus/verify/rfc8037");
    assert_eq!(
        fuzzing::verify_token(rfc).unwrap_err(),
        TokenError::UnknownKey
    );
    for seed in [
        &include_bytes!("../../fuzz/corpus/key_set/jwks.json")[..],
        include_bytes!("../../fuzz/corpus/key_set/text"),
    ] {
        assert!(fuzzing::parse_key_set(seed).unwrap().get("fuzz").is_some());
    }
}

#[test]
fn fuzz_entry_point_accepts_a_valid_token() {
    // Guards the fuzz configuration: the corpus seeds must reach the end of verification.
    let claims = Claims::new("fuzz-iss", "lic", "fuzz-aud", "ses", fuzzing::NOW, 600)
        .with_machine_id(fuzzing::MACHINE_ID);
    let token = issue(&fuzzing::signing_key(), &claims).unwrap();
    assert!(fuzzing::verify_token(token.as_bytes()).is_ok());
    let set = KeySet::from_text(&fuzzing::signing_key().verifying_key().to_text()).unwrap();
    assert_eq!(
        fuzzing::parse_key_set(set.to_jwks_json().as_bytes()).unwrap(),
        set
    );
}
