//! Seats (sessions) without I/O: parsing the acquire, heartbeat, release and borrow requests,
//! turning what the database's seat functions answered into errors or claims, and shaping the
//! answers. The seat decision itself (count, lock, insert) runs inside PostgreSQL, in the
//! `le_acquire` / `le_extend` / `le_release` functions of `migrations/`, so that it is
//! serialized there whatever the number of component instances.

use crate::api::{bearer, json_body, optional_string, ApiError, Bearer};
use crate::outcome::SeatOutcome;
use crate::time::rfc3339_from_millis;
use license_edge_token::encoding::hex;
use license_edge_token::{machine_id_hash, Claims};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The largest acquire or borrow request body.
pub const MAX_SEAT_BODY: usize = 16 * 1024;
/// The longest license key accepted; longer credentials are unknown keys.
pub const MAX_LICENSE_KEY_LEN: usize = 256;
/// The longest machine id accepted, in characters.
pub const MAX_MACHINE_ID_LEN: usize = 256;
/// How deep `metadata` may nest (the object itself is level 1). The admin API reads a session's
/// metadata back inside a license's detail, a few levels deeper, and JSON readers (the
/// PostgreSQL client's included) stop at 128 levels; a shallow limit keeps every read of it
/// far inside that.
pub const MAX_METADATA_DEPTH: usize = 16;
/// The largest `metadata` object, serialized, in bytes.
pub const MAX_METADATA_BYTES: usize = 4096;
/// The longest `User-Agent` kept; longer ones are cut.
pub const MAX_USER_AGENT_LEN: usize = 256;
/// The longest borrow any license may allow, seconds: a year (a license's
/// `max_borrow_seconds` of 0 forbids borrowing).
pub const MAX_BORROW_SECONDS: u32 = 365 * 24 * 3600;

/// The hex SHA-256 under which a license key is stored. The key itself is never stored.
pub fn license_key_hash(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

/// Authenticates by license key: `Authorization: Bearer <key>`. Returns the key's hash.
/// Missing, malformed and (later) unknown keys all get the same 401.
pub fn authenticate(authorization: Option<&str>) -> Result<String, ApiError> {
    match bearer(authorization) {
        Bearer::Credential(key) if key.len() <= MAX_LICENSE_KEY_LEN && key.is_ascii() => {
            Ok(license_key_hash(key))
        }
        _ => Err(ApiError::Unauthorized),
    }
}

/// A parsed acquire request.
#[derive(Debug, Clone, PartialEq)]
pub struct AcquireRequest {
    /// [`machine_id_hash`] of the machine id; the raw id is not stored.
    pub machine_hash: String,
    /// The machine id as sent, echoed in the answer for the old clients (never stored).
    pub machine_id: String,
    /// Client metadata (a JSON object, possibly empty).
    pub metadata: Value,
    /// The license key, when the body carries it (the old clients' shape; see
    /// [`crate::identity`]).
    pub license_key: Option<String>,
}

/// Parses `{"machine_id": "...", "metadata"?: {...}}`, or the old clients'
/// `{"license_key": "...", "hardware_id" | "machine_id": "...", "metadata"?: {...}}`.
pub fn parse_acquire(body: &[u8], content_type: Option<&str>) -> Result<AcquireRequest, ApiError> {
    let object = json_body(body, content_type, MAX_SEAT_BODY)?;
    // The machine id (either name) and the key are strings when present; null is not taken for
    // absent (the schema says string).
    for field in ["machine_id", "hardware_id", "license_key"] {
        if object.get(field).is_some_and(Value::is_null) {
            return Err(ApiError::InvalidField {
                field,
                reason: "must be a string".into(),
            });
        }
    }
    let machine_id = optional_string(&object, "machine_id", MAX_MACHINE_ID_LEN)?;
    let hardware_id = optional_string(&object, "hardware_id", MAX_MACHINE_ID_LEN)?;
    let machine_id = match (machine_id, hardware_id) {
        (Some(_), Some(_)) => {
            return Err(ApiError::InvalidField {
                field: "hardware_id",
                reason: "is the old name of machine_id: send one of them, not both".into(),
            })
        }
        (Some(m), None) | (None, Some(m)) => m,
        (None, None) => {
            return Err(ApiError::MissingField {
                field: "machine_id",
            })
        }
    };
    let license_key = optional_string(&object, "license_key", MAX_LICENSE_KEY_LEN)?;
    let metadata = match object.get("metadata") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(m @ Value::Object(_)) => {
            let text = m.to_string();
            if text.len() > MAX_METADATA_BYTES {
                return Err(ApiError::InvalidField {
                    field: "metadata",
                    reason: format!("must be at most {MAX_METADATA_BYTES} bytes as JSON"),
                });
            }
            if depth(m) > MAX_METADATA_DEPTH {
                // Found by schemathesis: deeper metadata was stored, then every admin read of
                // its license failed to decode (a 503).
                return Err(ApiError::InvalidField {
                    field: "metadata",
                    reason: format!("must nest at most {MAX_METADATA_DEPTH} levels"),
                });
            }
            // PostgreSQL's JSONB cannot store U+0000 (found by the schemathesis run: a 503).
            if text.contains("\\u0000") {
                return Err(ApiError::InvalidField {
                    field: "metadata",
                    reason: "must not contain NUL characters".into(),
                });
            }
            m.clone()
        }
        Some(_) => {
            return Err(ApiError::InvalidField {
                field: "metadata",
                reason: "must be a JSON object".into(),
            })
        }
    };
    Ok(AcquireRequest {
        machine_hash: machine_id_hash(&machine_id),
        machine_id,
        metadata,
        license_key,
    })
}

