//! The admin API without I/O: who may call it, its route table, parsing and checking every
//! request, and shaping every answer. The admin component reads the request, calls one SQL
//! function of `migrations/0002_admin.sql` (which answers one row: an outcome and a JSON body),
//! writes the edge read model, and hands the rest to this module.
//!
//! Nothing here reads the clock or draws randomness: `now` and random bytes are arguments.
//! Times are Unix epoch milliseconds inside and RFC 3339 strings on the wire.

use crate::api::{constant_time_eq, json_body, ApiError, RouteSpec};
use crate::claims::hex;
use crate::edge::{LicenseState, LicenseStatus};
use crate::time::rfc3339_from_millis;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Where the admin API lives; every path under it needs the admin token.
pub const ADMIN_PREFIX: &str = "/api/v1/admin";
/// The largest admin request body.
pub const MAX_ADMIN_BODY: usize = 16 * 1024;
/// A configured admin token shorter than this is refused outright (every request gets 401).
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;
/// The most items one list answer holds.
pub const MAX_PAGE: u32 = 100;
/// Items per list answer when `limit` is not given.
pub const DEFAULT_PAGE: u32 = 50;
/// The most live sessions embedded in a license's detail (the sessions route lists them all).
pub const MAX_EMBEDDED_SESSIONS: u32 = 100;
/// The longest organization or product name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest code, plan or feature name, in characters (ASCII only).
pub const MAX_CODE_LEN: usize = 64;
/// The most features a license may list.
pub const MAX_FEATURES: usize = 64;
/// The longest `reason` of a suspension, reinstatement or revocation, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// The largest seat limit.
pub const MAX_SEATS: i64 = 1_000_000;
/// Lease length bounds, seconds (as the schema's CHECK).
pub const LEASE_SECONDS: (i64, i64) = (30, 86_400);
/// The longest borrow a license may allow, seconds (a year; 0 forbids borrowing).
pub const MAX_BORROW_SECONDS: i64 = 31_536_000;
/// The longest offline grace a license may give its tokens, seconds (7 days).
pub const MAX_OFFLINE_GRACE_SECONDS: i64 = 604_800;
/// Default offline grace, seconds (24 hours).
pub const DEFAULT_OFFLINE_GRACE_SECONDS: i64 = 86_400;
/// The highest acquire rate limit, per minute.
pub const MAX_RATE_LIMIT: i64 = 1_000_000;
/// Defaults of a new license.
pub const DEFAULT_PLAN: &str = "standard";
/// Default lease, seconds (six minutes: clients beat every three).
pub const DEFAULT_LEASE_SECONDS: i64 = 360;
/// Default acquire attempts per minute.
pub const DEFAULT_RATE_LIMIT: i64 = 20;

// --- Authorization -----------------------------------------------------------------------

/// Checks `Authorization: Bearer <admin token>` against the configured token in constant time.
/// Every failure is the same 401, whatever the path: an unauthenticated caller learns nothing,
/// not even whether a route exists. A configured token shorter than [`MIN_ADMIN_TOKEN_LEN`]
/// authorizes nobody.
pub fn authorize(authorization: Option<&str>, configured: &str) -> Result<(), ApiError> {
    let configured = configured.trim();
    let given = match crate::api::bearer(authorization) {
        Some(Ok(token)) => token,
        _ => return Err(ApiError::Unauthorized),
    };
    if configured.len() < MIN_ADMIN_TOKEN_LEN
        || !constant_time_eq(given.as_bytes(), configured.as_bytes())
    {
        return Err(ApiError::Unauthorized);
    }
    Ok(())
}

// --- Ids and keys --------------------------------------------------------------------------

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

/// A new license key from 32 random bytes: `LE-` and 52 characters of RFC 4648 base32
/// (256 bits). It is shown once, at creation; only its hash is stored.
pub fn new_license_key(random: [u8; 32]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut key = String::with_capacity(55);
    key.push_str("LE-");
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in random {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            key.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        key.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    key
}

// --- Routes --------------------------------------------------------------------------------

/// What an admin request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /organizations`
    ListOrganizations,
    /// `POST /organizations`
    CreateOrganization,
    /// `GET /organizations/{organization_id}`
    GetOrganization,
    /// `GET /organizations/{organization_id}/audit-events`
    OrganizationAudit,
    /// `GET /products`
    ListProducts,
    /// `POST /products`
    CreateProduct,
    /// `GET /products/{product_id}`
    GetProduct,
    /// `GET /licenses`
    ListLicenses,
    /// `POST /licenses`
    CreateLicense,
    /// `GET /licenses/{license_id}`
    GetLicense,
    /// `PATCH /licenses/{license_id}`
    UpdateLicense,
    /// `POST /licenses/{license_id}/suspend`
    SuspendLicense,
    /// `POST /licenses/{license_id}/reinstate`
    ReinstateLicense,
    /// `POST /licenses/{license_id}/revoke`
    RevokeLicense,
    /// `GET /licenses/{license_id}/sessions`
    LicenseSessions,
    /// `GET /licenses/{license_id}/audit-events`
    LicenseAudit,
    /// `DELETE /sessions/{session_id}`
    ReleaseSession,
    /// `POST /kv/rebuild`
    RebuildKv,
    /// `POST /kv/sweep`
    SweepKv,
    /// `POST /prune`
    Prune,
}

/// One method of an admin path.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// The method.
    pub method: &'static str,
    /// What it does.
    pub endpoint: Endpoint,
    /// Every status it can answer (besides an unexpected 500).
    pub statuses: &'static [u16],
}

/// One admin path and its methods.
#[derive(Debug, Clone, Copy)]
pub struct AdminPath {
    /// The template, with at most one `{parameter}` segment.
    pub pattern: &'static str,
    /// The methods, for a 405's `Allow` header; the same as `operations`' methods.
    pub methods: &'static [&'static str],
    /// What each method does.
    pub operations: &'static [Operation],
}

const fn op(method: &'static str, endpoint: Endpoint, statuses: &'static [u16]) -> Operation {
    Operation {
        method,
        endpoint,
        statuses,
    }
}

