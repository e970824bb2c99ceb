//! Who is asking for a seat: the license key, and the signed-in user when there is one.
//!
//! Two request shapes reach the seat routes:
//!
//! - today's: `Authorization: Bearer <license key>`, `{"machine_id", "metadata"?}`;
//! - the replaced service's: `Authorization: Bearer <ID token>` with the license key in the
//!   body, `{"license_key", "hardware_id" | "machine_id", "metadata"?}`.
//!
//! A bearer credential shaped like a JWT is an ID token ([`license_edge_oidc::looks_like_jwt`]);
//! anything else is a license key (keys never hold a dot). Heartbeat, borrow and release take
//! either: the license key, or the ID token of the user who owns the session.

use crate::api::{bearer, ApiError, Bearer};
use crate::seats::{license_key_hash, MAX_LICENSE_KEY_LEN};
use license_edge_oidc::{looks_like_jwt, IdTokenError};

/// The credentials of an acquire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcquireCredentials {
    /// The license key's hash.
    pub key_hash: String,
    /// The user's ID token, not yet verified.
    pub id_token: Option<String>,
}

/// The credential of a heartbeat, borrow or release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCredential {
    /// The license key's hash.
    Key(String),
    /// The user's ID token, not yet verified.
    IdToken(String),
}

fn key_hash(key: &str) -> Result<String, ApiError> {
    if key.is_empty() || key.len() > MAX_LICENSE_KEY_LEN || !key.is_ascii() {
        return Err(ApiError::Unauthorized);
    }
    Ok(license_key_hash(key))
}

/// An acquire's credentials from its `Authorization` header and the body's `license_key`.
/// Missing, malformed and unknown credentials all get the same 401, except a signed-in request
/// without any license key, which is told the key is missing.
pub fn acquire_credentials(
    authorization: Option<&str>,
    body_key: Option<&str>,
) -> Result<AcquireCredentials, ApiError> {
    let bearer = bearer(authorization);
    match (body_key, bearer) {
        (Some(key), Bearer::Absent) => Ok(AcquireCredentials {
            key_hash: key_hash(key)?,
            id_token: None,
        }),
        (Some(key), Bearer::Credential(token)) if looks_like_jwt(token) => Ok(AcquireCredentials {
            key_hash: key_hash(key)?,
            id_token: Some(token.to_owned()),
        }),
        // A key in the body and another credential in the header: which one counts would be a
        // guess.
        (Some(_), _) => Err(ApiError::Unauthorized),
        (None, Bearer::Credential(token)) if looks_like_jwt(token) => Err(ApiError::MissingField {
            field: "license_key",
        }),
        (None, Bearer::Credential(key)) => Ok(AcquireCredentials {
            key_hash: key_hash(key)?,
            id_token: None,
        }),
        (None, Bearer::Absent | Bearer::Malformed) => Err(ApiError::Unauthorized),
    }
}

/// A heartbeat's, borrow's or release's credential from its `Authorization` header.
pub fn session_credential(authorization: Option<&str>) -> Result<SessionCredential, ApiError> {
    match bearer(authorization) {
        Bearer::Credential(token) if looks_like_jwt(token) => {
            Ok(SessionCredential::IdToken(token.to_owned()))
        }
        Bearer::Credential(key) => key_hash(key).map(SessionCredential::Key),
        Bearer::Absent | Bearer::Malformed => Err(ApiError::Unauthorized),
    }
}

/// The refusal of an ID token, as the client sees it. An unknown key after the refetch is the
/// issuer's key set not holding it: the token is not the issuer's.
pub fn id_token_refusal(e: &IdTokenError) -> ApiError {
    let reason = match e {
        IdTokenError::Malformed => "malformed",
        IdTokenError::Algorithm(_) => "algorithm_not_allowed",
        IdTokenError::UnknownKey => "unknown_key",
        IdTokenError::BadSignature => "bad_signature",
        IdTokenError::WrongIssuer => "wrong_issuer",
        IdTokenError::WrongAudience => "wrong_audience",
        IdTokenError::Expired => "expired",
        IdTokenError::IssuedInFuture => "issued_in_future",
        IdTokenError::NoSubject => "no_subject",
    };
    ApiError::InvalidIdToken { reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln";

    #[test]
    fn todays_shape_takes_the_key_from_the_header() {
        let c = acquire_credentials(Some("Bearer lk_abc"), None).unwrap();
        assert_eq!(c.key_hash, license_key_hash("lk_abc"));
        assert_eq!(c.id_token, None);
    }

    #[test]
    fn the_old_shape_takes_the_key_from_the_body_and_the_user_from_the_header() {
        let c = acquire_credentials(Some(&format!("Bearer {JWT}")), Some("lk_abc")).unwrap();
        assert_eq!(c.key_hash, license_key_hash("lk_abc"));
        assert_eq!(c.id_token.as_deref(), Some(JWT));
        let c = acquire_credentials(None, Some("lk_abc")).unwrap();
        assert_eq!(c.id_token, None);
    }

    #[test]
    fn ambiguous_or_missing_credentials_are_refused() {
        assert_eq!(
            acquire_credentials(Some("Bearer lk_other"), Some("lk_abc")),
            Err(ApiError::Unauthorized)
        );
        assert_eq!(
            acquire_credentials(Some("Basic x"), Some("lk_abc")),
            Err(ApiError::Unauthorized)
        );
        assert_eq!(
            acquire_credentials(Some(&format!("Bearer {JWT}")), None),
            Err(ApiError::MissingField {
                field: "license_key"
            })
        );
        assert_eq!(acquire_credentials(None, None), Err(ApiError::Unauthorized));
        assert_eq!(
            acquire_credentials(None, Some(&"k".repeat(MAX_LICENSE_KEY_LEN + 1))),
            Err(ApiError::Unauthorized)
        );
        assert_eq!(
            acquire_credentials(None, Some("")),
            Err(ApiError::Unauthorized)
        );
    }

    #[test]
    fn sessions_take_a_key_or_an_id_token() {
        assert_eq!(
            session_credential(Some("Bearer lk_abc")),
            Ok(SessionCredential::Key(license_key_hash("lk_abc")))
        );
        assert_eq!(
            session_credential(Some(&format!("Bearer {JWT}"))),
            Ok(SessionCredential::IdToken(JWT.into()))
        );
        assert_eq!(session_credential(None), Err(ApiError::Unauthorized));
    }

    #[test]
    fn refusals_name_a_stable_reason() {
        let e = id_token_refusal(&IdTokenError::Algorithm("none".into()));
        assert_eq!(
            e,
            ApiError::InvalidIdToken {
                reason: "algorithm_not_allowed"
            }
        );
        assert_eq!(e.describe().status, 401);
    }
}