/// How many levels of arrays and objects `value` nests (a scalar is 0).
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Parses a borrow request `{"duration_s": N}`: a whole number of seconds, 1 to a year
/// (`3600.0` counts as whole, as in JSON Schema's `integer`).
pub fn parse_borrow(body: &[u8], content_type: Option<&str>) -> Result<u32, ApiError> {
    let object = json_body(body, content_type, MAX_SEAT_BODY)?;
    let invalid = || ApiError::InvalidField {
        field: "duration_s",
        reason: format!("must be a whole number of seconds from 1 to {MAX_BORROW_SECONDS}"),
    };
    match object.get("duration_s") {
        None | Some(Value::Null) => Err(ApiError::MissingField {
            field: "duration_s",
        }),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| {
                        f.fract() == 0.0 && (0.0..=f64::from(MAX_BORROW_SECONDS)).contains(f)
                    })
                    .map(|f| f as u64)
            })
            .filter(|d| (1..=u64::from(MAX_BORROW_SECONDS)).contains(d))
            .and_then(|d| u32::try_from(d).ok())
            .ok_or_else(invalid),
        Some(_) => Err(invalid()),
    }
}

/// A `User-Agent` worth keeping: printable, at most [`MAX_USER_AGENT_LEN`] bytes.
pub fn user_agent(header: Option<&str>) -> Option<String> {
    let ua: String = header?.chars().filter(|c| !c.is_control()).collect();
    let mut end = ua.len().min(MAX_USER_AGENT_LEN);
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    let ua = ua[..end].trim();
    (!ua.is_empty()).then(|| ua.to_owned())
}

/// A new session id from 16 random bytes: `ses_` and 32 hex digits.
pub fn session_id(random: [u8; 16]) -> String {
    format!("ses_{}", hex(&random))
}