// Every operation may answer 400 (bad query string or body), 401 and 503 (database).
const LIST: &[u16] = &[200, 400, 401, 503];
const GET_ONE: &[u16] = &[200, 400, 401, 404, 503];
const CREATE: &[u16] = &[201, 400, 401, 413, 415, 503];
const CREATE_UNDER: &[u16] = &[201, 400, 401, 404, 413, 415, 503];
const CREATE_PRODUCT: &[u16] = &[201, 400, 401, 404, 409, 413, 415, 503];
const CHANGE: &[u16] = &[200, 400, 401, 404, 409, 413, 415, 503];
const REVOKE: &[u16] = &[200, 400, 401, 404, 413, 415, 503];
const RELEASE: &[u16] = &[200, 400, 401, 404, 503];
const BODY: &[u16] = &[200, 400, 401, 413, 415, 503];

/// The admin API: the component routes with it, and a test holds `openapi.json` to it.
pub const ADMIN_PATHS: &[AdminPath] = &[
    AdminPath {
        pattern: "/api/v1/admin/organizations",
        methods: &["GET", "POST"],
        operations: &[
            op("GET", Endpoint::ListOrganizations, LIST),
            op("POST", Endpoint::CreateOrganization, CREATE),
        ],
    },
    AdminPath {
        pattern: "/api/v1/admin/organizations/{organization_id}",
        methods: &["GET"],
        operations: &[op("GET", Endpoint::GetOrganization, GET_ONE)],
    },
    AdminPath {
        pattern: "/api/v1/admin/organizations/{organization_id}/audit-events",
        methods: &["GET"],
        operations: &[op("GET", Endpoint::OrganizationAudit, GET_ONE)],
    },
    AdminPath {
        pattern: "/api/v1/admin/products",
        methods: &["GET", "POST"],
        operations: &[
            op("GET", Endpoint::ListProducts, LIST),
            op("POST", Endpoint::CreateProduct, CREATE_PRODUCT),
        ],
    },
    AdminPath {
        pattern: "/api/v1/admin/products/{product_id}",
        methods: &["GET"],
        operations: &[op("GET", Endpoint::GetProduct, GET_ONE)],
    },
    AdminPath {
        pattern: "/api/v1/admin/licenses",
        methods: &["GET", "POST"],
        operations: &[
            op("GET", Endpoint::ListLicenses, LIST),
            op("POST", Endpoint::CreateLicense, CREATE_UNDER),
        ],
    },
    AdminPath {
        pattern: "/api/v1/admin/licenses/{license_id}",
        methods: &["GET", "PATCH"],
        operations: &[
            op("GET", Endpoint::GetLicense, GET_ONE),
            op("PATCH", Endpoint::UpdateLicense, CHANGE),
        ],
    },
    AdminPath {
        pattern: "/api/v1/admin/licenses/{license_id}/suspend",
        methods: &["POST"],
        operations: &[op("POST", Endpoint::SuspendLicense, CHANGE)],
    },
    AdminPath {
        pattern: "/api/v1/admin/licenses/{license_id}/reinstate",
        methods: &["POST"],
        operations: &[op("POST", Endpoint::ReinstateLicense, CHANGE)],
    },
    AdminPath {
        pattern: "/api/v1/admin/licenses/{license_id}/revoke",
        methods: &["POST"],
        operations: &[op("POST", Endpoint::RevokeLicense, REVOKE)],
    },
    AdminPath {
        pattern: "/api/v1/admin/licenses/{license_id}/sessions",
        methods: &["GET"],
        operations: &[op("GET", Endpoint::LicenseSessions, GET_ONE)],
    },
    AdminPath {
        pattern: "/api/v1/admin/licenses/{license_id}/audit-events",
        methods: &["GET"],
        operations: &[op("GET", Endpoint::LicenseAudit, GET_ONE)],
    },
    AdminPath {
        pattern: "/api/v1/admin/sessions/{session_id}",
        methods: &["DELETE"],
        operations: &[op("DELETE", Endpoint::ReleaseSession, RELEASE)],
    },
    AdminPath {
        pattern: "/api/v1/admin/kv/rebuild",
        methods: &["POST"],
        operations: &[op("POST", Endpoint::RebuildKv, LIST)],
    },
    AdminPath {
        pattern: "/api/v1/admin/kv/sweep",
        methods: &["POST"],
        operations: &[op("POST", Endpoint::SweepKv, LIST)],
    },
    AdminPath {
        pattern: "/api/v1/admin/prune",
        methods: &["POST"],
        operations: &[op("POST", Endpoint::Prune, BODY)],
    },
];

/// Every admin operation as a [`RouteSpec`].
pub fn routes() -> impl Iterator<Item = RouteSpec> {
    ADMIN_PATHS.iter().flat_map(|p| {
        p.operations.iter().map(|o| RouteSpec {
            method: o.method,
            path: p.pattern,
            statuses: o.statuses,
        })
    })
}

/// A routed admin request: the endpoint and the path parameter, if the route has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// What is asked.
    pub endpoint: Endpoint,
    /// The `{parameter}` segment's text, unchecked.
    pub param: Option<String>,
}

/// Routes a (normalized, query-less) path and method. `HEAD` is routed as `GET`.
/// An unknown path is 404; a known path with another method is 405.
pub fn route(method: &str, path: &str) -> Result<Routed, ApiError> {
    let method = if method == "HEAD" { "GET" } else { method };
    for spec in ADMIN_PATHS {
        let Some(param) = match_pattern(spec.pattern, path) else {
            continue;
        };
        let operation = spec.operations.iter().find(|o| o.method == method).ok_or(
            ApiError::MethodNotAllowed {
                allowed: spec.methods,
            },
        )?;
        return Ok(Routed {
            endpoint: operation.endpoint,
            param,
        });
    }
    Err(ApiError::NotFound)
}

