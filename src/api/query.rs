//! Query strings, cursors and pagination for the API's list routes: strict parsing (unknown
//! or repeated parameters refused), percent-decoding, and opaque cursors.

use serde_json::{json, Value};

use super::request::is_id;
use super::ApiError;

/// The most items one list answer holds.
pub const MAX_PAGE: u32 = 100;
/// Items per list answer when `limit` is not given.
pub const DEFAULT_PAGE: u32 = 50;

// --- Query strings -----------------------------------------------------------------------

/// A parsed query string: each known parameter at most once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(&'static str, String)>,
}

/// Parses `query` (without `?`), accepting only the parameters in `allowed`: an unknown or
/// repeated parameter, or bad percent-encoding, is a 400.
pub fn parse_query(query: &str, allowed: &[&'static str]) -> Result<Query, ApiError> {
    let mut pairs: Vec<(&'static str, String)> = Vec::new();
    for piece in query.split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = piece.split_once('=').unwrap_or((piece, ""));
        let name = percent_decode(raw_name).ok_or_else(|| ApiError::BadRequest {
            message: "the query string is not valid percent-encoded UTF-8".into(),
        })?;
        let Some(&known) = allowed.iter().find(|a| **a == name) else {
            return Err(ApiError::UnknownField {
                field: cut(&name, 64),
            });
        };
        let value = percent_decode(raw_value).ok_or(ApiError::InvalidField {
            field: known,
            reason: "is not valid percent-encoded UTF-8".into(),
        })?;
        if pairs.iter().any(|(n, _)| *n == known) {
            return Err(ApiError::InvalidField {
                field: known,
                reason: "is given more than once".into(),
            });
        }
        pairs.push((known, value));
    }
    Ok(Query { pairs })
}

impl Query {
    /// A parameter's value, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// An id filter: absent, or an id with `prefix` (a malformed one can match nothing, but is
    /// refused so that a typo is not mistaken for an empty result).
    pub fn id(&self, name: &'static str, prefix: &str) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if is_id(prefix, v) => Ok(Some(v.to_owned())),
            Some(_) => Err(ApiError::InvalidField {
                field: name,
                reason: format!("must be an id starting with `{prefix}_`"),
            }),
        }
    }

    /// `status`, one of `allowed`; absent is `None`.
    pub fn one_of(
        &self,
        name: &'static str,
        allowed: &[&'static str],
    ) -> Result<Option<&'static str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => allowed
                .iter()
                .find(|a| **a == v)
                .copied()
                .map(Some)
                .ok_or_else(|| ApiError::InvalidField {
                    field: name,
                    reason: format!("must be one of {}", allowed.join(", ")),
                }),
        }
    }

    /// `limit`: 1 to [`MAX_PAGE`], default [`DEFAULT_PAGE`].
    pub fn limit(&self) -> Result<u32, ApiError> {
        match self.get("limit") {
            None => Ok(DEFAULT_PAGE),
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n) && v.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| ApiError::InvalidField {
                    field: "limit",
                    reason: format!("must be a whole number from 1 to {MAX_PAGE}"),
                }),
        }
    }

    /// `cursor` of a list ordered by time then id (newest first).
    pub fn cursor(&self) -> Result<Option<Cursor>, ApiError> {
        self.get("cursor")
            .map(|v| Cursor::parse(v).ok_or_else(bad_cursor))
            .transpose()
    }

    /// `cursor` of the audit trail: the id of the last event seen, as the API writes it
    /// ([`EVENT_CURSOR_PATTERN`]: no sign, no leading zero, at most 18 digits).
    pub fn event_cursor(&self) -> Result<Option<i64>, ApiError> {
        self.get("cursor")
            .map(|v| parse_event_cursor(v).ok_or_else(bad_cursor))
            .transpose()
    }
}

/// What a list cursor ([`Cursor`]) looks like, as `openapi.json` states it: every string
/// matching it is accepted (a position no item has simply continues after it), every other
/// one is refused.
pub const CURSOR_PATTERN: &str = "^[0-9]{1,15}\\.[A-Za-z0-9_]{1,80}$";

/// What an audit-trail cursor looks like, as `openapi.json` states it: an event id written
/// without sign or leading zero, at most 18 digits (ids come from a sequence far below that).
pub const EVENT_CURSOR_PATTERN: &str = "^[1-9][0-9]{0,17}$";

/// Parses an audit-trail cursor; exactly the strings [`EVENT_CURSOR_PATTERN`] matches.
fn parse_event_cursor(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let canonical = (1..=18).contains(&b.len()) && b[0] != b'0' && b.iter().all(u8::is_ascii_digit);
    canonical.then(|| text.parse().ok()).flatten()
}

