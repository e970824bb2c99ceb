//! The validate route's request and answers, without I/O: the component reads the body, the
//! key set and the read model, and this module decides.
//!
//! A well-formed request about a bad token is answered 200 `{"valid": false, "code": ...}`, as
//! Keygen and Unkey do; only a malformed request is a 4xx.

use crate::api::{bearer, json_body, optional_string, ApiError, Bearer};
use crate::key_validation::{parse_key_request, KeyRequest};
use crate::read_model::Standing;
use crate::seats::MAX_MACHINE_ID_LEN;
use crate::time::rfc3339_from_millis;
use license_edge_token::{Claims, TokenError};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// The largest validate request body (a token is at most 4 KiB; the rest is small).
pub const MAX_VALIDATE_BODY: usize = 8 * 1024;
/// The longest product name accepted, in characters.
pub const MAX_PRODUCT_LEN: usize = 128;

/// A parsed validate request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidateRequest {
    /// The token to check.
    pub token: String,
    /// The caller's machine id, checked against the token's `mid` when given.
    pub machine_id: Option<String>,
    /// The product the caller expects (`{organization_id}/{product_code}`), checked against
    /// `aud` when given (see [`is_for_product`]).
    pub product: Option<String>,
}

/// Parses a validate request: `{"token", "machine_id"?, "product"?}`, or the token as
/// `Authorization: Bearer` (the body may then be empty or carry only the other fields).
///
/// `openapi.json` describes the two ways exactly: the body is optional and so is its
/// `token`, and the bearer scheme is an alternative to none. A request with neither carries
/// no token to validate and answers 401 `unauthorized`, as a missing credential does
/// anywhere; one with both must carry the same token twice (400 otherwise: RFC 6750 allows
/// one way per request, and two different tokens leave nothing to decide).
pub fn parse_request(
    body: &[u8],
    content_type: Option<&str>,
    authorization: Option<&str>,
) -> Result<ValidateRequest, ApiError> {
    let object = json_body(body, content_type, MAX_VALIDATE_BODY)?;
    token_request(&object, authorization)
}

/// What a validate request asks: a token's validation, or a license key's (the shape the
/// replaced service took; see [`crate::key_validation`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validation {
    /// `{"token", ...}` or a bearer token.
    Token(ValidateRequest),
    /// `{"license_key", "machine_id"?, "action"?}`.
    Key(KeyRequest),
}

/// Parses a validate request of either shape: a JSON body with `license_key` is a key
/// validation (the `Authorization` header is then not read), anything else a token
/// validation as [`parse_request`] reads it. The body is parsed once.
pub fn parse_validation(
    body: &[u8],
    content_type: Option<&str>,
    authorization: Option<&str>,
) -> Result<Validation, ApiError> {
    let object = json_body(body, content_type, MAX_VALIDATE_BODY)?;
    if object.contains_key("license_key") {
        return parse_key_request(&object).map(Validation::Key);
    }
    token_request(&object, authorization).map(Validation::Token)
}

fn token_request(
    object: &Map<String, Value>,
    authorization: Option<&str>,
) -> Result<ValidateRequest, ApiError> {
    // `token` is optional but never null: an explicit null is a missing value, not "no token".
    if object.get("token").is_some_and(Value::is_null) {
        return Err(ApiError::MissingField { field: "token" });
    }
    let in_body = optional_string(object, "token", MAX_VALIDATE_BODY)?;
    let in_header = match bearer(authorization) {
        Bearer::Absent => None,
        Bearer::Credential(token) => Some(token.to_owned()),
        Bearer::Malformed => {
            return Err(ApiError::InvalidField {
                field: "authorization",
                reason: "must be `Bearer <token>`".into(),
            })
        }
    };
    let token = match (in_body, in_header) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::InvalidField {
                field: "token",
                reason: "differs from the one in the Authorization header".into(),
            })
        }
        (Some(t), _) | (None, Some(t)) => t,
        (None, None) => return Err(ApiError::Unauthorized),
    };
    Ok(ValidateRequest {
        token,
        machine_id: optional_string(object, "machine_id", MAX_MACHINE_ID_LEN)?,
        product: optional_string(object, "product", MAX_PRODUCT_LEN)?,
    })
}

