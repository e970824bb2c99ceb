use super::*;

fn key(kid: &str, byte: u8) -> SigningKey {
    SigningKey::from_seed(kid, [byte; 32]).unwrap()
}

#[test]
fn rfc8037_public_key_is_derived_from_the_seed() {
    // RFC 8037 appendix A.1/A.2: d -> x.
    let seed =
        encoding::base64url_decode_array::<32>("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
            .unwrap();
    let sk = SigningKey::from_seed("rfc", seed).unwrap();
    assert_eq!(
        encoding::base64url_encode(sk.verifying_key().to_bytes()),
        "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    );
}

#[test]
fn debug_never_prints_the_secret() {
    let sk = key("k1", 7);
    let secret = sk.to_secret_text();
    let seed_b64 = secret.rsplit(':').next().unwrap();
    let debug = format!("{sk:?} {:#?}", sk);
    assert!(!debug.contains(seed_b64), "{debug}");
    assert!(debug.contains("redacted") && debug.contains("k1"));
    let bytes_debug = format!("{:?}", [7u8; 32]);
    assert!(!debug.contains(&bytes_debug[1..20]));
}

#[test]
fn signing_key_text_round_trips() {
    let sk = key("key-2026.01_a", 9);
    let text = sk.to_secret_text();
    assert!(text.starts_with("ed25519-secret:key-2026.01_a:"));
    let back = SigningKey::from_text(&format!("  {text}\n")).unwrap();
    assert_eq!(back.to_secret_text(), text);
    assert_eq!(back.verifying_key(), sk.verifying_key());
    assert_eq!(text.parse::<SigningKey>().unwrap().kid(), "key-2026.01_a");
}

#[test]
fn rejects_bad_signing_key_texts() {
    let good = encoding::base64url_encode([9u8; 32]);
    let cases = [
        String::new(),
        "ed25519-secret:".into(),
        format!("ed25519-secret:{good}"),
        format!("ed25519-secret::{good}"),
        format!("ed25519-secret:k:{good}="),
        format!("ed25519-secret:k:{}", encoding::base64url_encode([9u8; 31])),
        format!("ed25519-secret:k:{}", encoding::base64url_encode([9u8; 33])),
        format!("ed25519-secret:k:{}", encoding::base64url_encode([0u8; 32])),
        format!("ed25519-secret:k:x:{good}"),
        format!("ed25519-secret:k k:{good}"),
        format!("ed25519-secret:{}:{good}", "k".repeat(MAX_KID_LEN + 1)),
        format!("ed25519:k:{good}"),
        format!("ED25519-SECRET:k:{good}"),
        "{\"keys\":[]}".into(),
    ];
    for text in cases {
        let err = SigningKey::from_text(&text).unwrap_err();
        assert_eq!(err.code(), "bad_key", "{text}");
    }
    let err = SigningKey::from_text(&format!("ed25519:k:{good}")).unwrap_err();
    assert!(err.to_string().contains("public key"), "{err}");
}

#[test]
fn kid_rules() {
    assert!(validate_kid("a").is_ok());
    assert!(validate_kid(&"a".repeat(MAX_KID_LEN)).is_ok());
    for bad in ["", "a:b", "a b", "a/b", "é", "a\"b", "a,b"] {
        assert!(validate_kid(bad).is_err(), "{bad}");
    }
    assert!(validate_kid(&"a".repeat(MAX_KID_LEN + 1)).is_err());
}

#[test]
fn jwks_round_trips_with_several_keys() {
    let set: KeySet = [key("old", 1), key("new", 2)]
        .iter()
        .map(SigningKey::verifying_key)
        .collect::<Result<_, _>>()
        .unwrap();
    let json = set.to_jwks_json();
    let back = KeySet::from_jwks_json(&json).unwrap();
    assert_eq!(back, set);
    assert_eq!(back.len(), 2);
    let jwk = &set.to_jwks()["keys"][0];
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    assert_eq!(jwk["alg"], "EdDSA");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["kid"], "new");
    assert_eq!(KeySet::from_text(&json).unwrap(), set);
    assert_eq!(KeySet::from_text(&set.to_text()).unwrap(), set);
}

#[test]
fn public_text_accepts_commas_and_whitespace() {
    let a = key("a", 1).verifying_key();
    let b = key("b", 2).verifying_key();
    let text = format!(" {},\n {} ,", a.to_text(), b.to_text());
    let set = KeySet::from_text(&text).unwrap();
    assert_eq!(set.get("a"), Some(&a));
    assert_eq!(set.get("b"), Some(&b));
    assert!(set.get("c").is_none());
}

#[test]
fn jwks_skips_other_key_types_and_curves() {
    let ed = key("ed", 1).verifying_key().to_jwk();
    let jwks = json!({"keys": [
        {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "rsa"},
        {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "ec"},
        {"kty": "OKP", "crv": "X25519", "x": "AA", "kid": "x"},
        ed,
    ]});
    let set = KeySet::from_jwks(&jwks).unwrap();
    assert_eq!(set.len(), 1);
    assert!(set.get("ed").is_some());
}

fn entry_with(change: impl FnOnce(&mut Map<String, Value>)) -> Value {
    let mut jwk = key("k", 3).verifying_key().to_jwk();
    change(jwk.as_object_mut().unwrap());
    json!({ "keys": [jwk] })
}

#[test]
fn rejects_malformed_jwks() {
    let x = encoding::base64url_encode(key("k", 3).verifying_key().to_bytes());
    let mut small_order = [0u8; 32];
    small_order[0] = 1; // the identity point (0, 1)
    let non_canonical = {
        // y = p (2^255 - 19) is a non-canonical encoding of y = 0.
        let mut b = [0xffu8; 32];
        b[0] = 0xed;
        b[31] = 0x7f;
        b
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!([]), "JSON object"),
        (json!({}), "\"keys\" array"),
        (json!({"keys": {}}), "\"keys\" array"),
        (json!({"keys": []}), "no Ed25519 key"),
        (json!({"keys": [1]}), "JSON object"),
        (
            json!({"keys": [{"crv": "Ed25519", "x": x, "kid": "k"}]}),
            "kty",
        ),
        (json!({"keys": [{"kty": 1}]}), "string"),
        (
            entry_with(|e| {
                e.remove("crv");
            }),
            "crv",
        ),
        (
            entry_with(|e| {
                e.remove("kid");
            }),
            "kid",
        ),
        (
            entry_with(|e| {
                e.remove("x");
            }),
            "\"x\"",
        ),
        (
            entry_with(|e| {
                e.insert("x".into(), json!(format!("{x}=")));
            }),
            "base64url",
        ),
        (
            entry_with(|e| {
                e.insert("x".into(), json!(encoding::base64url_encode([1u8; 31])));
            }),
            "32 bytes",
        ),
        (
            entry_with(|e| {
                e.insert("x".into(), json!(encoding::base64url_encode(small_order)));
            }),
            "weak",
        ),
        (
            entry_with(|e| {
                e.insert("x".into(), json!(encoding::base64url_encode(non_canonical)));
            }),
            "valid",
        ),
        (
            entry_with(|e| {
                e.insert("alg".into(), json!("RS256"));
            }),
            "EdDSA",
        ),
        (
            entry_with(|e| {
                e.insert("use".into(), json!("enc"));
            }),
            "sig",
        ),
        (
            entry_with(|e| {
                e.insert("d".into(), json!(x));
            }),
            "private",
        ),
        (
            entry_with(|e| {
                e.insert("kid".into(), json!("a:b"));
            }),
            "kid",
        ),
        (
            entry_with(|e| {
                e.insert("kid".into(), json!(7));
            }),
            "string",
        ),
    ];
    for (jwks, expect) in cases {
        let err = KeySet::from_jwks(&jwks).unwrap_err();
        assert_eq!(err.code(), "bad_key");
        assert!(
            err.to_string().contains(expect),
            "{jwks}: {err} lacks {expect}"
        );
    }
    let dup = json!({"keys": [key("k", 1).verifying_key().to_jwk(), key("k", 2).verifying_key().to_jwk()]});
    assert!(KeySet::from_jwks(&dup)
        .unwrap_err()
        .to_string()
        .contains("two keys"));
    let dup_json = format!(r#"{{"keys":[],"keys":{}}}"#, dup["keys"]);
    assert!(KeySet::from_jwks_json(&dup_json).is_err());
    assert!(KeySet::from_jwks_json("not json").is_err());
}

#[test]
fn rejects_bad_public_texts() {
    let good = key("k", 3).verifying_key();
    let x = encoding::base64url_encode(good.to_bytes());
    for text in [
        String::new(),
        " , ".into(),
        format!("k:{x}"),
        "ed25519:k".into(),
        format!("ed25519:k:{x}="),
        format!("ed25519::{x}"),
        format!("ed25519:k:{}", encoding::base64url_encode([0u8; 32])),
        format!("{},{}", good.to_text(), good.to_text()),
        key("k", 3).to_secret_text(),
    ] {
        assert_eq!(
            KeySet::from_text(&text).unwrap_err().code(),
            "bad_key",
            "{text}"
        );
    }
    let err = KeySet::from_text(&key("k", 3).to_secret_text()).unwrap_err();
    assert!(err.to_string().contains("signing key"), "{err}");
}

#[test]
fn deferring_point_checks_skips_only_the_point_check() {
    let good = key("k", 3).verifying_key();
    let x = encoding::base64url_encode(good.to_bytes());
    let bad_point = format!("ed25519:z:{}", encoding::base64url_encode([0u8; 32]));
    let with_bad_point = format!("{},{bad_point}", good.to_text());
    assert!(KeySet::from_text(&with_bad_point).is_err());
    let deferred = KeySet::from_text_deferring_point_checks(&with_bad_point).unwrap();
    assert_eq!(deferred.len(), 2);
    let jwks = format!(
        r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"z","x":"{}"}}]}}"#,
        encoding::base64url_encode([0u8; 32])
    );
    assert!(KeySet::from_text(&jwks).is_err());
    assert!(KeySet::from_text_deferring_point_checks(&jwks).is_ok());
    for text in [
        String::new(),
        format!("k:{x}"),
        format!("ed25519:k:{x}="),
        format!("ed25519::{x}"),
        format!("{},{}", good.to_text(), good.to_text()),
        key("k", 3).to_secret_text(),
    ] {
        assert_eq!(
            KeySet::from_text_deferring_point_checks(&text)
                .unwrap_err()
                .code(),
            "bad_key",
            "{text}"
        );
    }
    assert_eq!(
        KeySet::from_text_deferring_point_checks(&good.to_text()).unwrap(),
        KeySet::from_text(&good.to_text()).unwrap()
    );
}

#[test]
fn weak_keys_are_refused_at_construction() {
    // All eight small-order points of Curve25519 in their canonical encodings.
    let small_order_hex = [
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    ];
    for hex in small_order_hex {
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let x: [u8; 32] = bytes.try_into().unwrap();
        assert!(VerifyingKey::from_bytes("k", x).is_err(), "{hex} accepted");
    }
}
