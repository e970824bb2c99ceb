//! The HTTP API's shared vocabulary: the error envelope every component answers with, and the
//! one function that decides what a client is told for each error.
//!
//! Envelope: `{"error": {"code", "message", "details"}, "meta": {"request_id"}}`. Codes are
//! stable snake_case strings; clients branch on them, so a code never changes meaning.
//!
//! Beside the errors: [`request`] (JSON bodies, bearer credentials, optional fields),
//! [`log`] (the one structured log line per request, and request ids),
//! [`query`] (query strings, cursors and pagination) and [`routes`] (the public route table).

pub mod log;
pub mod query;
pub mod request;
pub mod routes;

pub use request::{bearer, json_body, optional_string, Bearer, MAX_JSON_BODY};
pub use routes::{RouteSpec, PUBLIC_ROUTES};

use serde_json::{json, Value};

/// Every way a request can be refused, as the API reports it.
///
/// Components map their own failures into this enum; [`ApiError::describe`] alone decides the
/// status, code and message a client sees. Internal detail (database messages, addresses) never
/// goes into a variant that reaches the client: log it instead.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiError {
    /// No route or resource answers at this path.
    NotFound,
    /// The route exists but not for this method; `allowed` lists the methods that are.
    MethodNotAllowed {
        /// Methods the route accepts, for the `Allow` header.
        allowed: &'static [&'static str],
    },
    /// The route is reserved for a capability that is not built yet.
    NotImplemented {
        /// What is missing, in a few words.
        feature: &'static str,
    },
    /// The request is malformed; `message` says how, in words safe to show the client.
    BadRequest {
        /// What was wrong with the request.
        message: String,
    },
    /// The body is not well-formed JSON, or not a JSON object (duplicate keys included).
    InvalidJson,
    /// A required field is absent (or empty).
    MissingField {
        /// The field's name.
        field: &'static str,
    },
    /// A field is present but unusable; `reason` says why, in words safe for the client.
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The body is larger than the route accepts.
    PayloadTooLarge {
        /// The largest body accepted, in bytes.
        limit_bytes: usize,
    },
    /// The body's `Content-Type` is not one the route accepts.
    UnsupportedMediaType {
        /// The content type the route expects.
        expected: &'static str,
    },
    /// Credentials are missing, malformed or unknown. Deliberately says no more than that.
    Unauthorized,
    /// Valid credentials whose role or scope does not allow this operation (a `read` key's
    /// write, an organization key on an operator-only route, a key above the caller's role).
    InsufficientScope {
        /// What the operation needs (`an admin key`, `the operator token`).
        needs: &'static str,
    },
    /// The product requires a signed-in user and the request carries no ID token (or the
    /// session is heartbeaten or released by license key alone).
    SignInRequired,
    /// The ID token was refused; `reason` is the [`license_edge_oidc::IdTokenError`] in a
    /// stable snake_case word (`expired`, `wrong_audience`...).
    InvalidIdToken {
        /// Why, in one stable word.
        reason: &'static str,
    },
    /// The signed-in user already holds as many live seats of this license as it allows one
    /// user.
    UserSeatLimit {
        /// The license's limit per user.
        max_seats_per_user: u32,
        /// The user's live seats now.
        user_seats: u32,
    },
    /// The sign-in provider's keys could not be fetched (or sign-in is not configured), so no
    /// ID token can be checked; nothing was changed.
    IdentityUnavailable,
    /// The license is suspended.
    LicenseSuspended,
    /// The license is revoked.
    LicenseRevoked,
    /// The license has reached its end date.
    LicenseExpired,
    /// Every seat of the license is held by a live session.
    NoSeatsAvailable {
        /// The license's seat limit.
        max_seats: u32,
        /// Live sessions now.
        active_seats: u32,
        /// When the soonest live lease lapses unless renewed (epoch ms), if any.
        next_available_at: Option<i64>,
    },
    /// No session with this id belongs to the license.
    SessionNotFound,
    /// The session was released or lapsed; the client must acquire again.
    SessionExpired,
    /// The session is borrowed for offline use: its token works offline until the borrow
    /// ends, so the client cannot hand its seat back before then.
    SessionBorrowed {
        /// When the borrow ends (epoch ms); the seat is free again shortly after.
        borrowed_until: i64,
    },
    /// Too many acquire attempts for this license in the current window.
    RateLimited {
        /// Attempts allowed per window.
        limit: u32,
        /// Seconds until the window resets.
        retry_after_s: u32,
    },
    /// Too many unknown license keys from this client address in the current window (key
    /// validation); refused before the key is looked up.
    KeyGuessesLimited {
        /// Unknown keys allowed per window.
        limit: u32,
        /// Seconds until the window resets.
        retry_after_s: u32,
    },
    /// The license does not allow offline borrowing.
    BorrowNotAllowed,
    /// The borrow asked for is longer than the license allows.
    BorrowTooLong {
        /// The longest borrow allowed, in seconds.
        max_seconds: u32,
    },
    /// An id in the path or body names nothing that exists.
    NoSuch {
        /// What kind of thing (`organization`, `product`, `license`, `session`).
        resource: &'static str,
    },
    /// A body field or query parameter the route does not know (a typo must not be ignored).
    UnknownField {
        /// The name as the client sent it (cut to a safe length).
        field: String,
    },
    /// The organization already has a product with this code.
    DuplicateProductCode,
    /// The license is revoked, and revocation is final: it cannot be changed any more.
    RevocationIsFinal {
        /// What was refused (`reinstate`, `suspend`, `update`).
        action: &'static str,
    },
    /// The change is recorded in PostgreSQL but could not be written to the key-value store,
    /// so validation may not see it yet. Retrying the request, or the key-value rebuild,
    /// propagates it.
    ChangeNotPropagated,
    /// The key-value store could not be written, before anything was recorded (or during a
    /// rebuild, which can simply be run again).
    KeyValueUnavailable,
    /// PostgreSQL could not be reached or failed; the request had no effect.
    DatabaseUnavailable,
    /// The key-value store could not be read, so an authoritative answer cannot be given.
    RevocationUnavailable,
    /// The token could not be signed in time (the signer, Cloud KMS or its credentials, is
    /// slow, down or refusing, or gave a signature that does not verify). No seat was kept
    /// for the token that was not issued.
    SigningUnavailable,
    /// A failure the server did not anticipate. The client learns nothing more.
    Internal,
}