/// The answer's `code` for a token the core refused: its stable code in upper case
/// (`EXPIRED`, `BAD_SIGNATURE`, `UNKNOWN_KEY`, `MALFORMED`, `MACHINE_MISMATCH`, ...).
pub fn token_refusal_code(err: &TokenError) -> String {
    err.code().to_ascii_uppercase()
}

/// The answer's code and message for a verified token no longer in force; `None` when it is.
pub fn standing_refusal(standing: Standing) -> Option<(&'static str, &'static str)> {
    Some(match standing {
        Standing::InForce | Standing::Unknown => return None,
        Standing::LicenseSuspended => ("LICENSE_SUSPENDED", "the license is suspended"),
        Standing::LicenseRevoked => ("LICENSE_REVOKED", "the license is revoked"),
        Standing::LicenseExpired => ("LICENSE_EXPIRED", "the license has expired"),
        Standing::SessionEnded => ("SESSION_ENDED", "the session was released or ended"),
    })
}

/// The body of `200 {"valid": true, "code": "VALID", "license", "expires_at", "meta"}` for a
/// token in force, as JSON text. The hot path's answer, so it is written straight from the
/// claims, not through a `Value`.
pub fn valid_body(claims: &Claims, request_id: &str) -> String {
    #[derive(Serialize)]
    struct Meta<'a> {
        request_id: &'a str,
    }
    #[derive(Serialize)]
    struct Valid<'a> {
        valid: bool,
        code: &'static str,
        license: &'a Claims,
        expires_at: String,
        meta: Meta<'a>,
    }
    let body = Valid {
        valid: true,
        code: "VALID",
        license: claims,
        expires_at: rfc3339_from_millis(claims.exp.saturating_mul(1000)),
        meta: Meta { request_id },
    };
    // Serializing cannot fail: every map key is a string.
    serde_json::to_string(&body).unwrap_or_default()
}

/// `200 {"valid": false, ...}` for a well-formed request about a token not in force.
pub fn invalid_body(code: &str, message: &str, request_id: &str) -> Value {
    json!({
        "valid": false,
        "code": code,
        "message": message,
        "meta": { "request_id": request_id },
    })
}