/// Whether `id` has the shape of a session id; anything else cannot exist (404).
pub fn is_session_id(id: &str) -> bool {
    id.len() == 36
        && id.starts_with("ses_")
        && id[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The license facts a seat function returns along with its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatLicense {
    /// License id.
    pub id: String,
    /// Organization id.
    pub organization_id: String,
    /// Product code (the token's audience).
    pub product: String,
    /// Plan name.
    pub plan: String,
    /// Enabled features.
    pub features: Vec<String>,
    /// Seat limit.
    pub max_seats: u32,
    /// The license's own end (epoch ms), if any.
    pub expires_at: Option<i64>,
    /// Lease length in seconds.
    pub lease_seconds: u32,
    /// How long after a token's `exp` an offline verifier may accept it (its `offline_grace`).
    pub offline_grace_seconds: u32,
}

/// Maps a seat function's refusal outcome to the error the client sees; `None` for the
/// outcomes that grant (`created`, `existing`, `renewed`, `borrowed`, `released`,
/// `already_ended`) or that the caller answers itself because they carry details (`counted`,
/// `rate_limited`, `no_seats`, `borrow_too_long`; a release's `borrowed` refusal carries a
/// time). Outcomes a function does not answer are internal errors if they ever arrive.
pub fn refusal(outcome: SeatOutcome) -> Option<ApiError> {
    use SeatOutcome as O;
    Some(match outcome {
        O::Created | O::Existing | O::Renewed | O::Borrowed | O::Released | O::AlreadyEnded => {
            return None
        }
        O::UnknownKey => ApiError::Unauthorized,
        O::Suspended => ApiError::LicenseSuspended,
        O::Revoked => ApiError::LicenseRevoked,
        O::Expired => ApiError::LicenseExpired,
        O::NotFound => ApiError::SessionNotFound,
        O::SessionExpired => ApiError::SessionExpired,
        O::BorrowNotAllowed => ApiError::BorrowNotAllowed,
        O::SignInRequired => ApiError::SignInRequired,
        O::Counted
        | O::RateLimited
        | O::NoSeats
        | O::BorrowTooLong
        | O::UserSeatLimit
        | O::Undone
        | O::Superseded => ApiError::Internal,
    })
}

/// A token's `aud`: `{organization_id}/{product_code}`, which names one product of one
/// organization (a product code alone is unique only inside its organization). Validate's
/// `product` and an offline verifier's audience take this form.
pub fn product_audience(organization_id: &str, product_code: &str) -> String {
    format!("{organization_id}/{product_code}")
}

/// The claims of a session's token: valid from `now_ms` to the lease (or borrow) end, and
/// offline for the license's grace after that.
pub fn session_claims(
    issuer: &str,
    license: &SeatLicense,
    session_id: &str,
    machine_hash: &str,
    now_ms: i64,
    session_expires_at_ms: i64,
) -> Claims {
    let now = now_ms.div_euclid(1000);
    let exp = session_expires_at_ms.div_euclid(1000);
    let audience = product_audience(&license.organization_id, &license.product);
    let mut claims = Claims::new(issuer, &license.id, audience, session_id, now, 0);
    claims.exp = exp.max(now + 1);
    claims.org = Some(license.organization_id.clone());
    claims.plan = Some(license.plan.clone());
    claims.features = license.features.clone();
    claims.mid = Some(machine_hash.to_owned());
    claims.max_seats = Some(license.max_seats);
    claims.offline_grace = Some(license.offline_grace_seconds);
    claims
}

/// How often a client should renew: half the lease, so one lost beat does not lapse it.
pub fn heartbeat_interval_s(lease_seconds: u32) -> u32 {
    (lease_seconds / 2).max(1)
}

fn license_json(license: &SeatLicense) -> Value {
    json!({
        "id": license.id,
        "organization_id": license.organization_id,
        "product_code": license.product,
        // The name this field had before it matched the admin API's license; kept so that
        // clients reading it keep working (deprecated in openapi.json).
        "product": license.product,
        "plan": license.plan,
        "features": license.features,
        "max_seats": license.max_seats,
        "expires_at": license.expires_at.map(rfc3339_from_millis),
    })
}

/// The answer to a granted acquire, heartbeat or borrow.
pub fn granted_body(
    session_id: &str,
    token: &str,
    session_expires_at_ms: i64,
    license: &SeatLicense,
    active_seats: Option<u32>,
) -> Value {
    let mut body = json!({
        "session_id": session_id,
        "license_token": token,
        "expires_at": rfc3339_from_millis(session_expires_at_ms),
        "heartbeat_interval_s": heartbeat_interval_s(license.lease_seconds),
        "license": license_json(license),
    });
    if let Some(active) = active_seats {
        body["active_seats"] = json!(active);
    }
    body
}

/// What the old clients read beside today's fields of a granted answer: `id` (the session
/// id), `started_at` and `last_heartbeat_at` (RFC 3339), `machine_id` (as the client sent it,
/// on acquire), and the signed-in `user`, when there is one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionDetails<'a> {
    /// When the session started (epoch ms).
    pub started_at: Option<i64>,
    /// Its last acquire or heartbeat (epoch ms).
    pub last_heartbeat_at: Option<i64>,
    /// The machine id the request named.
    pub machine_id: Option<&'a str>,
    /// The signed-in user's `sub` and e-mail.
    pub user: Option<(&'a str, Option<&'a str>)>,
}

/// Adds [`SessionDetails`] to a granted answer ([`granted_body`]).
pub fn with_session_details(mut body: Value, details: &SessionDetails<'_>) -> Value {
    body["id"] = body["session_id"].clone();
    if let Some(at) = details.started_at {
        body["started_at"] = json!(rfc3339_from_millis(at));
    }
    if let Some(at) = details.last_heartbeat_at {
        body["last_heartbeat_at"] = json!(rfc3339_from_millis(at));
    }
    if let Some(machine_id) = details.machine_id {
        body["machine_id"] = json!(machine_id);
    }
    if let Some((sub, email)) = details.user {
        body["user"] = json!({ "sub": sub, "email": email });
    }
    body
}

/// The answer to a release.
pub fn released_body(session_id: &str, ended_at_ms: i64) -> Value {
    json!({ "session_id": session_id, "ended_at": rfc3339_from_millis(ended_at_ms) })
}

/// `X-RateLimit-*` headers (reset as Unix seconds) and, when over the limit, `Retry-After`.
pub fn rate_limit_headers(
    limit: u32,
    remaining: u32,
    reset_at_ms: i64,
    now_ms: i64,
    limited: bool,
) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("x-ratelimit-limit", limit.to_string()),
        ("x-ratelimit-remaining", remaining.to_string()),
        (
            "x-ratelimit-reset",
            reset_at_ms.div_euclid(1000).to_string(),
        ),
    ];
    if limited {
        headers.push((
            "retry-after",
            retry_after_s(reset_at_ms, now_ms).to_string(),
        ));
    }
    headers
}

