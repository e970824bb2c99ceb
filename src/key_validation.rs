//! License-key validation at the edge, without I/O: the validate route's second request
//! shape, `{"license_key", "machine_id"?, "action"?}`, the shape the service this replaced
//! took (its clients still send it), decided from the key-value read model alone
//! ([`crate::read_model::keys`]).
//!
//! The answer is 200 for every well-formed request, with the new fields (`valid`, `code`,
//! `license_id`, `license_status`, `expires_at`, `days_remaining`) beside the old service's
//! `status` and `days_remaining`. Every answer carries every field (null where nothing
//! applies), so an unknown key's answer has the same fields and status as any other unknown
//! key's, whether or not a license ever had it.
//!
//! Guessing is limited per client address ([`GuessCounter`]): a request from an address that
//! sent [`KEY_GUESSES_PER_WINDOW`] unknown keys in the current minute is refused (429) before
//! its key is looked up, so the route cannot be used to enumerate keys.

use crate::api::{optional_string, ApiError};
use crate::read_model::keys::MachineSeat;
use crate::read_model::{LicenseState, LicenseStatus};
use crate::seats::{license_key_hash, MAX_LICENSE_KEY_LEN, MAX_MACHINE_ID_LEN};
use crate::time::rfc3339_from_millis;
use license_edge_token::machine_id_hash;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::net::{IpAddr, SocketAddr};

/// The longest `action` accepted, in characters. The old service's clients send a word
/// (`validate`, `check`, `activate`); it is accepted and ignored.
pub const MAX_ACTION_LEN: usize = 64;
/// Unknown keys one client address may send per window before it is refused.
pub const KEY_GUESSES_PER_WINDOW: u32 = 30;
/// The guess-counting window, milliseconds (fixed windows aligned to the epoch).
pub const KEY_GUESS_WINDOW_MS: i64 = 60_000;
/// A day, milliseconds.
const DAY_MS: i64 = 86_400_000;

/// A parsed key validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRequest {
    /// The hex SHA-256 of the key ([`license_key_hash`]); the key itself is not kept.
    pub key_hash: String,
    /// [`machine_id_hash`] of the machine named, if any.
    pub machine_hash: Option<String>,
}

/// Parses a key validation from a body already read as a JSON object that has `license_key`.
///
/// `license_key` is required (1 to [`MAX_LICENSE_KEY_LEN`] characters, any text: a key that
/// cannot exist is simply unknown), `machine_id` optional (as in token validation), `action`
/// an optional word that is ignored. A `token` beside `license_key` is refused: one request,
/// one credential. Other fields are ignored, as token validation ignores them.
pub fn parse_key_request(object: &Map<String, Value>) -> Result<KeyRequest, ApiError> {
    if object.contains_key("token") {
        return Err(ApiError::InvalidField {
            field: "token",
            reason: "a request validates either a token or a license_key, not both".into(),
        });
    }
    let key = optional_string(object, "license_key", MAX_LICENSE_KEY_LEN)?.ok_or(
        ApiError::MissingField {
            field: "license_key",
        },
    )?;
    let machine_hash =
        optional_string(object, "machine_id", MAX_MACHINE_ID_LEN)?.map(|m| machine_id_hash(&m));
    optional_string(object, "action", MAX_ACTION_LEN)?;
    Ok(KeyRequest {
        key_hash: license_key_hash(&key),
        machine_hash,
    })
}

/// What a key validation answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCode {
    /// The license is in force (and the machine named holds a live seat).
    Valid,
    /// No license has this key.
    NotFound,
    /// The license is suspended.
    Suspended,
    /// The license is revoked.
    Revoked,
    /// The license's end date has passed.
    Expired,
    /// The license is in force but the machine named holds no live session.
    NoSeat,
}