/// Whether a verified token is for `product` (`{organization_id}/{product_code}`, as
/// [`crate::seats::product_audience`] writes `aud`).
///
/// Tokens issued before audiences named the organization carry the bare product code in `aud`
/// and the organization in `org`; they match the `org/code` that names their product, and the
/// bare code as before, until they expire (a lease, or a borrow of at most a year). A token
/// with a qualified `aud` never matches another organization's product, nor a bare code.
pub fn is_for_product(claims: &Claims, product: &str) -> bool {
    if claims.aud == product {
        return true;
    }
    let legacy = !claims.aud.contains('/');
    legacy
        && claims.org.as_deref().is_some_and(|org| {
            product
                .strip_prefix(org)
                .and_then(|rest| rest.strip_prefix('/'))
                == Some(claims.aud.as_str())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str, auth: Option<&str>) -> Result<ValidateRequest, ApiError> {
        parse_request(body.as_bytes(), Some("application/json"), auth)
    }

    #[test]
    fn token_from_body_or_header() {
        let r = parse(r#"{"token":"t","machine_id":"m"}"#, None).unwrap();
        assert_eq!(
            (r.token.as_str(), r.machine_id.as_deref()),
            ("t", Some("m"))
        );
        assert_eq!(parse("", Some("Bearer t")).unwrap().token, "t");
        assert_eq!(
            parse(r#"{"token":"t"}"#, Some("Bearer t")).unwrap().token,
            "t"
        );
    }

    #[test]
    fn rejects_malformed_requests() {
        // No token at all: the missing credential of the bearer scheme.
        assert_eq!(parse("{}", None), Err(ApiError::Unauthorized));
        assert_eq!(parse("", None), Err(ApiError::Unauthorized));
        assert_eq!(
            parse(r#"{"machine_id":"m"}"#, None),
            Err(ApiError::Unauthorized)
        );
        assert_eq!(
            parse(r#"{"token":null}"#, Some("Bearer t")),
            Err(ApiError::MissingField { field: "token" })
        );
        assert_eq!(parse("[1]", None), Err(ApiError::InvalidJson));
        assert!(matches!(
            parse(r#"{"token":1}"#, None),
            Err(ApiError::InvalidField { field: "token", .. })
        ));
        assert!(matches!(
            parse(r#"{"token":"a"}"#, Some("Bearer b")),
            Err(ApiError::InvalidField { field: "token", .. })
        ));
        assert!(matches!(
            parse("", Some("Basic x")),
            Err(ApiError::InvalidField {
                field: "authorization",
                ..
            })
        ));
        let long = format!(
            r#"{{"token":"t","machine_id":"{}"}}"#,
            "m".repeat(MAX_MACHINE_ID_LEN + 1)
        );
        assert!(matches!(
            parse(&long, None),
            Err(ApiError::InvalidField {
                field: "machine_id",
                ..
            })
        ));
        let huge = format!(r#"{{"token":"{}"}}"#, "t".repeat(MAX_VALIDATE_BODY));
        assert!(matches!(
            parse(&huge, None),
            Err(ApiError::PayloadTooLarge { .. })
        ));
    }

    #[test]
    fn a_body_with_license_key_is_a_key_validation() {
        let parse = |body: &str, auth| parse_validation(body.as_bytes(), None, auth);
        assert!(matches!(
            parse(r#"{"license_key":"k","action":"validate"}"#, None),
            Ok(Validation::Key(_))
        ));
        // The bearer header is not read for a key validation.
        assert!(matches!(
            parse(r#"{"license_key":"k"}"#, Some("Basic x")),
            Ok(Validation::Key(_))
        ));
        assert!(matches!(
            parse(r#"{"token":"t"}"#, None),
            Ok(Validation::Token(_))
        ));
        assert_eq!(parse("{}", None), Err(ApiError::Unauthorized));
        assert!(matches!(
            parse(r#"{"license_key":"k","token":"t"}"#, None),
            Err(ApiError::InvalidField { field: "token", .. })
        ));
    }

    #[test]
    fn refusal_codes_are_upper_case() {
        assert_eq!(token_refusal_code(&TokenError::Expired), "EXPIRED");
        assert_eq!(
            standing_refusal(Standing::SessionEnded).unwrap().0,
            "SESSION_ENDED"
        );
        assert_eq!(standing_refusal(Standing::InForce), None);
    }

    #[test]
    fn the_valid_body_carries_the_claims_as_issued() {
        let claims = Claims::new("iss", "lic", "aud", "ses", 1_000, 600).with_machine_id("m");
        let body: Value = serde_json::from_str(&valid_body(&claims, "req_1")).unwrap();
        assert_eq!(
            body,
            json!({
                "valid": true,
                "code": "VALID",
                "license": claims.to_json(),
                "expires_at": "1970-01-01T00:26:40.000Z",
                "meta": {"request_id": "req_1"},
            })
        );
    }

    #[test]
    fn products_are_named_with_their_organization_and_old_tokens_still_match() {
        let mut claims = Claims::new("iss", "lic_1", "org_a/cad-pro", "ses_1", 0, 60);
        claims.org = Some("org_a".into());
        assert!(is_for_product(&claims, "org_a/cad-pro"));
        for other in [
            "org_b/cad-pro",
            "cad-pro",
            "org_a/cad",
            "org_a/cad-pro/x",
            "",
        ] {
            assert!(!is_for_product(&claims, other), "{other}");
        }
        // A token from before: a bare code in aud, the organization in org.
        claims.aud = "cad-pro".into();
        assert!(is_for_product(&claims, "org_a/cad-pro"));
        assert!(is_for_product(&claims, "cad-pro"));
        assert!(!is_for_product(&claims, "org_b/cad-pro"));
        assert!(!is_for_product(&claims, "org_a/other"));
        claims.org = None;
        assert!(!is_for_product(&claims, "org_a/cad-pro"));
    }
}