fn bad_cursor() -> ApiError {
    ApiError::InvalidField {
        field: "cursor",
        reason: "is not a cursor this API returned".into(),
    }
}

/// Percent-encodes a query parameter value: every byte but ASCII letters, digits and `-_.~`
/// (RFC 3986's unreserved characters) as `%XX`; [`parse_query`] reads it back.
pub fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The first `max_chars` characters of `text`, for quoting client input in an error.
pub(crate) fn cut(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// Where a list ordered by `(at, id)` descending continues: after the item with this time and
/// id. On the wire it is `{at}.{id}`, opaque to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The sort time (epoch ms) of the last item answered.
    pub at: i64,
    /// Its id.
    pub id: String,
}

impl Cursor {
    /// Parses the wire form.
    pub fn parse(text: &str) -> Option<Cursor> {
        let (at, id) = text.split_once('.')?;
        let valid_at = !at.is_empty() && at.len() <= 15 && at.bytes().all(|b| b.is_ascii_digit());
        let valid_id = (1..=80).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !(valid_at && valid_id) {
            return None;
        }
        Some(Cursor {
            at: at.parse().ok()?,
            id: id.to_owned(),
        })
    }

    /// The wire form.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.at, self.id)
    }
}

/// One page of a list: at most `limit` of the `limit + 1` items the database answered, and
/// where the next page starts when there was one more.
pub fn paginate<T>(
    mut items: Vec<T>,
    limit: u32,
    cursor_of: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let limit = limit as usize;
    if items.len() > limit {
        items.truncate(limit);
        let next = items.last().map(cursor_of);
        (items, next)
    } else {
        (items, None)
    }
}

/// A list answer: `{"data": [...], "next_cursor": ...}`.
pub fn list_body(data: Vec<Value>, next_cursor: Option<String>) -> Value {
    json!({ "data": data, "next_cursor": next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_strict() {
        let q = parse_query(
            "limit=5&status=active&cursor=12.lic_a",
            &["limit", "status", "cursor"],
        )
        .unwrap();
        assert_eq!(q.limit(), Ok(5));
        assert_eq!(q.one_of("status", &["active"]), Ok(Some("active")));
        assert_eq!(
            q.cursor(),
            Ok(Some(Cursor {
                at: 12,
                id: "lic_a".into()
            }))
        );
        assert_eq!(parse_query("", &[]).unwrap().limit(), Ok(DEFAULT_PAGE));
        assert!(matches!(
            parse_query("x=1", &["limit"]),
            Err(ApiError::UnknownField { .. })
        ));
        assert!(matches!(
            parse_query("limit=1&limit=2", &["limit"]),
            Err(ApiError::InvalidField { field: "limit", .. })
        ));
        assert!(parse_query("limit=%zz", &["limit"]).is_err());
        assert_eq!(
            parse_query("organization_id=org%5Fab", &["organization_id"])
                .unwrap()
                .id("organization_id", "org"),
            Ok(Some("org_ab".into()))
        );
        for bad in ["0", "101", "-1", "+5", "5x", ""] {
            let q = parse_query(&format!("limit={bad}"), &["limit"]).unwrap();
            assert!(q.limit().is_err(), "{bad}");
        }
        for bad in ["", "x", "1.", ".lic_a", "a.lic_a", "1.lic-a"] {
            assert!(Cursor::parse(bad).is_none(), "{bad}");
        }
        for bad in ["0", "01", "-1", "+1", "1x", "", "1234567890123456789"] {
            let q = parse_query(&format!("cursor={}", percent_encode(bad)), &["cursor"]).unwrap();
            assert!(q.event_cursor().is_err(), "{bad}");
        }
        for (good, n) in [
            ("1", 1),
            ("40", 40),
            ("999999999999999999", 999_999_999_999_999_999),
        ] {
            let q = parse_query(&format!("cursor={good}"), &["cursor"]).unwrap();
            assert_eq!(q.event_cursor(), Ok(Some(n)), "{good}");
        }
        // Any well-formed list cursor is taken, issued or not: it is only a position.
        let q = parse_query("cursor=999999999999999.x", &["cursor"]).unwrap();
        assert_eq!(
            q.cursor(),
            Ok(Some(Cursor {
                at: 999_999_999_999_999,
                id: "x".into()
            }))
        );
        for bad in [
            "1234567890123456.a",
            &format!("1.{}", "a".repeat(81)),
            "1.a.b",
            "1.a b",
        ] {
            assert!(Cursor::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn pages_carry_a_cursor_only_when_more_remain() {
        let (items, next) = paginate(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!((items, next.as_deref()), (vec![1, 2], Some("2")));
        let (items, next) = paginate(vec![1, 2], 2, |n| n.to_string());
        assert_eq!((items, next), (vec![1, 2], None));
    }
}