/// What a client is told about an [`ApiError`]: status, stable code, message and details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// The HTTP status code.
    pub status: u16,
    /// The stable snake_case code.
    pub code: &'static str,
    /// A human-readable explanation.
    pub message: String,
    /// Structured details (an object, possibly empty).
    pub details: Value,
}

impl ApiError {
    /// The one mapping from an error to what the client sees.
    pub fn describe(&self) -> ErrorReply {
        let (status, code, message, details) = match self {
            ApiError::NotFound => (
                404,
                "not_found",
                "no resource at this path".to_owned(),
                json!({}),
            ),
            ApiError::MethodNotAllowed { allowed } => (
                405,
                "method_not_allowed",
                format!("this route accepts {}", allowed.join(", ")),
                json!({ "allowed": allowed }),
            ),
            ApiError::NotImplemented { feature } => (
                501,
                "not_implemented",
                format!("{feature} is not implemented yet"),
                json!({}),
            ),
            ApiError::BadRequest { message } => (400, "bad_request", message.clone(), json!({})),
            ApiError::InvalidJson => (
                400,
                "invalid_json",
                "request body must be a JSON object without duplicate keys".to_owned(),
                json!({}),
            ),
            ApiError::MissingField { field } => (
                400,
                "missing_field",
                format!("`{field}` is required"),
                json!({ "field": field }),
            ),
            ApiError::InvalidField { field, reason } => (
                400,
                "invalid_field",
                format!("`{field}` {reason}"),
                json!({ "field": field, "reason": reason }),
            ),
            ApiError::PayloadTooLarge { limit_bytes } => (
                413,
                "payload_too_large",
                format!("request body is larger than {limit_bytes} bytes"),
                json!({ "limit_bytes": limit_bytes }),
            ),
            ApiError::UnsupportedMediaType { expected } => (
                415,
                "unsupported_media_type",
                format!("request body must be {expected}"),
                json!({ "expected": expected }),
            ),
            ApiError::Unauthorized => (
                401,
                "unauthorized",
                "missing or invalid credentials".to_owned(),
                json!({}),
            ),
            ApiError::InsufficientScope { needs } => (
                403,
                "insufficient_scope",
                format!("these credentials may not do this; it needs {needs}"),
                json!({ "needs": needs }),
            ),
            ApiError::SignInRequired => (
                401,
                "sign_in_required",
                "this product requires a signed-in user: send the user's ID token as the bearer \
                 (and the license key in the body)"
                    .to_owned(),
                json!({}),
            ),
            ApiError::InvalidIdToken { reason } => (
                401,
                "invalid_id_token",
                format!("the ID token was refused: {}", reason.replace('_', " ")),
                json!({ "reason": reason }),
            ),
            ApiError::UserSeatLimit { max_seats_per_user, user_seats } => (
                409,
                "user_seat_limit",
                format!("this user already holds {user_seats} of the {max_seats_per_user} seats one user may hold"),
                json!({ "max_seats_per_user": max_seats_per_user, "user_seats": user_seats }),
            ),
            ApiError::IdentityUnavailable => (
                503,
                "identity_unavailable",
                "the sign-in provider's keys cannot be fetched; nothing was changed, retry later"
                    .to_owned(),
                json!({}),
            ),
            ApiError::LicenseSuspended => (
                403,
                "license_suspended",
                "the license is suspended".to_owned(),
                json!({}),
            ),
            ApiError::LicenseRevoked => (
                403,
                "license_revoked",
                "the license is revoked".to_owned(),
                json!({}),
            ),
            ApiError::LicenseExpired => (
                403,
                "license_expired",
                "the license has expired".to_owned(),
                json!({}),
            ),
            ApiError::NoSeatsAvailable { max_seats, active_seats, next_available_at } => (
                409,
                "no_seats_available",
                format!("all {max_seats} seats are in use"),
                json!({
                    "max_seats": max_seats,
                    "active_seats": active_seats,
                    "next_available_hint": next_available_at.map(crate::time::rfc3339_from_millis),
                }),
            ),
            ApiError::SessionNotFound => (
                404,
                "session_not_found",
                "no such session for this license".to_owned(),
                json!({}),
            ),
            ApiError::SessionExpired => (
                410,
                "session_expired",
                "the session was released or its lease lapsed; acquire a seat again".to_owned(),
                json!({}),
            ),
            ApiError::SessionBorrowed { borrowed_until } => (
                409,
                "session_borrowed",
                format!(
                    "the session is borrowed until {}: its token works offline until then, so its seat cannot be released before",
                    crate::time::rfc3339_from_millis(*borrowed_until)
                ),
                json!({ "borrowed_until": crate::time::rfc3339_from_millis(*borrowed_until) }),
            ),
            ApiError::RateLimited { limit, retry_after_s } => (
                429,
                "rate_limited",
                format!("more than {limit} acquire attempts a minute for this license; retry in {retry_after_s} s"),
                json!({ "limit": limit, "retry_after_s": retry_after_s }),
            ),
            ApiError::KeyGuessesLimited { limit, retry_after_s } => (
                429,
                "rate_limited",
                format!("more than {limit} unknown license keys a minute from this address; retry in {retry_after_s} s"),
                json!({ "limit": limit, "retry_after_s": retry_after_s }),
            ),
            ApiError::BorrowNotAllowed => (
                403,
                "borrow_not_allowed",
                "this license does not allow offline borrowing".to_owned(),
                json!({}),
            ),
            ApiError::BorrowTooLong { max_seconds } => (
                400,
                "borrow_too_long",
                format!("a borrow may last at most {max_seconds} s"),
                json!({ "max_seconds": max_seconds }),
            ),
            ApiError::NoSuch { resource } => (
                404,
                "not_found",
                format!("no {resource} with this id"),
                json!({ "resource": resource }),
            ),
            ApiError::UnknownField { field } => (
                400,
                "invalid_field",
                format!("`{field}` is not a known field"),
                json!({ "field": field, "reason": "is not a known field" }),
            ),
            ApiError::DuplicateProductCode => (
                409,
                "duplicate_product_code",
                "the organization already has a product with this code".to_owned(),
                json!({}),
            ),
            ApiError::RevocationIsFinal { action } => (
                409,
                "revocation_is_final",
                format!("the license is revoked and revocation is final: it cannot {action}"),
                json!({ "status": "revoked", "action": action }),
            ),
            ApiError::ChangeNotPropagated => (
                503,
                "revocation_unavailable",
                "the change is recorded, but the key-value store could not be written, so \
                 validation may not see it yet; retry the request or POST /api/v1/admin/kv/rebuild \
                 to propagate it"
                    .to_owned(),
                json!({ "recorded": true }),
            ),
            ApiError::KeyValueUnavailable => (
                503,
                "key_value_unavailable",
                "the key-value store is unavailable; retry later".to_owned(),
                json!({}),
            ),
            ApiError::DatabaseUnavailable => (
                503,
                "database_unavailable",
                "the database is unavailable; nothing was changed, retry later".to_owned(),
                json!({}),
            ),
            ApiError::RevocationUnavailable => (
                503,
                "revocation_unavailable",
                "revocation state cannot be read; verify the token offline or retry".to_owned(),
                json!({}),
            ),
            ApiError::SigningUnavailable => (
                503,
                "signing_unavailable",
                "the license token could not be signed; no seat was kept for it, retry later"
                    .to_owned(),
                json!({}),
            ),
            ApiError::Internal => (
                500,
                "internal_error",
                "internal error".to_owned(),
                json!({}),
            ),
        };
        ErrorReply {
            status,
            code,
            message,
            details,
        }
    }

