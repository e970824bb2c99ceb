//! The one structured log line every component writes per request, and the request ids it is
//! keyed by.
//!
//! The line is JSON on one line, written to the component's stderr, which Spin collects (its
//! terminal, `--log-dir`, or the pod's log on SpinKube). Its fields are ids, codes and numbers
//! only: the type has no field a license key, token, credential or raw machine id could go
//! into, and a test reads every line the components write and looks for the secrets of its
//! fixtures. This module only shapes the line; `edge_io::log` times the request and writes it.

use serde::Serialize;

/// The longest request id taken from a client's `X-Request-Id`.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether a client's `X-Request-Id` is well formed and is echoed: 1 to
/// [`MAX_REQUEST_ID_LEN`] characters of `A-Z a-z 0-9 . _ : -`. Anything else (empty, longer,
/// spaces, quotes, control characters, non-ASCII) is replaced by a fresh id, so an id never
/// carries text that could forge or break a log line.
pub fn is_well_formed_request_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_REQUEST_ID_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The request id a request is known by: the client's `X-Request-Id` when exactly one was sent
/// and it is well formed, else `fresh` (a new `req_…` id).
pub fn choose_request_id(sent: &[&str], fresh: impl FnOnce() -> String) -> String {
    match sent {
        [one] if is_well_formed_request_id(one) => (*one).to_owned(),
        _ => fresh(),
    }
}

/// One request's log line. Ids are the resource ids the API shows (`org_…`, `lic_…`, `ses_…`,
/// `key_…`), set only once the handler has checked or looked them up.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RequestLine {
    /// When the request ended, RFC 3339 UTC with milliseconds.
    pub ts: String,
    /// `info` for answers below 400, `warn` for 4xx, `error` for 5xx.
    pub level: &'static str,
    /// Always `request`: tells these lines from the components' free-text diagnostics.
    pub msg: &'static str,
    /// The component (`health`, `validate`, `acquire`, `admin`).
    pub component: &'static str,
    /// The request id, as the answer's `X-Request-Id` and `meta.request_id` carry it.
    pub request_id: String,
    /// The HTTP method.
    pub method: String,
    /// The route template that matched (`/api/v1/licenses/sessions/{session_id}/heartbeat`),
    /// `unmatched` when none did: never the raw path, which a client controls.
    pub route: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The error code of an error envelope, or the validation code (`VALID`, `EXPIRED`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Time from the component's start on the request to its answer, milliseconds, from the
    /// monotonic clock.
    pub duration_ms: f64,
    /// The organization concerned, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    /// The license concerned, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license_id: Option<String>,
    /// The session concerned, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The organization API key that authenticated an admin request (its id, never the key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl RequestLine {
    /// The level a status is logged at.
    pub fn level_for(status: u16) -> &'static str {
        match status {
            500.. => "error",
            400..=499 => "warn",
            _ => "info",
        }
    }

    /// The line as one line of JSON, without the newline.
    pub fn to_json(&self) -> String {
        // Invariant: every field serializes (strings, numbers, options); serde_json cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Milliseconds from nanoseconds, to the microsecond.
pub fn millis_from_nanos(nanos: u64) -> f64 {
    (nanos / 1_000) as f64 / 1_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_request_ids_are_short_and_plain() {
        for ok in ["a", "req_1", "0f8c-12.ab:cd_EF", &"x".repeat(128)] {
            assert!(is_well_formed_request_id(ok), "{ok}");
        }
        for bad in [
            "",
            &"x".repeat(129),
            "has space",
            "quote\"",
            "new\nline",
            "tab\t",
            "ünï",
            "semi;colon",
            "slash/",
            "{}",
        ] {
            assert!(!is_well_formed_request_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn one_well_formed_id_is_echoed_anything_else_is_replaced() {
        let fresh = || "req_new".to_owned();
        assert_eq!(choose_request_id(&["abc-1"], fresh), "abc-1");
        assert_eq!(choose_request_id(&[], fresh), "req_new");
        assert_eq!(choose_request_id(&["a b"], fresh), "req_new");
        assert_eq!(choose_request_id(&["a", "b"], fresh), "req_new");
    }

    #[test]
    fn the_line_is_one_json_object_without_unknown_ids() {
        let line = RequestLine {
            ts: "2026-12-02T06:00:00.000Z".into(),
            level: RequestLine::level_for(409),
            msg: "request",
            component: "acquire",
            request_id: "req_1".into(),
            method: "POST".into(),
            route: "/api/v1/licenses/acquire".into(),
            status: 409,
            code: Some("no_seats_available".into()),
            duration_ms: millis_from_nanos(1_234_567),
            license_id: Some("lic_1".into()),
            ..RequestLine::default()
        };
        let text = line.to_json();
        assert!(!text.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["level"], "warn");
        assert_eq!(v["duration_ms"], 1.234);
        assert_eq!(v["license_id"], "lic_1");
        assert!(v.get("session_id").is_none());
        assert_eq!(RequestLine::level_for(200), "info");
        assert_eq!(RequestLine::level_for(503), "error");
    }
}
