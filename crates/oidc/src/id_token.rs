//! An OpenID Connect ID token (a JWS, RS256) checked for a signed-in acquire.
//!
//! The order of the checks is the order an attacker would try them: the shape, then the
//! algorithm (RS256 and nothing else, whatever the header asks for), then the key (`kid`), then
//! the signature, and only then the claims (issuer, audience, times, subject). Nothing from the
//! payload is trusted before the signature holds.

use crate::jwks::IssuerKeys;
use license_edge_token::encoding::base64url_decode;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The clock leeway on `exp`, `iat` and `auth_time`, seconds.
pub const ID_TOKEN_LEEWAY_S: i64 = 30;
/// The longest ID token accepted, bytes (Firebase's are about 1 KB; 8 KB leaves room for
/// custom claims).
pub const MAX_ID_TOKEN_LEN: usize = 8 * 1024;
/// The longest `sub` accepted (Firebase's UIDs are at most 128 characters).
pub const MAX_SUBJECT_LEN: usize = 255;
/// The longest `email` kept; a longer one is dropped, not refused.
pub const MAX_EMAIL_LEN: usize = 320;

/// What the deployment expects of its ID tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerConfig {
    /// The exact `iss` (Firebase: `https://securetoken.google.com/<project>`).
    pub issuer: String,
    /// The `aud` that must be present (Firebase: the project id).
    pub audience: String,
}

/// The user an ID token vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedInUser {
    /// The issuer's stable user id (`sub`).
    pub subject: String,
    /// The user's e-mail address, if the token carries one.
    pub email: Option<String>,
}

/// Why an ID token was refused. [`IdTokenError::UnknownKey`] is the one a caller may cure by
/// fetching the issuer's key set again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdTokenError {
    /// Not a compact JWS with JSON header and payload.
    Malformed,
    /// The header names an algorithm other than RS256 (`none`, `HS256`, `EdDSA`...).
    Algorithm(String),
    /// No `kid`, or one the key set does not hold.
    UnknownKey,
    /// The signature does not verify with the named key.
    BadSignature,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `aud` does not hold the configured audience.
    WrongAudience,
    /// `exp` has passed (beyond the leeway), or is missing.
    Expired,
    /// `iat` or `auth_time` lies in the future (beyond the leeway).
    IssuedInFuture,
    /// No usable `sub`.
    NoSubject,
}

impl std::fmt::Display for IdTokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdTokenError::Malformed => f.write_str("the ID token is not a JWS"),
            IdTokenError::Algorithm(alg) => {
                write!(f, "the ID token's algorithm {alg:?} is not RS256")
            }
            IdTokenError::UnknownKey => f.write_str("the ID token's key is not the issuer's"),
            IdTokenError::BadSignature => f.write_str("the ID token's signature does not verify"),
            IdTokenError::WrongIssuer => f.write_str("the ID token is from another issuer"),
            IdTokenError::WrongAudience => f.write_str("the ID token is for another audience"),
            IdTokenError::Expired => f.write_str("the ID token has expired"),
            IdTokenError::IssuedInFuture => f.write_str("the ID token is issued in the future"),
            IdTokenError::NoSubject => f.write_str("the ID token names no user"),
        }
    }
}

impl std::error::Error for IdTokenError {}

/// The `kid` an ID token's header names, if it has the shape of one (for logs and for the
/// refetch decision; nothing is verified).
pub fn header_kid(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let header: Value = serde_json::from_slice(&base64url_decode(header)?).ok()?;
    header.get("kid")?.as_str().map(str::to_owned)
}