    /// The `Allow` header value, for a 405.
    pub fn allow_header(&self) -> Option<String> {
        match self {
            ApiError::MethodNotAllowed { allowed } => Some(allowed.join(", ")),
            _ => None,
        }
    }
}

/// Renders the error envelope for `err`, tagged with the request id.
pub fn error_envelope(err: &ApiError, request_id: &str) -> (u16, Vec<u8>) {
    let reply = err.describe();
    let body = json!({
        "error": { "code": reply.code, "message": reply.message, "details": reply.details },
        "meta": { "request_id": request_id },
    });
    (reply.status, body.to_string().into_bytes())
}

/// Formats 16 random bytes as a request id (`req_` and 32 lowercase hex digits).
pub fn request_id(random: [u8; 16]) -> String {
    format!("req_{}", license_edge_token::encoding::hex(&random))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_code_message_details_and_request_id() {
        let (status, body) =
            error_envelope(&ApiError::MethodNotAllowed { allowed: &["GET"] }, "req_1");
        assert_eq!(status, 405);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "method_not_allowed");
        assert_eq!(v["error"]["details"]["allowed"][0], "GET");
        assert!(v["error"]["message"].as_str().unwrap().contains("GET"));
        assert_eq!(v["meta"]["request_id"], "req_1");
    }

    #[test]
    fn every_error_maps_to_a_client_or_availability_status() {
        let all = [
            ApiError::NotFound,
            ApiError::MethodNotAllowed {
                allowed: &["GET", "HEAD"],
            },
            ApiError::NotImplemented { feature: "x" },
            ApiError::BadRequest {
                message: "m".into(),
            },
            ApiError::PayloadTooLarge { limit_bytes: 1 },
            ApiError::UnsupportedMediaType {
                expected: "application/json",
            },
            ApiError::Unauthorized,
            ApiError::SignInRequired,
            ApiError::InvalidIdToken { reason: "expired" },
            ApiError::UserSeatLimit {
                max_seats_per_user: 1,
                user_seats: 1,
            },
            ApiError::IdentityUnavailable,
            ApiError::LicenseSuspended,
            ApiError::LicenseRevoked,
            ApiError::LicenseExpired,
            ApiError::NoSeatsAvailable {
                max_seats: 1,
                active_seats: 1,
                next_available_at: Some(0),
            },
            ApiError::SessionNotFound,
            ApiError::SessionExpired,
            ApiError::SessionBorrowed { borrowed_until: 0 },
            ApiError::RateLimited {
                limit: 1,
                retry_after_s: 1,
            },
            ApiError::KeyGuessesLimited {
                limit: 1,
                retry_after_s: 1,
            },
            ApiError::BorrowNotAllowed,
            ApiError::BorrowTooLong { max_seconds: 1 },
            ApiError::InsufficientScope {
                needs: "an admin key",
            },
            ApiError::NoSuch {
                resource: "license",
            },
            ApiError::UnknownField { field: "x".into() },
            ApiError::DuplicateProductCode,
            ApiError::RevocationIsFinal {
                action: "be reinstated",
            },
            ApiError::ChangeNotPropagated,
            ApiError::KeyValueUnavailable,
            ApiError::DatabaseUnavailable,
            ApiError::RevocationUnavailable,
            ApiError::SigningUnavailable,
        ];
        for e in all {
            let r = e.describe();
            assert!(
                (400..500).contains(&r.status) || r.status == 501 || r.status == 503,
                "{e:?}"
            );
            assert!(
                r.code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{}",
                r.code
            );
        }
        assert_eq!(ApiError::Internal.describe().status, 500);
    }

    #[test]
    fn request_ids_are_hex() {
        assert_eq!(request_id([0xab; 16]), format!("req_{}", "ab".repeat(16)));
    }
}
