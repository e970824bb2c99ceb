//! Interoperability: a token issued by the acquire component verifies with PyJWT using only
//! `/.well-known/jwks.json`, and a token PyJWT signs with the same key validates here.

use integration_tests::{
    acquire_token, app, create_license, migrated_database, redis_runtime_config, redis_url,
    LicenseSpec, ISSUER, TEST_KID,
};
use serde_json::{json, Value};
use spin_test_host::kv::Backend;
use std::process::Command;

fn python(args: &[&str]) -> Result<String, String> {
    let python = std::env::var("LE_TEST_PYTHON")
        .expect("LE_TEST_PYTHON is not set: run the tests with scripts/test.sh");
    let script = integration_tests::root().join("tests/python/jose_interop.py");
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_verifies_our_tokens_and_we_validate_pyjwt_tokens() {
    let db = migrated_database().await;
    let kv = Backend::redis(&redis_url()).unwrap();
    let lic = create_license(&db, &kv, LicenseSpec::default()).await;
    let host = app(&db, redis_runtime_config(&redis_url()), &[]).await;
    let (addr, server) = host.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();

    let token = acquire_token(&host, &lic, "py").await;

    let jwks_url = format!("http://{addr}/.well-known/jwks.json");
    // The audience names the product with its organization.
    let audience = format!("{}/cad-pro", lic.organization_id);
    let verified = tokio::task::spawn_blocking({
        let (jwks_url, token, audience) = (jwks_url.clone(), token.clone(), audience.clone());
        move || python(&["verify", &jwks_url, &token, &audience, ISSUER])
    })
    .await
    .unwrap()
    .expect("PyJWT verifies the token");
    let claims: Value = serde_json::from_str(&verified).unwrap();
    assert_eq!(claims["sub"], lic.id);
    assert_eq!(claims["features"], json!(["export", "cloud"]));

    // A tampered token is refused by PyJWT too.
    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let refused = tokio::task::spawn_blocking(move || {
        python(&["verify", &jwks_url, &tampered, &audience, ISSUER])
    })
    .await
    .unwrap();
    assert!(refused.is_err(), "PyJWT must refuse a tampered token");

    // PyJWT signs with the same key; our validate accepts it.
    let seed_hex = "07".repeat(32);
    let now = integration_tests::now_ms() / 1000;
    let claims = json!({
        "iss": ISSUER, "sub": lic.id, "aud": "cad-pro", "iat": now, "nbf": now, "exp": now + 600,
        "sid": "ses_0123456789abcdef0123456789abcdef", "jti": "ses_0123456789abcdef0123456789abcdef",
    });
    let foreign = tokio::task::spawn_blocking(move || {
        python(&["sign", &seed_hex, TEST_KID, &claims.to_string()])
    })
    .await
    .unwrap()
    .expect("PyJWT signs");
    let r = host
        .request(
            "POST",
            "/api/v1/licenses/validate",
            &[],
            json!({"token": foreign}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.json()["code"], "VALID", "{}", r.text());
    server.abort();
}