impl KeyCode {
    /// The answer's `code`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyCode::Valid => "VALID",
            KeyCode::NotFound => "NOT_FOUND",
            KeyCode::Suspended => "SUSPENDED",
            KeyCode::Revoked => "REVOKED",
            KeyCode::Expired => "EXPIRED",
            KeyCode::NoSeat => "NO_SEAT",
        }
    }

    /// The old service's `status` for this answer: the code in lower case (`valid`,
    /// `not_found`, `suspended`, `revoked`, `expired`, `no_seat`). README and openapi.json
    /// give the mapping.
    pub fn legacy_status(self) -> &'static str {
        match self {
            KeyCode::Valid => "valid",
            KeyCode::NotFound => "not_found",
            KeyCode::Suspended => "suspended",
            KeyCode::Revoked => "revoked",
            KeyCode::Expired => "expired",
            KeyCode::NoSeat => "no_seat",
        }
    }

    fn message(self) -> &'static str {
        match self {
            KeyCode::Valid => "the license is in force",
            KeyCode::NotFound => "no license has this key",
            KeyCode::Suspended => "the license is suspended",
            KeyCode::Revoked => "the license is revoked",
            KeyCode::Expired => "the license has expired",
            KeyCode::NoSeat => "the machine holds no live seat of this license",
        }
    }
}

/// Decides a known key's answer from its license's read-model state and, when a machine was
/// named, whether it holds a live seat. Revoked, suspended and expired come first, as in token
/// validation; a machine's seat matters only for a license in force.
pub fn key_code(license: &LicenseState, seat: MachineSeat, now_ms: i64) -> KeyCode {
    match license.status {
        LicenseStatus::Revoked => return KeyCode::Revoked,
        LicenseStatus::Suspended => return KeyCode::Suspended,
        LicenseStatus::Active => {}
    }
    if license.expires_at.is_some_and(|end| end <= now_ms) {
        return KeyCode::Expired;
    }
    match seat {
        MachineSeat::NotSeated => KeyCode::NoSeat,
        MachineSeat::NotAsked | MachineSeat::Seated => KeyCode::Valid,
    }
}

/// Whole days left until `expires_at` (rounded down, never below 0); `None` for a license
/// without an end.
pub fn days_remaining(expires_at: Option<i64>, now_ms: i64) -> Option<i64> {
    expires_at.map(|end| (end.saturating_sub(now_ms)).max(0) / DAY_MS)
}

/// The 200 answer of a key validation; `license` is the license's id and read-model state,
/// `None` for an unknown key.
pub fn key_answer(
    code: KeyCode,
    license: Option<(&str, &LicenseState)>,
    now_ms: i64,
    request_id: &str,
) -> Value {
    let expires_at = license.and_then(|(_, l)| l.expires_at);
    json!({
        "valid": code == KeyCode::Valid,
        "code": code.as_str(),
        "message": code.message(),
        "license_id": license.map(|(id, _)| id),
        "license_status": license.map(|(_, l)| l.status.as_str()),
        "expires_at": expires_at.map(rfc3339_from_millis),
        "days_remaining": days_remaining(expires_at, now_ms),
        "status": code.legacy_status(),
        "meta": { "request_id": request_id },
    })
}

/// The address guesses are counted under, from Spin's `spin-client-addr` (`ip:port`): the IP
/// for IPv4, the /64 prefix for IPv6 (one host usually holds a whole /64), and the text as
/// given when it is not an address. The port is dropped: every connection has a new one.
pub fn client_address(spin_client_addr: Option<&str>) -> String {
    let Some(text) = spin_client_addr.map(str::trim) else {
        return "unknown".to_owned();
    };
    let ip = text
        .parse::<SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| text.parse::<IpAddr>());
    match ip {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        // Not an address (Spin always sends one): kept, cut to a bounded length.
        Err(_) => text.chars().take(64).collect(),
    }
}

/// The key of an address's guess counter.
pub fn guess_counter_key(address: &str) -> String {
    format!("rl:kv:{address}")
}

/// `rl:kv:{address}`: unknown keys an address sent in its latest window. One entry per address,
/// rewritten in place when a new window starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuessCounter {
    /// The window's number (`now_ms / KEY_GUESS_WINDOW_MS`).
    pub window: i64,
    /// Unknown keys sent in it.
    pub failures: u32,
}

impl GuessCounter {
    /// The counter as stored (`None` when absent or unreadable: nothing counted).
    pub fn read(entry: Option<&[u8]>) -> Option<GuessCounter> {
        entry.and_then(crate::read_model::decode)
    }