/// `Some(param)` when `path` fits `pattern` (`param` is the `{…}` segment, if any).
fn match_pattern(pattern: &str, path: &str) -> Option<Option<String>> {
    let mut pattern_parts = pattern.split('/');
    let mut path_parts = path.split('/');
    let mut param = None;
    loop {
        match (pattern_parts.next(), path_parts.next()) {
            (None, None) => return Some(param),
            (Some(p), Some(s)) if p.starts_with('{') => {
                if s.is_empty() {
                    return None;
                }
                param = Some(s.to_owned());
            }
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

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

    /// `cursor` of the audit trail: the id of the last event seen.
    pub fn event_cursor(&self) -> Result<Option<i64>, ApiError> {
        self.get("cursor")
            .map(|v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0 && v.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(bad_cursor)
            })
            .transpose()
    }
}

fn bad_cursor() -> ApiError {
    ApiError::InvalidField {
        field: "cursor",
        reason: "is not a cursor this API returned".into(),
    }
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

fn cut(text: &str, max_chars: usize) -> String {
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

// --- Request bodies --------------------------------------------------------------------------

type Object = Map<String, Value>;

fn object(
    body: &[u8],
    content_type: Option<&str>,
    known: &[&'static str],
) -> Result<Object, ApiError> {
    let object = json_body(body, content_type, MAX_ADMIN_BODY)?;
    if let Some(unknown) = object.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError::UnknownField {
            field: cut(unknown, 64),
        });
    }
    Ok(object)
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ApiError {
    ApiError::InvalidField {
        field,
        reason: reason.into(),
    }
}

/// A required field: absent or null is `missing_field`.
fn required<'a>(object: &'a Object, field: &'static str) -> Result<&'a Value, ApiError> {
    match object.get(field) {
        None | Some(Value::Null) => Err(ApiError::MissingField { field }),
        Some(v) => Ok(v),
    }
}

/// A human-readable name: 1 to `max` characters, none of them NUL (PostgreSQL text cannot
/// hold it). Kept as given; the same rule as `openapi.json` states, so that the document and
/// the server agree on every input.
fn name(value: &Value, field: &'static str, max: usize) -> Result<String, ApiError> {
    let s = value
        .as_str()
        .ok_or_else(|| invalid(field, "must be a string"))?;
    if s.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if s.contains('\0') {
        return Err(invalid(field, "must not contain NUL characters"));
    }
    if s.chars().count() > max {
        return Err(invalid(field, format!("must be at most {max} characters")));
    }
    Ok(s.to_owned())
}

/// A machine-readable code: an ASCII letter or digit, then up to 63 letters, digits, `.`, `_`
/// or `-`; `lower` also refuses upper case (product codes become token audiences).
fn code(value: &Value, field: &'static str, lower: bool) -> Result<String, ApiError> {
    let s = value
        .as_str()
        .ok_or_else(|| invalid(field, "must be a string"))?;
    let first_ok = s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    let rest_ok = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    let case_ok = !lower || !s.bytes().any(|b| b.is_ascii_uppercase());
    if !(first_ok && rest_ok && case_ok && s.len() <= MAX_CODE_LEN) {
        let letters = if lower {
            "lower-case letters"
        } else {
            "letters"
        };
        return Err(invalid(
            field,
            format!(
                "must be 1 to {MAX_CODE_LEN} {letters}, digits, `.`, `_` or `-`, starting with a letter or digit"
            ),
        ));
    }
    Ok(s.to_owned())
}

/// A whole number in `min..=max` (`3.0` counts as whole, as in JSON Schema).
fn integer(value: &Value, field: &'static str, min: i64, max: i64) -> Result<i64, ApiError> {
    let n = match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                .map(|f| f as i64)
        }),
        _ => None,
    };
    n.filter(|n| (min..=max).contains(n))
        .ok_or_else(|| invalid(field, format!("must be a whole number from {min} to {max}")))
}

fn id_field(value: &Value, field: &'static str, prefix: &str) -> Result<String, ApiError> {
    match value.as_str() {
        Some(s) if is_id(prefix, s) => Ok(s.to_owned()),
        _ => Err(invalid(
            field,
            format!("must be an id starting with `{prefix}_`"),
        )),
    }
}

fn features(value: &Value) -> Result<Vec<String>, ApiError> {
    let items = value
        .as_array()
        .ok_or_else(|| invalid("features", "must be an array of feature names"))?;
    if items.len() > MAX_FEATURES {
        return Err(invalid(
            "features",
            format!("must list at most {MAX_FEATURES} features"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let feature = code(item, "features", false)?;
        if out.contains(&feature) {
            return Err(invalid("features", "must not list a feature twice"));
        }
        out.push(feature);
    }
    Ok(out)
}

/// An RFC 3339 date-time as epoch ms, from 1970 to 9999.
fn timestamp(value: &Value, field: &'static str) -> Result<i64, ApiError> {
    value
        .as_str()
        .and_then(parse_rfc3339)
        .filter(|ms| *ms >= 0)
        .ok_or_else(|| {
            invalid(
                field,
                "must be an RFC 3339 date-time from 1970 on, e.g. 2027-01-31T00:00:00Z",
            )
        })
}

/// Parses an RFC 3339 date-time (`2027-01-31T12:00:00Z`, `…T12:00:00.5+02:00`; `T`/`Z` in
/// either case; a leap second counts as :59) to epoch ms. Fractions past milliseconds are
/// dropped.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let mut i = 19;
    let mut millis = 0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &text[start..i];
        let padded = format!("{:0<3}", &frac[..frac.len().min(3)]);
        millis = padded.parse::<i64>().ok()?;
    }
    let offset_minutes = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = digits(i + 1..i + 3)?;
            let m = digits(i + 4..i + 6)?;
            let _ = (h1, h2, m1, m2);
            if h > 23 || m > 59 {
                return None;
            }
            let total = h * 60 + m;
            if *sign == b'+' {
                total
            } else {
                -total
            }
        }
        _ => return None,
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `POST /organizations`: `{"name"}`.
pub fn parse_new_organization(body: &[u8], content_type: Option<&str>) -> Result<String, ApiError> {
    let object = object(body, content_type, &["name"])?;
    name(required(&object, "name")?, "name", MAX_NAME_CHARS)
}

/// A product to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    /// The owning organization.
    pub organization_id: String,
    /// Unique within the organization; the `aud` of its licenses' tokens.
    pub code: String,
    /// Display name.
    pub name: String,
}