/// Checks `token` against `keys` and `config` at `now_s` (Unix seconds).
pub fn verify_id_token(
    token: &str,
    keys: &IssuerKeys,
    config: &IssuerConfig,
    now_s: i64,
) -> Result<SignedInUser, IdTokenError> {
    if token.len() > MAX_ID_TOKEN_LEN {
        return Err(IdTokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IdTokenError::Malformed);
    };
    let header = json_object(header_b64)?;
    match header.get("alg").and_then(Value::as_str) {
        Some("RS256") => {}
        Some(other) => return Err(IdTokenError::Algorithm(other.chars().take(32).collect())),
        None => return Err(IdTokenError::Malformed),
    }
    if header.contains_key("crit") {
        // No extension is understood, so none may be required (RFC 7515 §4.1.11).
        return Err(IdTokenError::Malformed);
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(IdTokenError::UnknownKey)?;
    let key = keys.get(kid).ok_or(IdTokenError::UnknownKey)?;
    let signature = base64url_decode(signature_b64).ok_or(IdTokenError::Malformed)?;
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    let digest: [u8; 32] = Sha256::digest(signing_input.as_bytes()).into();
    if !key.verify_sha256(&digest, &signature) {
        return Err(IdTokenError::BadSignature);
    }

    let claims = json_object(payload_b64)?;
    if claims.get("iss").and_then(Value::as_str) != Some(config.issuer.as_str()) {
        return Err(IdTokenError::WrongIssuer);
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => *aud == config.audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(&config.audience)),
        _ => false,
    };
    if !audience_ok {
        return Err(IdTokenError::WrongAudience);
    }
    let time = |name: &str| claims.get(name).and_then(Value::as_i64);
    match time("exp") {
        Some(exp) if exp.saturating_add(ID_TOKEN_LEEWAY_S) > now_s => {}
        _ => return Err(IdTokenError::Expired),
    }
    for name in ["iat", "auth_time"] {
        if time(name).is_some_and(|t| t > now_s.saturating_add(ID_TOKEN_LEEWAY_S)) {
            return Err(IdTokenError::IssuedInFuture);
        }
    }
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.chars().count() <= MAX_SUBJECT_LEN)
        .filter(|s| !s.chars().any(char::is_control))
        .ok_or(IdTokenError::NoSubject)?;
    let email = claims
        .get("email")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty() && e.len() <= MAX_EMAIL_LEN && !e.chars().any(char::is_control))
        .map(str::to_owned);
    Ok(SignedInUser {
        subject: subject.to_owned(),
        email,
    })
}