    /// Failures counted in the window of `now_ms`.
    fn current(counter: Option<&GuessCounter>, now_ms: i64) -> u32 {
        counter
            .filter(|c| c.window == window_of(now_ms))
            .map_or(0, |c| c.failures)
    }

    /// The refusal for an address that used up its guesses in this window: 429 with the
    /// seconds until the window ends. `None` while guesses remain.
    pub fn refusal(counter: Option<&GuessCounter>, now_ms: i64) -> Option<ApiError> {
        (Self::current(counter, now_ms) >= KEY_GUESSES_PER_WINDOW).then(|| {
            let end = (window_of(now_ms) + 1) * KEY_GUESS_WINDOW_MS;
            let wait_ms = end - now_ms;
            ApiError::KeyGuessesLimited {
                limit: KEY_GUESSES_PER_WINDOW,
                retry_after_s: u32::try_from((wait_ms + 999) / 1000).unwrap_or(u32::MAX),
            }
        })
    }

    /// The counter after one more unknown key at `now_ms`.
    pub fn after_failure(counter: Option<&GuessCounter>, now_ms: i64) -> GuessCounter {
        GuessCounter {
            window: window_of(now_ms),
            failures: Self::current(counter, now_ms).saturating_add(1),
        }
    }
}

fn window_of(now_ms: i64) -> i64 {
    now_ms.div_euclid(KEY_GUESS_WINDOW_MS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_model::encode;

    fn object(text: &str) -> Map<String, Value> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn the_old_shape_parses_and_action_is_ignored() {
        let r = parse_key_request(&object(
            r#"{"license_key":"LE-1","action":"validate","machine_id":"m"}"#,
        ))
        .unwrap();
        assert_eq!(r.key_hash, license_key_hash("LE-1"));
        assert_eq!(r.machine_hash, Some(machine_id_hash("m")));
        let r = parse_key_request(&object(r#"{"license_key":"LE-1","extra":1}"#)).unwrap();
        assert_eq!(r.machine_hash, None);
        for action in ["check", "activate", "x"] {
            let body = format!(r#"{{"license_key":"k","action":"{action}"}}"#);
            assert!(parse_key_request(&object(&body)).is_ok(), "{action}");
        }
    }

    #[test]
    fn rejects_malformed_key_requests() {
        let field = |body: &str| match parse_key_request(&object(body)) {
            Err(ApiError::InvalidField { field, .. }) | Err(ApiError::MissingField { field }) => {
                field
            }
            other => panic!("{body}: {other:?}"),
        };
        assert_eq!(field(r#"{"license_key":null}"#), "license_key");
        assert_eq!(field(r#"{"license_key":""}"#), "license_key");
        assert_eq!(field(r#"{"license_key":7}"#), "license_key");
        let long = format!(
            r#"{{"license_key":"{}"}}"#,
            "k".repeat(MAX_LICENSE_KEY_LEN + 1)
        );
        assert_eq!(field(&long), "license_key");
        assert_eq!(field(r#"{"license_key":"k","token":"t"}"#), "token");
        assert_eq!(
            field(r#"{"license_key":"k","machine_id":""}"#),
            "machine_id"
        );
        assert_eq!(field(r#"{"license_key":"k","action":[]}"#), "action");
        let long = format!(
            r#"{{"license_key":"k","action":"{}"}}"#,
            "a".repeat(MAX_ACTION_LEN + 1)
        );
        assert_eq!(field(&long), "action");
        // At the limits, accepted; characters, not bytes.
        let at = format!(r#"{{"license_key":"{}"}}"#, "é".repeat(MAX_LICENSE_KEY_LEN));
        assert!(parse_key_request(&object(&at)).is_ok());
    }

    fn state(status: LicenseStatus, expires_at: Option<i64>) -> LicenseState {
        LicenseState {
            status,
            expires_at,
            updated_at: 0,
            version: 1,
        }
    }

    #[test]
    fn codes_follow_the_license_then_the_seat() {
        use LicenseStatus::{Active, Revoked, Suspended};
        use MachineSeat::{NotAsked, NotSeated, Seated};
        let now = 10 * DAY_MS;
        assert_eq!(
            key_code(&state(Active, None), NotAsked, now),
            KeyCode::Valid
        );
        assert_eq!(key_code(&state(Active, None), Seated, now), KeyCode::Valid);
        assert_eq!(
            key_code(&state(Active, None), NotSeated, now),
            KeyCode::NoSeat
        );
        assert_eq!(
            key_code(&state(Suspended, None), Seated, now),
            KeyCode::Suspended
        );
        assert_eq!(
            key_code(&state(Revoked, Some(0)), NotSeated, now),
            KeyCode::Revoked
        );
        assert_eq!(
            key_code(&state(Active, Some(now)), Seated, now),
            KeyCode::Expired
        );
        assert_eq!(
            key_code(&state(Active, Some(now + 1)), Seated, now),
            KeyCode::Valid
        );
    }

    #[test]
    fn days_remaining_round_down_and_stop_at_zero() {
        assert_eq!(days_remaining(None, 0), None);
        assert_eq!(days_remaining(Some(DAY_MS * 3 - 1), 0), Some(2));
        assert_eq!(days_remaining(Some(DAY_MS * 3), 0), Some(3));
        assert_eq!(days_remaining(Some(5), 10), Some(0));
        assert_eq!(days_remaining(Some(i64::MIN), i64::MAX), Some(0));
    }

    #[test]
    fn every_answer_has_the_same_fields_and_unknown_keys_the_same_body() {
        let lic = state(LicenseStatus::Active, Some(3 * DAY_MS));
        let known = key_answer(KeyCode::Valid, Some(("lic_1", &lic)), 0, "req_1");
        let unknown = key_answer(KeyCode::NotFound, None, 0, "req_1");
        let fields = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(fields(&known), fields(&unknown));
        assert_eq!(known["days_remaining"], 3);
        assert_eq!(known["status"], "valid");
        assert_eq!(known["license_status"], "active");
        assert_eq!(known["expires_at"], "1970-01-04T00:00:00.000Z");
        assert_eq!(unknown["status"], "not_found");
        assert_eq!(unknown["valid"], false);
        assert!(unknown["license_id"].is_null() && unknown["days_remaining"].is_null());
        assert_eq!(unknown, key_answer(KeyCode::NotFound, None, 99, "req_1"));
    }

    #[test]
    fn addresses_drop_the_port_and_ipv6_counts_per_64() {
        assert_eq!(client_address(Some("127.0.0.1:40000")), "127.0.0.1");
        assert_eq!(client_address(Some("127.0.0.1:1")), "127.0.0.1");
        assert_eq!(
            client_address(Some("[2001:db8:1:2:3:4:5:6]:443")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            client_address(Some("[2001:db8:1:2:ffff::1]:1")),
            client_address(Some("[2001:db8:1:2::9]:2"))
        );
        assert_eq!(client_address(Some("[::ffff:10.0.0.1]:5")), "10.0.0.1");
        assert_eq!(client_address(Some("10.0.0.2")), "10.0.0.2");
        assert_eq!(client_address(None), "unknown");
        assert_eq!(client_address(Some(&"x".repeat(500))).len(), 64);
    }

    #[test]
    fn guesses_are_refused_from_the_limit_until_the_window_ends() {
        let start = 7 * KEY_GUESS_WINDOW_MS;
        let mut counter: Option<GuessCounter> = None;
        for i in 0..KEY_GUESSES_PER_WINDOW {
            assert!(
                GuessCounter::refusal(counter.as_ref(), start + 1).is_none(),
                "{i}"
            );
            counter = Some(GuessCounter::after_failure(counter.as_ref(), start + 1));
        }
        // Stored and read back, as the component does.
        let stored = encode(counter.as_ref().unwrap());
        let counter = GuessCounter::read(Some(&stored));
        assert_eq!(
            GuessCounter::refusal(counter.as_ref(), start + 1_500),
            Some(ApiError::KeyGuessesLimited {
                limit: KEY_GUESSES_PER_WINDOW,
                retry_after_s: 59
            })
        );
        // The next window starts from nothing.
        let next = start + KEY_GUESS_WINDOW_MS;
        assert!(GuessCounter::refusal(counter.as_ref(), next).is_none());
        assert_eq!(
            GuessCounter::after_failure(counter.as_ref(), next).failures,
            1
        );
        assert_eq!(GuessCounter::read(Some(b"junk")), None);
    }
}
