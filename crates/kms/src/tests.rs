use super::*;

const NAME: &str = "projects/acme-licensing/locations/europe-west1/keyRings/license-edge/cryptoKeys/token-signing/cryptoKeyVersions/1";

/// RFC 8032 section 7.1, test 1: the public key, and its PEM as openssl writes it.
const RFC8032_X: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const RFC8032_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n";

fn key() -> KeyVersion {
    KeyVersion::parse(NAME).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A well-formed answer for `signature`, as KMS writes it.
fn answer(signature: &[u8]) -> Value {
    json!({
        "signature": base64_encode(signature),
        "signatureCrc32c": crc32c(signature).to_string(),
        "verifiedDataCrc32c": true,
        "name": NAME,
        "protectionLevel": "HSM",
    })
}

fn sign(answer: &Value) -> Result<[u8; 64], KmsError> {
    signature_from_answer(200, answer.to_string().as_bytes(), &key())
}

#[test]
fn key_version_names_are_checked_and_give_a_stable_kid_and_url() {
    let k = key();
    assert_eq!(k.kid(), "kms-v1-7d5c63b1a36cfd9a");
    assert_eq!(KeyVersion::parse(NAME).unwrap().kid(), k.kid());
    let other = KeyVersion::parse(&NAME.replace("Versions/1", "Versions/2")).unwrap();
    assert_ne!(other.kid(), k.kid());
    assert!(license_edge_token::keys::validate_kid(&k.kid()).is_ok());
    assert_eq!(
        k.sign_url("https://cloudkms.googleapis.com/").unwrap(),
        format!("https://cloudkms.googleapis.com/v1/{NAME}:asymmetricSign")
    );
    assert_eq!(
        k.sign_url("http://127.0.0.1:8080").unwrap(),
        format!("http://127.0.0.1:8080/v1/{NAME}:asymmetricSign")
    );
    for bad in [
        "",
        "projects/p/locations/l/keyRings/r/cryptoKeys/k",
        "projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/",
        "projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1/x",
        "projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/one",
        "projects/p/locations/L/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
        "projects/p/locations/l/keyRings/r?x/cryptoKeys/k/cryptoKeyVersions/1",
        "projects/p/locations/l/keyRings/r/cryptoKeys/k%2f/cryptoKeyVersions/1",
        "projects/p q/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
        "project/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
        "/projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
    ] {
        assert!(KeyVersion::parse(bad).is_err(), "{bad}");
    }
    assert!(KeyVersion::parse(
        "projects/example.com:acme/locations/global/keyRings/r_1/cryptoKeys/k-2/cryptoKeyVersions/12"
    )
    .is_ok());
}

#[test]
fn endpoints_are_scheme_and_authority_only() {
    assert_eq!(
        endpoint("https://cloudkms.googleapis.com/").unwrap(),
        "https://cloudkms.googleapis.com"
    );
    assert_eq!(
        metadata_token_url("http://metadata.google.internal").unwrap(),
        "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token"
    );
    for bad in [
        "cloudkms.googleapis.com",
        "ftp://x",
        "https://",
        "https://x/v1",
        "https://user@x",
        "https://x?y",
        "https://x y",
    ] {
        assert!(endpoint(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_request_carries_the_data_and_its_crc32c() {
    let body: Value =
        serde_json::from_str(&sign_request_body(b"eyJhbGciOiJFZERTQSJ9.e30")).unwrap();
    assert_eq!(
        body,
        json!({"data": "ZXlKaGJHY2lPaUpGWkVSVFFTSjkuZTMw", "dataCrc32c": crc32c(b"eyJhbGciOiJFZERTQSJ9.e30").to_string()})
    );
}

#[test]
fn a_good_answer_gives_its_signature() {
    let sig: Vec<u8> = (0..64).collect();
    assert_eq!(sign(&answer(&sig)).unwrap().to_vec(), sig);
    // Int64Value as a number, and base64 without padding, are read too.
    let mut a = answer(&sig);
    a["signatureCrc32c"] = json!(crc32c(&sig));
    a["signature"] = json!(base64_encode(&sig).trim_end_matches('=').to_owned());
    assert!(sign(&a).is_ok());
}

#[test]
fn rejects_every_answer_that_is_not_a_checked_64_byte_signature() {
    let sig = [7u8; 64];
    let mut cases: Vec<(Value, &str)> = Vec::new();
    let mut a = answer(&sig);
    a["name"] = json!(NAME.replace("Versions/1", "Versions/2"));
    cases.push((a, "another key version"));
    let mut a = answer(&sig);
    a.as_object_mut().unwrap().remove("name");
    cases.push((a, "no name"));
    let mut a = answer(&sig);
    a["verifiedDataCrc32c"] = json!(false);
    cases.push((a, "data not verified"));
    let mut a = answer(&sig);
    a.as_object_mut().unwrap().remove("verifiedDataCrc32c");
    cases.push((a, "data verification absent"));
    let mut a = answer(&sig);
    a["signatureCrc32c"] = json!((crc32c(&sig) ^ 1).to_string());
    cases.push((a, "signature damaged"));
    let mut a = answer(&sig);
    a.as_object_mut().unwrap().remove("signatureCrc32c");
    cases.push((a, "no signature checksum"));
    let mut a = answer(&sig);
    a["signatureCrc32c"] = json!("-1");
    cases.push((a, "negative checksum"));
    let mut a = answer(&sig);
    a["signature"] = json!("!!!");
    cases.push((a, "not base64"));
    let mut a = answer(&sig);
    a.as_object_mut().unwrap().remove("signature");
    cases.push((a, "no signature"));
    // Every truncation, and one byte too many, with a checksum that matches.
    for len in (0..64).chain([65, 128]) {
        let s: Vec<u8> = (0..len).map(|i| i as u8).collect();
        cases.push((answer(&s), "wrong length"));
    }
    for (a, why) in cases {
        assert!(
            matches!(sign(&a), Err(KmsError::BadAnswer { .. })),
            "{why}: {a}"
        );
    }
    for body in [&b"not json"[..], b"[]", b"", b"{\"signature\":1}"] {
        assert!(signature_from_answer(200, body, &key()).is_err());
    }
}

#[test]
fn error_statuses_say_what_google_said_and_nothing_else() {
    let sig = answer(&[1; 64]).to_string();
    assert_eq!(
        signature_from_answer(401, sig.as_bytes(), &key()),
        Err(KmsError::Unauthorized)
    );
    let denied = br#"{"error":{"code":403,"message":"Permission 'cloudkms.cryptoKeyVersions.useToSign' denied","status":"PERMISSION_DENIED"}}"#;
    assert_eq!(
        signature_from_answer(403, denied, &key()),
        Err(KmsError::Refused {
            status: 403,
            reason: Some("PERMISSION_DENIED".into())
        })
    );
    let odd = br#"{"error":{"status":"secret token abc"}}"#;
    assert_eq!(
        signature_from_answer(500, odd, &key()),
        Err(KmsError::Refused {
            status: 500,
            reason: None
        })
    );
    assert_eq!(
        KmsError::Refused {
            status: 429,
            reason: Some("RESOURCE_EXHAUSTED".into())
        }
        .to_string(),
        "answered 429 RESOURCE_EXHAUSTED"
    );
}

#[test]
fn metadata_answers_give_a_bearer_token() {
    let t = access_token_from_answer(
        200,
        br#"{"access_token":"ya29.c.abc-DEF_123","expires_in":3599,"token_type":"Bearer"}"#,
    )
    .unwrap();
    assert_eq!(t.token, "ya29.c.abc-DEF_123");
    assert_eq!(t.expires_in_s, 3599);
    assert!(!format!("{t:?}").contains("ya29"));
    for body in [
        &br#"{"access_token":"a","expires_in":3599,"token_type":"MAC"}"#[..],
        br#"{"access_token":"","expires_in":3599,"token_type":"Bearer"}"#,
        br#"{"access_token":"a b","expires_in":3599,"token_type":"Bearer"}"#,
        br#"{"access_token":"a\r\nx: y","expires_in":3599,"token_type":"Bearer"}"#,
        br#"{"access_token":"a","expires_in":0,"token_type":"Bearer"}"#,
        br#"{"access_token":"a","expires_in":"3599","token_type":"Bearer"}"#,
        br#"{"access_token":"a","token_type":"Bearer"}"#,
        b"<html>",
    ] {
        assert!(access_token_from_answer(200, body).is_err());
    }
    assert!(matches!(
        access_token_from_answer(404, b"{}"),
        Err(KmsError::Refused { status: 404, .. })
    ));
}

#[test]
fn cached_tokens_are_used_until_the_margin_before_they_expire() {
    let t = AccessToken {
        token: "ya29.x".into(),
        expires_in_s: 3599,
    };
    let now = 1_800_000_000_000;
    let entry = CachedToken::new(&t, now).unwrap();
    assert_eq!(entry.expires_at_ms, now + 3_599_000);
    assert!(entry.usable(now));
    assert!(entry.usable(entry.expires_at_ms - REFRESH_MARGIN_MS - 1));
    assert!(!entry.usable(entry.expires_at_ms - REFRESH_MARGIN_MS));
    assert_eq!(CachedToken::decode(&entry.encode()), Some(entry.clone()));
    assert!(!format!("{entry:?}").contains("ya29"));
    // A token about to expire is used once, not cached.
    let short = AccessToken {
        token: "ya29.y".into(),
        expires_in_s: 100,
    };
    assert_eq!(CachedToken::new(&short, now), None);
    for stored in [
        &b""[..],
        b"{}",
        br#"{"token":"a","expires_at":"1"}"#,
        br#"{"token":"a b","expires_at":1}"#,
        br#"{"token":"a","expires_at":1,"x":1}"#,
    ] {
        assert_eq!(CachedToken::decode(stored), None);
    }
}

#[test]
fn a_pem_public_key_becomes_the_jwks_entry() {
    let x = public_key_from_pem(RFC8032_PEM).unwrap();
    assert_eq!(hex(&x), RFC8032_X);
    // CRLF line ends and a body split over lines read the same.
    let crlf = "-----BEGIN PUBLIC KEY-----\r\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7T\r\nyWQHOg7hcvPapiMlrwIaaPcHURo=\r\n-----END PUBLIC KEY-----\r\n";
    assert_eq!(public_key_from_pem(crlf).unwrap(), x);
    let jwk = jwk_for_key_version(&key(), RFC8032_PEM).unwrap();
    assert_eq!(
        jwk,
        json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
               "kid": "kms-v1-7d5c63b1a36cfd9a", "alg": "EdDSA", "use": "sig"})
    );
    // The getPublicKey answer as it comes from the REST API.
    let answer = json!({"pem": RFC8032_PEM, "algorithm": "EC_SIGN_ED25519",
                        "pemCrc32c": crc32c(RFC8032_PEM.as_bytes()).to_string(), "name": NAME,
                        "protectionLevel": "HSM"});
    assert_eq!(
        jwk_for_key_version(&key(), &answer.to_string()).unwrap(),
        jwk
    );
    let mut wrong = answer.clone();
    wrong["pemCrc32c"] = json!("1");
    assert!(jwk_for_key_version(&key(), &wrong.to_string()).is_err());
    let mut wrong = answer.clone();
    wrong["algorithm"] = json!("EC_SIGN_P256_SHA256");
    assert!(jwk_for_key_version(&key(), &wrong.to_string()).is_err());
    let mut wrong = answer;
    wrong["name"] = json!(NAME.replace("Versions/1", "Versions/3"));
    assert!(jwk_for_key_version(&key(), &wrong.to_string()).is_err());
}

#[test]
fn rejects_pems_that_are_not_ed25519_public_keys() {
    let p256 = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEuD2W0aqwOSWq54QCamw7u6b9GHWW\niB5QjbEoJ37y6+afrqlwa/58YE1eZDbQT0EyB1Fg9fjyt8O06hA+FgACrA==\n-----END PUBLIC KEY-----\n";
    assert!(public_key_from_pem(p256).is_err());
    assert!(public_key_from_pem("").is_err());
    assert!(public_key_from_pem(&RFC8032_PEM.replace("PUBLIC", "PRIVATE")).is_err());
    assert!(public_key_from_pem(&RFC8032_PEM.replace("URo=", "UR==")).is_err());
    // A small-order point is refused as a key.
    let mut der = ED25519_SPKI_PREFIX.to_vec();
    der.extend_from_slice(&[0; 32]);
    let weak = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64_encode(der)
    );
    assert!(public_key_from_pem(&weak).is_ok());
    assert!(verifying_key(&key(), &weak).is_err());
}

/// End to end without the network: a signature a KMS key makes over a token's signing input
/// comes back through the answer checks and verifies with the key from the PEM.
#[test]
fn a_kms_signature_over_the_signing_input_makes_a_token_that_verifies() {
    let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([3; 32]));
    let mut der = ED25519_SPKI_PREFIX.to_vec();
    der.extend_from_slice(&pair.pk[..]);
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64_encode(der)
    );
    let verifying = verifying_key(&key(), &pem).unwrap();
    let claims = license_edge_token::Claims::new("iss", "lic_1", "aud", "ses_1", 1_000, 600);
    let input = license_edge_token::signing_input(verifying.kid(), &claims).unwrap();
    let signature = *pair.sk.sign(input.as_bytes(), None);
    let got = sign(&answer(&signature)).unwrap();
    let token = license_edge_token::assemble(&input, &got).unwrap();
    assert!(license_edge_token::jwt::verify_jws(&token, &verifying).is_ok());
}