/// `POST /products`: `{"organization_id", "code", "name"}`.
pub fn parse_new_product(body: &[u8], content_type: Option<&str>) -> Result<NewProduct, ApiError> {
    let object = object(body, content_type, &["organization_id", "code", "name"])?;
    Ok(NewProduct {
        organization_id: id_field(
            required(&object, "organization_id")?,
            "organization_id",
            "org",
        )?,
        code: code(required(&object, "code")?, "code", true)?,
        name: name(required(&object, "name")?, "name", MAX_NAME_CHARS)?,
    })
}

/// The license fields an admin sets, as names the SQL functions read.
const LICENSE_FIELDS: &[&str] = &[
    "max_seats",
    "expires_at",
    "plan",
    "features",
    "lease_seconds",
    "max_borrow_seconds",
    "offline_grace_seconds",
    "rate_limit_per_minute",
];

/// Checks one settable license field and returns its stored form (`expires_at` as epoch ms or
/// null; the rest as given).
fn license_field(field: &'static str, value: &Value) -> Result<Value, ApiError> {
    Ok(match field {
        "max_seats" => json!(integer(value, field, 0, MAX_SEATS)?),
        "expires_at" if value.is_null() => Value::Null,
        "expires_at" => json!(timestamp(value, field)?),
        "plan" => json!(code(value, field, false)?),
        "features" => json!(features(value)?),
        "lease_seconds" => json!(integer(value, field, LEASE_SECONDS.0, LEASE_SECONDS.1)?),
        "max_borrow_seconds" => json!(integer(value, field, 0, MAX_BORROW_SECONDS)?),
        "offline_grace_seconds" => json!(integer(value, field, 0, MAX_OFFLINE_GRACE_SECONDS)?),
        "rate_limit_per_minute" => json!(integer(value, field, 1, MAX_RATE_LIMIT)?),
        _ => {
            return Err(ApiError::UnknownField {
                field: field.into(),
            })
        }
    })
}

fn static_field(name: &str) -> &'static str {
    LICENSE_FIELDS
        .iter()
        .find(|f| **f == name)
        .copied()
        .unwrap_or("field")
}

/// A license to create: its product and every field, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLicense {
    /// The product it is for (its organization follows).
    pub product_id: String,
    /// Every settable field with its stored value, for the SQL function.
    pub fields: Value,
    /// When it ends, if it does (epoch ms).
    pub expires_at: Option<i64>,
}

/// `POST /licenses`: `{"product_id", "max_seats", "plan"?, "features"?, "expires_at"?,
/// "lease_seconds"?, "max_borrow_seconds"?, "offline_grace_seconds"?,
/// "rate_limit_per_minute"?}`. An end date must be in the future.
pub fn parse_new_license(
    body: &[u8],
    content_type: Option<&str>,
    now_ms: i64,
) -> Result<NewLicense, ApiError> {
    let mut known = vec!["product_id"];
    known.extend_from_slice(LICENSE_FIELDS);
    let object = object(body, content_type, &known)?;
    let product_id = id_field(required(&object, "product_id")?, "product_id", "prod")?;
    required(&object, "max_seats")?;
    let mut fields = json!({
        "plan": DEFAULT_PLAN,
        "features": [],
        "expires_at": null,
        "lease_seconds": DEFAULT_LEASE_SECONDS,
        "max_borrow_seconds": 0,
        "offline_grace_seconds": DEFAULT_OFFLINE_GRACE_SECONDS,
        "rate_limit_per_minute": DEFAULT_RATE_LIMIT,
    });
    for (key, value) in &object {
        if key == "product_id" || (value.is_null() && key != "expires_at") {
            continue;
        }
        let field = static_field(key);
        fields[field] = license_field(field, value)?;
    }
    let expires_at = fields["expires_at"].as_i64();
    if expires_at.is_some_and(|end| end <= now_ms) {
        return Err(invalid("expires_at", "must be in the future"));
    }
    Ok(NewLicense {
        product_id,
        fields,
        expires_at,
    })
}

/// `PATCH /licenses/{id}`: any of the settable fields (`expires_at: null` removes the end
/// date). Returns the checked fields in stored form; at least one must be given.
pub fn parse_license_patch(body: &[u8], content_type: Option<&str>) -> Result<Value, ApiError> {
    let object = object(body, content_type, LICENSE_FIELDS)?;
    let mut patch = Map::new();
    for (key, value) in &object {
        let field = static_field(key);
        if value.is_null() && field != "expires_at" {
            return Err(invalid(field, "must not be null"));
        }
        patch.insert(field.to_owned(), license_field(field, value)?);
    }
    if patch.is_empty() {
        return Err(ApiError::BadRequest {
            message: format!(
                "nothing to change: give at least one of {}",
                LICENSE_FIELDS.join(", ")
            ),
        });
    }
    Ok(Value::Object(patch))
}

/// The body of suspend, reinstate and revoke: optional `{"reason"}` kept in the audit trail.
pub fn parse_status_change(
    body: &[u8],
    content_type: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let object = object(body, content_type, &["reason"])?;
    match object.get("reason") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => name(v, "reason", MAX_REASON_CHARS).map(Some),
    }
}

/// How long ended sessions and audit events are kept by default, days.
pub const DEFAULT_RETENTION_DAYS: (i64, i64) = (90, 365);
/// The longest retention a prune accepts, days (ten years).
pub const MAX_RETENTION_DAYS: i64 = 3650;

/// What a prune keeps: ended sessions for `sessions_days` after their tokens stopped
/// validating, audit events for `audit_days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Days an ended session stays after its tokens stopped validating.
    pub sessions_days: i64,
    /// Days an audit event stays.
    pub audit_days: i64,
}