/// Whole seconds from `now_ms` until `reset_at_ms`, at least 1.
pub fn retry_after_s(reset_at_ms: i64, now_ms: i64) -> u32 {
    let ms = (reset_at_ms - now_ms).max(0);
    u32::try_from((ms + 999) / 1000).unwrap_or(u32::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authenticate_accepts_only_bearer_keys() {
        assert_eq!(
            authenticate(Some("Bearer k")).unwrap(),
            license_key_hash("k")
        );
        for bad in [None, Some("Basic k"), Some("Bearer"), Some("k")] {
            assert_eq!(authenticate(bad), Err(ApiError::Unauthorized), "{bad:?}");
        }
        let long = format!("Bearer {}", "k".repeat(MAX_LICENSE_KEY_LEN + 1));
        assert_eq!(authenticate(Some(&long)), Err(ApiError::Unauthorized));
        assert_eq!(license_key_hash("abc").len(), 64);
    }

    #[test]
    fn the_old_clients_shape_names_the_key_and_a_hardware_id() {
        let r = parse_acquire(br#"{"license_key":"lk_1","hardware_id":"hw"}"#, None).unwrap();
        assert_eq!(r.machine_hash, machine_id_hash("hw"));
        assert_eq!(r.machine_id, "hw");
        assert_eq!(r.license_key.as_deref(), Some("lk_1"));
        for both in [
            br#"{"hardware_id":"a","machine_id":"b"}"#.as_slice(),
            br#"{"hardware_id":"a","machine_id":"a"}"#,
        ] {
            assert!(matches!(
                parse_acquire(both, None),
                Err(ApiError::InvalidField {
                    field: "hardware_id",
                    ..
                })
            ));
        }
        assert!(matches!(
            parse_acquire(br#"{"hardware_id":"0","machine_id":null}"#, None),
            Err(ApiError::InvalidField {
                field: "machine_id",
                ..
            })
        ));
        for bad in [
            br#"{"license_key":5,"machine_id":"b"}"#.as_slice(),
            br#"{"license_key":null,"machine_id":"b"}"#,
        ] {
            assert!(matches!(
                parse_acquire(bad, None),
                Err(ApiError::InvalidField {
                    field: "license_key",
                    ..
                })
            ));
        }
        let body = with_session_details(
            json!({"session_id": "ses_1"}),
            &SessionDetails {
                started_at: Some(0),
                last_heartbeat_at: Some(1000),
                machine_id: Some("hw"),
                user: Some(("u1", None)),
            },
        );
        assert_eq!(body["id"], "ses_1");
        assert_eq!(body["started_at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(body["last_heartbeat_at"], "1970-01-01T00:00:01.000Z");
        assert_eq!(body["machine_id"], "hw");
        assert_eq!(body["user"]["sub"], "u1");
    }

    #[test]
    fn acquire_needs_a_machine_id_and_an_object_for_metadata() {
        let r = parse_acquire(br#"{"machine_id":"m","metadata":{"host":"a"}}"#, None).unwrap();
        assert_eq!(r.machine_hash, machine_id_hash("m"));
        assert_eq!(r.metadata["host"], "a");
        assert_eq!(
            parse_acquire(b"{}", None),
            Err(ApiError::MissingField {
                field: "machine_id"
            })
        );
        assert!(matches!(
            parse_acquire(br#"{"machine_id":"m","metadata":[1]}"#, None),
            Err(ApiError::InvalidField {
                field: "metadata",
                ..
            })
        ));
        assert!(matches!(
            parse_acquire(br#"{"machine_id":"m","metadata":{"a\u0000":"b"}}"#, None),
            Err(ApiError::InvalidField {
                field: "metadata",
                ..
            })
        ));
        let deep = |levels: usize| {
            // An object holding arrays: `levels` levels in all.
            format!(
                r#"{{"machine_id":"m","metadata":{{"a":{}1{}}}}}"#,
                "[".repeat(levels - 1),
                "]".repeat(levels - 1)
            )
        };
        assert!(parse_acquire(deep(MAX_METADATA_DEPTH).as_bytes(), None).is_ok());
        assert!(matches!(
            parse_acquire(deep(MAX_METADATA_DEPTH + 1).as_bytes(), None),
            Err(ApiError::InvalidField {
                field: "metadata",
                ..
            })
        ));
        let big = format!(
            r#"{{"machine_id":"m","metadata":{{"x":"{}"}}}}"#,
            "y".repeat(MAX_METADATA_BYTES)
        );
        assert!(matches!(
            parse_acquire(big.as_bytes(), None),
            Err(ApiError::InvalidField {
                field: "metadata",
                ..
            })
        ));
    }

    #[test]
    fn borrow_duration_is_a_bounded_whole_number() {
        assert_eq!(parse_borrow(br#"{"duration_s":3600}"#, None), Ok(3600));
        // Whole as JSON Schema counts it (found by schemathesis's positive_data_acceptance).
        assert_eq!(parse_borrow(br#"{"duration_s":3600.0}"#, None), Ok(3600));
        assert_eq!(parse_borrow(br#"{"duration_s":3.6e3}"#, None), Ok(3600));
        for bad in [
            &br#"{"duration_s":0}"#[..],
            br#"{"duration_s":-1}"#,
            br#"{"duration_s":0.0}"#,
            br#"{"duration_s":-0.0}"#,
            br#"{"duration_s":31536001.0}"#,
            br#"{"duration_s":1.5}"#,
            br#"{"duration_s":"60"}"#,
            br#"{"duration_s":99999999999}"#,
        ] {
            assert!(
                matches!(parse_borrow(bad, None), Err(ApiError::InvalidField { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_borrow(b"{}", None),
            Err(ApiError::MissingField {
                field: "duration_s"
            })
        );
    }

    #[test]
    fn session_ids_have_one_shape() {
        let id = session_id([0xab; 16]);
        assert!(is_session_id(&id));
        for bad in [
            "",
            "ses_",
            "ses_ABABABABABABABABABABABABABABABAB",
            "lic_abababababababababababababababab",
            &format!("{id}0"),
        ] {
            assert!(!is_session_id(bad), "{bad}");
        }
    }

    #[test]
    fn user_agents_are_cleaned_and_cut() {
        assert_eq!(user_agent(Some("cad/1.0\n")).as_deref(), Some("cad/1.0"));
        assert_eq!(user_agent(Some("  ")), None);
        assert_eq!(user_agent(Some(&"é".repeat(300))).unwrap().len(), 256);
    }

    #[test]
    fn claims_run_to_the_lease_end() {
        let lic = SeatLicense {
            id: "lic_1".into(),
            organization_id: "org_1".into(),
            product: "cad".into(),
            plan: "pro".into(),
            features: vec!["export".into()],
            max_seats: 5,
            expires_at: None,
            lease_seconds: 360,
            offline_grace_seconds: 86_400,
        };
        let c = session_claims("iss", &lic, "ses_1", "mh", 1_000_500, 1_360_500);
        assert_eq!(
            (c.iat, c.exp, c.sub.as_str(), c.aud.as_str()),
            (1000, 1360, "lic_1", "org_1/cad")
        );
        assert_eq!(c.max_seats, Some(5));
        assert_eq!(c.offline_grace, Some(86_400));
        assert_eq!(heartbeat_interval_s(360), 180);
        let body = granted_body("ses_1", "t", 1_360_500, &lic, Some(2));
        assert_eq!(body["heartbeat_interval_s"], 180);
        assert_eq!(body["license"]["features"][0], "export");
    }

    /// How a component reads an outcome: a string no enum knows is an internal error.
    fn refusal_of(text: &str) -> Option<ApiError> {
        SeatOutcome::parse(text).map_or(Some(ApiError::Internal), refusal)
    }

    #[test]
    fn refusals_and_rate_limit_headers() {
        assert_eq!(refusal_of("created"), None);
        assert_eq!(refusal_of("unknown_key"), Some(ApiError::Unauthorized));
        assert_eq!(refusal_of("what"), Some(ApiError::Internal));
        let h = rate_limit_headers(20, 0, 120_000, 60_500, true);
        assert!(h.contains(&("retry-after", "60".to_owned())));
        assert!(h.contains(&("x-ratelimit-reset", "120".to_owned())));
    }
}