fn json_object(part: &str) -> Result<serde_json::Map<String, Value>, IdTokenError> {
    let bytes = base64url_decode(part).ok_or(IdTokenError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(IdTokenError::Malformed),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use license_edge_token::encoding::base64url_encode;
    use rsa::traits::PublicKeyParts;
    use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
    use serde_json::json;
    use std::sync::OnceLock;

    pub(crate) fn test_key() -> &'static RsaPrivateKey {
        static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
        KEY.get_or_init(|| RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap())
    }

    pub(crate) fn jwk_of(key: &RsaPublicKey, kid: &str) -> Value {
        json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
               "n": base64url_encode(key.n().to_bytes_be()),
               "e": base64url_encode(key.e().to_bytes_be())})
    }

    fn sign(header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            base64url_encode(header.to_string()),
            base64url_encode(claims.to_string())
        );
        let digest = Sha256::digest(input.as_bytes());
        let sig = test_key()
            .sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
            .unwrap();
        format!("{input}.{}", base64url_encode(sig))
    }

    const NOW: i64 = 1_800_000_000;

    fn config() -> IssuerConfig {
        IssuerConfig {
            issuer: "https://securetoken.google.com/proj".into(),
            audience: "proj".into(),
        }
    }

    fn claims() -> Value {
        json!({"iss": "https://securetoken.google.com/proj", "aud": "proj", "sub": "user-1",
               "email": "a@example.com", "iat": NOW - 10, "auth_time": NOW - 100, "exp": NOW + 3590})
    }

    fn keys() -> IssuerKeys {
        let body = json!({"keys": [jwk_of(&test_key().to_public_key(), "k1")]}).to_string();
        IssuerKeys::from_jwks(body.as_bytes()).unwrap()
    }

    fn header() -> Value {
        json!({"alg": "RS256", "kid": "k1", "typ": "JWT"})
    }

    fn check(token: &str) -> Result<SignedInUser, IdTokenError> {
        verify_id_token(token, &keys(), &config(), NOW)
    }

    #[test]
    fn a_good_token_names_its_user() {
        let user = check(&sign(&header(), &claims())).unwrap();
        assert_eq!(user.subject, "user-1");
        assert_eq!(user.email.as_deref(), Some("a@example.com"));
        let mut c = claims();
        c["aud"] = json!(["other", "proj"]);
        c.as_object_mut().unwrap().remove("email");
        assert_eq!(check(&sign(&header(), &c)).unwrap().email, None);
    }

    #[test]
    fn claims_are_checked_after_the_signature() {
        let mut c = claims();
        c["iss"] = json!("https://securetoken.google.com/other");
        assert_eq!(check(&sign(&header(), &c)), Err(IdTokenError::WrongIssuer));
        let mut c = claims();
        c["aud"] = json!("other");
        assert_eq!(
            check(&sign(&header(), &c)),
            Err(IdTokenError::WrongAudience)
        );
        let mut c = claims();
        c["sub"] = json!("");
        assert_eq!(check(&sign(&header(), &c)), Err(IdTokenError::NoSubject));
    }

    #[test]
    fn times_hold_to_the_second_with_the_leeway() {
        let mut c = claims();
        c["exp"] = json!(NOW - ID_TOKEN_LEEWAY_S);
        assert_eq!(check(&sign(&header(), &c)), Err(IdTokenError::Expired));
        c["exp"] = json!(NOW - ID_TOKEN_LEEWAY_S + 1);
        assert!(check(&sign(&header(), &c)).is_ok());
        c.as_object_mut().unwrap().remove("exp");
        assert_eq!(check(&sign(&header(), &c)), Err(IdTokenError::Expired));
        let mut c = claims();
        c["iat"] = json!(NOW + ID_TOKEN_LEEWAY_S + 1);
        assert_eq!(
            check(&sign(&header(), &c)),
            Err(IdTokenError::IssuedInFuture)
        );
        let mut c = claims();
        c["auth_time"] = json!(NOW + ID_TOKEN_LEEWAY_S + 1);
        assert_eq!(
            check(&sign(&header(), &c)),
            Err(IdTokenError::IssuedInFuture)
        );
    }

    #[test]
    fn only_rs256_with_a_known_key_verifies() {
        let token = sign(&header(), &claims());
        let (input, _) = token.rsplit_once('.').unwrap();
        // alg confusion: "none" with no signature, HS256 "signed" with the public key's bytes.
        for alg in ["none", "HS256", "EdDSA", "RS384", "PS256"] {
            let h = json!({"alg": alg, "kid": "k1"});
            let forged = format!(
                "{}.{}.",
                base64url_encode(h.to_string()),
                input.split('.').nth(1).unwrap()
            );
            assert_eq!(check(&forged), Err(IdTokenError::Algorithm(alg.into())));
        }
        let h = json!({"alg": "RS256", "kid": "k2"});
        assert_eq!(check(&sign(&h, &claims())), Err(IdTokenError::UnknownKey));
        let h = json!({"alg": "RS256"});
        assert_eq!(check(&sign(&h, &claims())), Err(IdTokenError::UnknownKey));
        let h = json!({"alg": "RS256", "kid": "k1", "crit": ["exp"]});
        assert_eq!(check(&sign(&h, &claims())), Err(IdTokenError::Malformed));
        // A payload swapped under a valid signature.
        let mut c = claims();
        c["sub"] = json!("admin");
        let other = sign(&header(), &c);
        let swapped = format!(
            "{}.{}.{}",
            token.split('.').next().unwrap(),
            other.split('.').nth(1).unwrap(),
            token.split('.').nth(2).unwrap()
        );
        assert_eq!(check(&swapped), Err(IdTokenError::BadSignature));
        let sig = base64url_decode(token.rsplit('.').next().unwrap()).unwrap();
        let truncated = format!("{input}.{}", base64url_encode(&sig[..sig.len() - 1]));
        assert_eq!(check(&truncated), Err(IdTokenError::BadSignature));
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.!!.!!",
            &"a".repeat(MAX_ID_TOKEN_LEN + 1),
        ] {
            assert_eq!(check(bad), Err(IdTokenError::Malformed), "{bad:.20}");
        }
        assert_eq!(header_kid(&token).as_deref(), Some("k1"));
    }
}