/// The body of a prune: `{"sessions_older_than_days"?, "audit_older_than_days"?}` (defaults
/// [`DEFAULT_RETENTION_DAYS`]; 1 to [`MAX_RETENTION_DAYS`]).
pub fn parse_prune(body: &[u8], content_type: Option<&str>) -> Result<Retention, ApiError> {
    const FIELDS: [&str; 2] = ["sessions_older_than_days", "audit_older_than_days"];
    let object = object(body, content_type, &FIELDS)?;
    let days = |field: &'static str, default: i64| match object.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => integer(v, field, 1, MAX_RETENTION_DAYS),
    };
    Ok(Retention {
        sessions_days: days(FIELDS[0], DEFAULT_RETENTION_DAYS.0)?,
        audit_days: days(FIELDS[1], DEFAULT_RETENTION_DAYS.1)?,
    })
}

/// What a status change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusAction {
    /// active -> suspended.
    Suspend,
    /// suspended -> active.
    Reinstate,
    /// anything -> revoked, for good.
    Revoke,
}

impl StatusAction {
    /// The name the SQL function and the audit trail use.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusAction::Suspend => "suspend",
            StatusAction::Reinstate => "reinstate",
            StatusAction::Revoke => "revoke",
        }
    }
}

// --- What the database answers -------------------------------------------------------------

/// An organization as the SQL functions answer it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Organization {
    /// `org_…`
    pub id: String,
    /// Display name.
    pub name: String,
    /// Epoch ms.
    pub created_at: i64,
}

/// A product as the SQL functions answer it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Product {
    /// `prod_…`
    pub id: String,
    /// Owner.
    pub organization_id: String,
    /// The tokens' audience.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Epoch ms.
    pub created_at: i64,
}

/// A license as the SQL functions answer it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct License {
    /// `lic_…`
    pub id: String,
    /// Owner.
    pub organization_id: String,
    /// Product.
    pub product_id: String,
    /// The product's code.
    pub product_code: String,
    /// Standing.
    pub status: LicenseStatus,
    /// Plan name.
    pub plan: String,
    /// Seat limit.
    pub max_seats: u32,
    /// Enabled features.
    pub features: Vec<String>,
    /// End (epoch ms), if any.
    pub expires_at: Option<i64>,
    /// Lease length, seconds.
    pub lease_seconds: u32,
    /// Longest borrow, seconds (0: none).
    pub max_borrow_seconds: u32,
    /// How long after `exp` an offline verifier may accept the license's tokens, seconds.
    pub offline_grace_seconds: u32,
    /// Acquire attempts per minute.
    pub rate_limit_per_minute: u32,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms.
    pub updated_at: i64,
    /// Bumped by every change; the read model's writers converge on it.
    pub version: i64,
}

impl License {
    /// The read-model entry for this license, written at `now_ms`.
    pub fn state(&self, now_ms: i64) -> LicenseState {
        license_state(self.status, self.expires_at, self.version, now_ms)
    }
}

/// A session (seat lease) as the SQL functions answer it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Session {
    /// `ses_…`
    pub id: String,
    /// Its license.
    pub license_id: String,
    /// Hash of the machine id.
    pub machine_hash: String,
    /// The client's `User-Agent`, if any.
    pub user_agent: Option<String>,
    /// Client metadata.
    pub metadata: Value,
    /// Epoch ms.
    pub started_at: i64,
    /// Epoch ms.
    pub last_heartbeat_at: i64,
    /// When the lease lapses unless renewed (epoch ms).
    pub expires_at: i64,
    /// End of an offline borrow, if any.
    pub borrowed_until: Option<i64>,
    /// When it ended, if it did.
    pub ended_at: Option<i64>,
    /// `released`, `force_released`, `lapsed`, ...
    pub end_reason: Option<String>,
    /// Until when it holds its seat (epoch ms): past its lease by the validation leeway, and
    /// to the end of a borrow even when ended.
    pub seat_until: i64,
}

/// An audit event as the SQL functions answer it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AuditEvent {
    /// Increasing id.
    pub id: i64,
    /// Epoch ms.
    pub occurred_at: i64,
    /// Organization, if known.
    pub organization_id: Option<String>,
    /// License, if known.
    pub license_id: Option<String>,
    /// Session, if any.
    pub session_id: Option<String>,
    /// `admin` or `client`.
    pub actor: String,
    /// e.g. `license.suspend`.
    pub action: String,
    /// e.g. `ok`, `no_seats`.
    pub outcome: String,
    /// Structured details.
    pub details: Value,
}

/// A license with its live seats, as the detail route answers it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LicenseDetail {
    /// The license.
    pub license: License,
    /// Live sessions now.
    pub active_seats: u32,
    /// The newest live sessions, at most [`MAX_EMBEDDED_SESSIONS`].
    #[serde(default)]
    pub sessions: Vec<Session>,
}

/// The license entry and session marker the rebuild writes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LicenseStanding {
    /// License id.
    pub id: String,
    /// Standing.
    pub status: LicenseStatus,
    /// End (epoch ms), if any.
    pub expires_at: Option<i64>,
    /// The license row's version.
    pub version: i64,
}

impl LicenseStanding {
    /// The read-model entry for this standing, written at `now_ms`.
    pub fn state(&self, now_ms: i64) -> LicenseState {
        license_state(self.status, self.expires_at, self.version, now_ms)
    }
}

/// A session that ended while its token may still verify.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EndedSession {
    /// Session id.
    pub id: String,
    /// When it ended.
    pub ended_at: i64,
    /// The latest `exp` of its tokens.
    pub token_expires_at: i64,
}

/// Reads a SQL function's JSON answer into `T`; a wrong shape is an internal error (the
/// component logs it).
pub fn from_db<T: DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    serde_json::from_value(body).map_err(|_| ApiError::Internal)
}

/// The error for a SQL function's refusal; `Ok` for the outcomes that succeed.
pub fn outcome(outcome: &str) -> Result<(), ApiError> {
    Err(match outcome {
        "ok" | "changed" | "unchanged" | "released" | "already_ended" => return Ok(()),
        "organization_not_found" => ApiError::NoSuch {
            resource: "organization",
        },
        "product_not_found" => ApiError::NoSuch {
            resource: "product",
        },
        "license_not_found" => ApiError::NoSuch {
            resource: "license",
        },
        "session_not_found" => ApiError::NoSuch {
            resource: "session",
        },
        "duplicate_product_code" => ApiError::DuplicateProductCode,
        "revoked_reinstate" => ApiError::RevocationIsFinal {
            action: "be reinstated",
        },
        "revoked_suspend" => ApiError::RevocationIsFinal {
            action: "be suspended",
        },
        "revoked_update" => ApiError::RevocationIsFinal {
            action: "be changed",
        },
        _ => ApiError::Internal,
    })
}

