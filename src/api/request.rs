//! What the components read from a request: JSON bodies, bearer credentials and optional
//! string fields, each refused with the [`ApiError`] a client is told.

use license_edge_token::encoding::hex;
use serde_json::Value;

use super::ApiError;

/// The largest request body any JSON route accepts unless it names a smaller limit.
pub const MAX_JSON_BODY: usize = 16 * 1024;

/// Parses a JSON request body into an object.
///
/// `content_type` may be absent (curl and many clients omit it) but when given must be
/// `application/json` (parameters allowed). An empty body parses as an empty object, so routes
/// whose every field is optional accept it; a body of whitespace alone is not JSON and is refused
/// (schemathesis sent `"\n\r"`). Duplicate keys are refused, as in tokens.
pub fn json_body(
    body: &[u8],
    content_type: Option<&str>,
    limit: usize,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.len() > limit {
        return Err(ApiError::PayloadTooLarge { limit_bytes: limit });
    }
    if let Some(ct) = content_type {
        let essence = ct.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::UnsupportedMediaType {
                expected: "application/json",
            });
        }
    }
    if body.is_empty() {
        return Ok(serde_json::Map::new());
    }
    license_edge_token::strict_json::parse_object(body).ok_or(ApiError::InvalidJson)
}

/// What an `Authorization` header holds, as far as bearer credentials go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bearer<'a> {
    /// No `Authorization` header.
    Absent,
    /// A header that is not a bearer credential: another scheme, nothing after the scheme, or
    /// spaces inside.
    Malformed,
    /// `Bearer <credential>`: the credential, trimmed.
    Credential(&'a str),
}

/// Reads an `Authorization: Bearer <credential>` header (see [`Bearer`]).
pub fn bearer(header: Option<&str>) -> Bearer<'_> {
    let Some(header) = header else {
        return Bearer::Absent;
    };
    let Some((scheme, rest)) = header.trim().split_once(' ') else {
        return Bearer::Malformed;
    };
    let credential = rest.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || credential.is_empty() || credential.contains(' ') {
        return Bearer::Malformed;
    }
    Bearer::Credential(credential)
}

/// An optional string field of a JSON object: absent or null is `None`; any other non-string,
/// an empty string, or one longer than `max_len` characters is refused. Characters (Unicode
/// scalar values), not bytes, as JSON Schema's `maxLength` counts them, so that `openapi.json`
/// states the limit exactly.
pub fn optional_string(
    body: &serde_json::Map<String, Value>,
    field: &'static str,
    max_len: usize,
) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Err(ApiError::InvalidField {
            field,
            reason: "must not be empty".into(),
        }),
        Some(Value::String(s)) if s.len() > max_len && s.chars().count() > max_len => {
            Err(ApiError::InvalidField {
                field,
                reason: format!("must be at most {max_len} characters"),
            })
        }
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::InvalidField {
            field,
            reason: "must be a string".into(),
        }),
    }
}

/// A new id: `prefix`, `_`, and 32 hex digits of 16 random bytes (`org_…`, `prod_…`, `lic_…`).
pub fn new_id(prefix: &str, random: [u8; 16]) -> String {
    format!("{prefix}_{}", hex(&random))
}

/// Whether `id` could be an id with this prefix: `prefix_` then 1 to 64 ASCII letters and
/// digits. Anything else cannot exist, so it is answered 404 without asking the database.
pub fn is_id(prefix: &str, id: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|rest| {
            (1..=64).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_body_limits_type_and_shape() {
        assert_eq!(
            json_body(b"{}", None, 1),
            Err(ApiError::PayloadTooLarge { limit_bytes: 1 })
        );
        assert!(matches!(
            json_body(b"{}", Some("text/plain"), 10),
            Err(ApiError::UnsupportedMediaType { .. })
        ));
        assert!(json_body(b"{}", Some("Application/JSON; charset=utf-8"), 10).is_ok());
        assert_eq!(json_body(b"", None, 10).unwrap().len(), 0);
        assert_eq!(json_body(b"\n\r", None, 10), Err(ApiError::InvalidJson));
        for bad in [&b"[]"[..], b"{", b"nul", b"{\"a\":1,\"a\":2}", b"\"x\""] {
            assert_eq!(
                json_body(bad, None, 100),
                Err(ApiError::InvalidJson),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bearer_parses_only_bearer_credentials() {
        assert_eq!(bearer(None), Bearer::Absent);
        assert_eq!(bearer(Some("Bearer abc")), Bearer::Credential("abc"));
        assert_eq!(bearer(Some("bearer   abc ")), Bearer::Credential("abc"));
        for bad in ["Basic abc", "Bearer", "Bearer ", "Bearer a b", "abc"] {
            assert_eq!(bearer(Some(bad)), Bearer::Malformed, "{bad}");
        }
    }

    #[test]
    fn optional_string_refuses_wrong_types_and_sizes() {
        let body = json!({"a": "x", "b": 1, "c": "", "d": null, "e": "long"});
        let body = body.as_object().unwrap();
        assert_eq!(
            optional_string(body, "a", 10).unwrap().as_deref(),
            Some("x")
        );
        assert_eq!(optional_string(body, "d", 10).unwrap(), None);
        assert_eq!(optional_string(body, "zz", 10).unwrap(), None);
        assert!(optional_string(body, "b", 10).is_err());
        assert!(optional_string(body, "c", 10).is_err());
        assert!(optional_string(body, "e", 3).is_err());
    }
}