/// The read-model entry for a license's standing at row `version`, written at `now_ms`.
pub fn license_state(
    status: LicenseStatus,
    expires_at: Option<i64>,
    version: i64,
    now_ms: i64,
) -> LicenseState {
    LicenseState {
        status,
        expires_at,
        updated_at: now_ms,
        version,
    }
}

// --- Answers -------------------------------------------------------------------------------

fn time(ms: i64) -> Value {
    json!(rfc3339_from_millis(ms))
}

fn optional_time(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, time)
}

/// An organization on the wire.
pub fn organization_json(o: &Organization) -> Value {
    json!({ "id": o.id, "name": o.name, "created_at": time(o.created_at) })
}

/// A product on the wire.
pub fn product_json(p: &Product) -> Value {
    json!({
        "id": p.id,
        "organization_id": p.organization_id,
        "code": p.code,
        "name": p.name,
        "created_at": time(p.created_at),
    })
}

/// A license on the wire (never its key: only the hash is stored).
pub fn license_json(l: &License) -> Value {
    json!({
        "id": l.id,
        "organization_id": l.organization_id,
        "product_id": l.product_id,
        "product_code": l.product_code,
        "status": l.status.as_str(),
        "plan": l.plan,
        "max_seats": l.max_seats,
        "features": l.features,
        "expires_at": optional_time(l.expires_at),
        "lease_seconds": l.lease_seconds,
        "max_borrow_seconds": l.max_borrow_seconds,
        "offline_grace_seconds": l.offline_grace_seconds,
        "rate_limit_per_minute": l.rate_limit_per_minute,
        "created_at": time(l.created_at),
        "updated_at": time(l.updated_at),
    })
}

/// A newly created license: the license and, this once, its key.
pub fn created_license_json(l: &License, key: &str) -> Value {
    let mut body = license_json(l);
    body["license_key"] = json!(key);
    body
}

/// A license's detail: the license, its seats and its newest live sessions.
pub fn license_detail_json(d: &LicenseDetail, now_ms: i64) -> Value {
    let mut body = license_json(&d.license);
    body["active_seats"] = json!(d.active_seats);
    body["free_seats"] = json!(d.license.max_seats.saturating_sub(d.active_seats));
    body["sessions"] = Value::Array(d.sessions.iter().map(|s| session_json(s, now_ms)).collect());
    body
}

/// A session on the wire; `live` says whether it holds a seat at `now_ms`.
pub fn session_json(s: &Session, now_ms: i64) -> Value {
    json!({
        "id": s.id,
        "license_id": s.license_id,
        "machine_hash": s.machine_hash,
        "user_agent": s.user_agent,
        "metadata": s.metadata,
        "started_at": time(s.started_at),
        "last_heartbeat_at": time(s.last_heartbeat_at),
        "expires_at": time(s.expires_at),
        "borrowed_until": optional_time(s.borrowed_until),
        "ended_at": optional_time(s.ended_at),
        "end_reason": s.end_reason,
        "seat_until": time(s.seat_until),
        "live": s.seat_until > now_ms,
    })
}

/// An audit event on the wire.
pub fn audit_event_json(e: &AuditEvent) -> Value {
    json!({
        "id": e.id,
        "occurred_at": time(e.occurred_at),
        "organization_id": e.organization_id,
        "license_id": e.license_id,
        "session_id": e.session_id,
        "actor": e.actor,
        "action": e.action,
        "outcome": e.outcome,
        "details": e.details,
    })
}

/// What the caller should know after a change: live sessions above a lowered seat limit are
/// never ended, so say what happens instead.
pub fn seat_warnings(active_seats: u32, max_seats: u32) -> Vec<String> {
    if active_seats > max_seats {
        vec![format!(
            "{active_seats} live sessions exceed max_seats {max_seats}; they are not ended, and no new seat is granted until fewer than {max_seats} are live"
        )]
    } else {
        Vec::new()
    }
}

/// The answer to an update: the license, its live seats and any warnings.
pub fn updated_license_json(l: &License, active_seats: u32) -> Value {
    let mut body = license_json(l);
    body["active_seats"] = json!(active_seats);
    body["warnings"] = json!(seat_warnings(active_seats, l.max_seats));
    body
}

/// The answer to a force release.
pub fn released_json(
    session_id: &str,
    license_id: &str,
    ended_at: i64,
    seat_until: i64,
    already: bool,
) -> Value {
    json!({
        "session_id": session_id,
        "license_id": license_id,
        "ended_at": time(ended_at),
        "seat_until": time(seat_until),
        "outcome": if already { "already_ended" } else { "released" },
    })
}

/// One batch of the key-value sweep as the SQL function answers it: sessions whose entries
/// can go, in (expires_at, id) order, and the last one's place.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SweepBatch {
    /// Session ids.
    pub sessions: Vec<String>,
    /// Where the batch ended (`at` is the last session's `expires_at`), if it had any.
    pub cursor: Option<SweepCursor>,
    /// Sessions whose `expires_at` is at or before this (epoch ms) are swept.
    pub cutoff: i64,
}

/// A place in the sweep's (expires_at, id) order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SweepCursor {
    /// `expires_at` of the last session swept (epoch ms).
    pub at: i64,
    /// Its id.
    pub id: String,
}

/// The answer to a key-value sweep: how many sessions' entries were deleted, up to which
/// expiry, and whether more are waiting (call again).
pub fn sweep_json(sessions: u64, swept_until: Option<i64>, more: bool) -> Value {
    json!({
        "sessions_swept": sessions,
        "entries_deleted": sessions * 2,
        "swept_until": swept_until.map(time),
        "more": more,
    })
}

/// The answer to a key-value rebuild.
pub fn rebuild_json(licenses: u64, sessions: u64, started_at: i64, finished_at: i64) -> Value {
    json!({
        "licenses_written": licenses,
        "sessions_written": sessions,
        "entries_written": licenses + sessions,
        "started_at": time(started_at),
        "finished_at": time(finished_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "admin-token-0123456789";

    #[test]
    fn authorize_needs_the_exact_token() {
        assert_eq!(authorize(Some(&format!("Bearer {TOKEN}")), TOKEN), Ok(()));
        for bad in [
            None,
            Some("Bearer admin-token-012345678"),
            Some("Bearer admin-token-01234567890"),
            Some("Basic admin-token-0123456789"),
            Some("Bearer"),
            Some(TOKEN),
        ] {
            assert_eq!(
                authorize(bad, TOKEN),
                Err(ApiError::Unauthorized),
                "{bad:?}"
            );
        }
        // A short configured token authorizes nobody, even when matched.
        assert_eq!(
            authorize(Some("Bearer short"), "short"),
            Err(ApiError::Unauthorized)
        );
    }

    #[test]
    fn ids_and_keys_have_their_shapes() {
        let id = new_id("lic", [0xab; 16]);
        assert_eq!(id, format!("lic_{}", "ab".repeat(16)));
        assert!(is_id("lic", &id));
        for bad in [
            "lic_",
            "lic",
            "org_ab",
            "lic_a-b",
            "lic_a b",
            &format!("lic_{}", "a".repeat(65)),
        ] {
            assert!(!is_id("lic", bad), "{bad}");
        }
        let key = new_license_key([0; 32]);
        assert_eq!(key, format!("LE-{}", "A".repeat(52)));
        let key = new_license_key([0xff; 32]);
        assert_eq!(key.len(), 55);
        assert!(key[3..]
            .bytes()
            .all(|b| b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".contains(&b)));
        // RFC 4648 test vector: "foobar" -> MZXW6YTBOI; check the encoder's first bytes.
        let mut bytes = [0u8; 32];
        bytes[..6].copy_from_slice(b"foobar");
        assert!(new_license_key(bytes)[3..].starts_with("MZXW6YTBOI"));
    }

    #[test]
    fn routes_match_templates_and_refuse_other_methods() {
        let r = route("GET", "/api/v1/admin/licenses/lic_1").unwrap();
        assert_eq!(r.endpoint, Endpoint::GetLicense);
        assert_eq!(r.param.as_deref(), Some("lic_1"));
        assert_eq!(
            route("HEAD", "/api/v1/admin/licenses").unwrap().endpoint,
            Endpoint::ListLicenses
        );
        assert_eq!(
            route("POST", "/api/v1/admin/licenses/lic_1/revoke")
                .unwrap()
                .endpoint,
            Endpoint::RevokeLicense
        );
        assert_eq!(
            route("DELETE", "/api/v1/admin/licenses/lic_1"),
            Err(ApiError::MethodNotAllowed {
                allowed: &["GET", "PATCH"]
            })
        );
        for missing in [
            "/api/v1/admin",
            "/api/v1/admin/licenses/lic_1/explode",
            "/api/v1/admin/licenses//suspend",
            "/api/v1/admin/kv",
        ] {
            assert_eq!(route("GET", missing), Err(ApiError::NotFound), "{missing}");
        }
    }

    #[test]
    fn the_route_table_is_consistent() {
        for p in ADMIN_PATHS {
            let methods: Vec<&str> = p.operations.iter().map(|o| o.method).collect();
            assert_eq!(methods, p.methods, "{}", p.pattern);
            assert!(p.pattern.starts_with(ADMIN_PREFIX));
            for o in p.operations {
                assert!(o.statuses.contains(&401) && o.statuses.contains(&503));
            }
        }
        assert_eq!(routes().count(), 20);
    }

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
        let q = parse_query("cursor=0", &["cursor"]).unwrap();
        assert!(q.event_cursor().is_err());
    }

    #[test]
    fn pages_carry_a_cursor_only_when_more_remain() {
        let (items, next) = paginate(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!((items, next.as_deref()), (vec![1, 2], Some("2")));
        let (items, next) = paginate(vec![1, 2], 2, |n| n.to_string());
        assert_eq!((items, next), (vec![1, 2], None));
    }

    #[test]
    fn rfc3339_parses_every_form() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2026-11-27T08:12:45.123Z"),
            Some(1_795_767_165_123)
        );
        assert_eq!(
            parse_rfc3339("2026-11-27t08:12:45.1234567z"),
            Some(1_795_767_165_123)
        );
        assert_eq!(
            parse_rfc3339("2026-11-27T10:12:45.123+02:00"),
            Some(1_795_767_165_123)
        );
        assert_eq!(
            parse_rfc3339("2026-11-27T07:12:45.5-01:00"),
            Some(1_795_767_165_500)
        );
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400_000));
        for ms in [0, 951_782_400_000, 1_795_767_165_123, 4_102_444_799_999] {
            assert_eq!(parse_rfc3339(&rfc3339_from_millis(ms)), Some(ms));
        }
        for bad in [
            "",
            "2026-11-27",
            "2026-11-27T08:12:45",
            "2026-11-27 08:12:45Z",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-27T24:00:00Z",
            "2026-11-27T08:12:45.Z",
            "2026-11-27T08:12:45+0200",
            "2026-11-27T08:12:45Zx",
            "２026-11-27T08:12:45Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    fn body(v: Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    #[test]
    fn organization_and_product_bodies() {
        assert_eq!(
            parse_new_organization(&body(json!({"name": "Acme"})), None),
            Ok("Acme".into())
        );
        assert_eq!(
            parse_new_organization(b"{}", None),
            Err(ApiError::MissingField { field: "name" })
        );
        for bad in [
            json!({"name": ""}),
            json!({"name": "a\u{0}b"}),
            json!({"name": 1}),
            json!({"name": "x".repeat(201)}),
        ] {
            assert!(matches!(
                parse_new_organization(&body(bad), None),
                Err(ApiError::InvalidField { field: "name", .. })
            ));
        }
        assert!(matches!(
            parse_new_organization(&body(json!({"name": "a", "nmae": "b"})), None),
            Err(ApiError::UnknownField { .. })
        ));
        let p = parse_new_product(
            &body(json!({"organization_id": "org_1", "code": "cad-pro", "name": "CAD"})),
            None,
        )
        .unwrap();
        assert_eq!(p.code, "cad-pro");
        for bad in ["CAD", "-cad", "", "cad pro", &"c".repeat(65)] {
            let r = parse_new_product(
                &body(json!({"organization_id": "org_1", "code": bad, "name": "CAD"})),
                None,
            );
            assert!(
                matches!(r, Err(ApiError::InvalidField { field: "code", .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_new_product(
                &body(json!({"organization_id": "lic_1", "code": "c", "name": "n"})),
                None
            ),
            Err(ApiError::InvalidField {
                field: "organization_id",
                ..
            })
        ));
    }

    #[test]
    fn new_licenses_get_defaults_and_checked_fields() {
        let now = 1_000_000;
        let l = parse_new_license(
            &body(json!({"product_id": "prod_1", "max_seats": 3})),
            None,
            now,
        )
        .unwrap();
        assert_eq!(l.fields["plan"], "standard");
        assert_eq!(l.fields["lease_seconds"], 360);
        assert_eq!(l.fields["max_seats"], 3);
        assert_eq!(l.expires_at, None);
        let l = parse_new_license(
            &body(json!({"product_id": "prod_1", "max_seats": 3.0, "features": ["export", "cloud"],
                         "expires_at": "2030-01-01T00:00:00Z", "plan": "pro", "max_borrow_seconds": 3600})),
            None,
            now,
        )
        .unwrap();
        assert_eq!(l.fields["features"], json!(["export", "cloud"]));
        assert_eq!(l.expires_at, Some(1_893_456_000_000));
        assert_eq!(l.fields["expires_at"], 1_893_456_000_000_i64);
        assert_eq!(
            parse_new_license(&body(json!({"product_id": "prod_1"})), None, now),
            Err(ApiError::MissingField { field: "max_seats" })
        );
        for (field, value) in [
            ("max_seats", json!(-1)),
            ("max_seats", json!(1.5)),
            ("max_seats", json!("3")),
            ("lease_seconds", json!(29)),
            ("max_borrow_seconds", json!(MAX_BORROW_SECONDS + 1)),
            ("rate_limit_per_minute", json!(0)),
            ("features", json!(["a", "a"])),
            ("features", json!("a")),
            ("features", json!(["a b"])),
            ("expires_at", json!("1970-01-01T00:00:00Z")),
            ("expires_at", json!("tomorrow")),
            ("plan", json!("")),
        ] {
            let mut b = json!({"product_id": "prod_1", "max_seats": 3});
            b[field] = value.clone();
            let r = parse_new_license(&body(b), None, now);
            assert!(
                matches!(r, Err(ApiError::InvalidField { field: f, .. }) if f == field),
                "{field} {value} {r:?}"
            );
        }
    }

    #[test]
    fn patches_need_a_field_and_refuse_nulls_but_expiry() {
        let p =
            parse_license_patch(&body(json!({"max_seats": 2, "expires_at": null})), None).unwrap();
        assert_eq!(p, json!({"max_seats": 2, "expires_at": null}));
        assert!(matches!(
            parse_license_patch(b"{}", None),
            Err(ApiError::BadRequest { .. })
        ));
        assert!(matches!(
            parse_license_patch(&body(json!({"plan": null})), None),
            Err(ApiError::InvalidField { field: "plan", .. })
        ));
        assert!(matches!(
            parse_license_patch(&body(json!({"status": "active"})), None),
            Err(ApiError::UnknownField { .. })
        ));
        assert_eq!(parse_status_change(b"", None), Ok(None));
        assert_eq!(
            parse_status_change(&body(json!({"reason": "fraud"})), None),
            Ok(Some("fraud".into()))
        );
    }

    #[test]
    fn outcomes_map_to_errors() {
        assert_eq!(outcome("ok"), Ok(()));
        assert_eq!(
            outcome("license_not_found"),
            Err(ApiError::NoSuch {
                resource: "license"
            })
        );
        assert_eq!(
            outcome("duplicate_product_code"),
            Err(ApiError::DuplicateProductCode)
        );
        assert_eq!(
            outcome("revoked_reinstate").unwrap_err().describe().status,
            409
        );
        assert_eq!(outcome("???"), Err(ApiError::Internal));
    }

    #[test]
    fn answers_show_times_and_seats() {
        let license = License {
            id: "lic_1".into(),
            organization_id: "org_1".into(),
            product_id: "prod_1".into(),
            product_code: "cad".into(),
            status: LicenseStatus::Active,
            plan: "pro".into(),
            max_seats: 2,
            features: vec![],
            expires_at: None,
            lease_seconds: 360,
            max_borrow_seconds: 0,
            offline_grace_seconds: 86_400,
            rate_limit_per_minute: 20,
            created_at: 0,
            updated_at: 1000,
            version: 3,
        };
        let body = updated_license_json(&license, 3);
        assert_eq!(body["updated_at"], "1970-01-01T00:00:01.000Z");
        assert_eq!(body["expires_at"], Value::Null);
        assert!(body["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("3 live sessions exceed max_seats 2"));
        assert_eq!(updated_license_json(&license, 2)["warnings"], json!([]));
        let detail = LicenseDetail {
            license: license.clone(),
            active_seats: 3,
            sessions: vec![],
        };
        assert_eq!(license_detail_json(&detail, 0)["free_seats"], 0);
        let decoded: License = from_db(json!({
            "id": "lic_1", "organization_id": "org_1", "product_id": "prod_1", "product_code": "cad",
            "status": "active", "plan": "pro", "max_seats": 2, "features": [], "expires_at": null,
            "lease_seconds": 360, "max_borrow_seconds": 0, "offline_grace_seconds": 86400,
            "version": 3, "rate_limit_per_minute": 20,
            "created_at": 0, "updated_at": 1000
        }))
        .unwrap();
        assert_eq!(decoded, license);
        assert_eq!(
            from_db::<License>(json!({"id": 1})),
            Err(ApiError::Internal)
        );
    }
}
