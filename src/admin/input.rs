//! Request checks: every admin request body parsed and checked field by field, refused with
//! the [`ApiError`] that names the field.

use serde_json::{json, Map, Value};

use super::*;
use crate::api::query::cut;
use crate::api::request::is_id;
use crate::api::{json_body, ApiError};
use crate::seats::MAX_BORROW_SECONDS;
use crate::time::parse_rfc3339;

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

/// The years a date-time may be written with ([`TIMESTAMP_PATTERN`]): whatever its UTC offset,
/// the instant then lies between 1970 and 9999, which the API can show in RFC 3339.
pub const TIMESTAMP_YEARS: (i64, i64) = (1971, 9998);

/// The pattern `openapi.json` gives `expires_at` besides `format: date-time`: a year in
/// [`TIMESTAMP_YEARS`]. Every RFC 3339 date-time matching it is accepted, past or future.
pub const TIMESTAMP_PATTERN: &str =
    "^(197[1-9]|19[89][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-";

/// An RFC 3339 date-time, written with a year in [`TIMESTAMP_YEARS`], as epoch ms.
pub(crate) fn timestamp(value: &Value, field: &'static str) -> Result<i64, ApiError> {
    let year_ok = |s: &str| {
        s.get(..4)
            .filter(|y| y.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|y| y.parse::<i64>().ok())
            .is_some_and(|y| (TIMESTAMP_YEARS.0..=TIMESTAMP_YEARS.1).contains(&y))
    };
    value
        .as_str()
        .filter(|s| year_ok(s))
        .and_then(parse_rfc3339)
        .ok_or_else(|| {
            invalid(
                field,
                format!(
                    "must be an RFC 3339 date-time in the years {} to {}, e.g. 2027-01-31T00:00:00Z",
                    TIMESTAMP_YEARS.0, TIMESTAMP_YEARS.1
                ),
            )
        })
}

/// `POST /organizations`: `{"name"}`.
pub fn parse_new_organization(body: &[u8], content_type: Option<&str>) -> Result<String, ApiError> {
    let object = object(body, content_type, &["name"])?;
    name(required(&object, "name")?, "name", MAX_NAME_CHARS)
}

/// An organization API key to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// What it is for, shown in lists.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// `POST /organizations/{id}/keys`: `{"name", "role"?}`; the role is `read` unless `admin` is
/// asked for (the least a key can do).
pub fn parse_new_key(body: &[u8], content_type: Option<&str>) -> Result<NewKey, ApiError> {
    let object = object(body, content_type, &["name", "role"])?;
    let name = name(required(&object, "name")?, "name", MAX_NAME_CHARS)?;
    let role = match object.get("role") {
        None => Role::Read,
        Some(v) => v
            .as_str()
            .and_then(Role::parse)
            .ok_or_else(|| invalid("role", "must be \"admin\" or \"read\""))?,
    };
    Ok(NewKey { name, role })
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
    /// Whether its seats need a signed-in user (default false).
    pub sign_in_required: bool,
}

/// `POST /products`: `{"organization_id", "code", "name", "sign_in_required"?}`.
pub fn parse_new_product(body: &[u8], content_type: Option<&str>) -> Result<NewProduct, ApiError> {
    let object = object(
        body,
        content_type,
        &["organization_id", "code", "name", "sign_in_required"],
    )?;
    let sign_in_required = match object.get("sign_in_required") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("sign_in_required", "must be true or false")),
    };
    Ok(NewProduct {
        sign_in_required,
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
    "max_seats_per_user",
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
        "max_borrow_seconds" => json!(integer(value, field, 0, i64::from(MAX_BORROW_SECONDS))?),
        "offline_grace_seconds" => json!(integer(value, field, 0, MAX_OFFLINE_GRACE_SECONDS)?),
        "rate_limit_per_minute" => json!(integer(value, field, 1, MAX_RATE_LIMIT)?),
        "max_seats_per_user" if value.is_null() => Value::Null,
        "max_seats_per_user" => json!(integer(value, field, 1, MAX_SEATS)?),
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
/// "rate_limit_per_minute"?}`. An end date in the past is taken as given, as an update takes
/// it: the license is created already expired (acquire answers `license_expired`, validate
/// `LICENSE_EXPIRED`) until an update moves the date, e.g. when licenses that have run out
/// are brought over from another system.
pub fn parse_new_license(body: &[u8], content_type: Option<&str>) -> Result<NewLicense, ApiError> {
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
        if value.is_null() && field != "expires_at" && field != "max_seats_per_user" {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let l = parse_new_license(&body(json!({"product_id": "prod_1", "max_seats": 3})), None)
            .unwrap();
        assert_eq!(l.fields["plan"], "standard");
        assert_eq!(l.fields["lease_seconds"], 360);
        assert_eq!(l.fields["max_seats"], 3);
        assert_eq!(l.expires_at, None);
        let l = parse_new_license(
            &body(json!({"product_id": "prod_1", "max_seats": 3.0, "features": ["export", "cloud"],
                         "expires_at": "2030-01-01T00:00:00Z", "plan": "pro", "max_borrow_seconds": 3600})),
            None,
        )
        .unwrap();
        assert_eq!(l.fields["features"], json!(["export", "cloud"]));
        assert_eq!(l.expires_at, Some(1_893_456_000_000));
        assert_eq!(l.fields["expires_at"], 1_893_456_000_000_i64);
        assert_eq!(
            parse_new_license(&body(json!({"product_id": "prod_1"})), None),
            Err(ApiError::MissingField { field: "max_seats" })
        );
        // A past end date makes an expired license; the years are bounded so that any offset
        // keeps the instant inside 1970 to 9999.
        for (given, ms) in [
            ("2001-01-01T00:00:00Z", 978_307_200_000_i64),
            ("1971-01-01T00:00:00+23:59", 31_449_660_000),
            ("9998-12-31T23:59:59.999-23:59", 253_370_851_139_999),
        ] {
            let l = parse_new_license(
                &body(json!({"product_id": "prod_1", "max_seats": 1, "expires_at": given})),
                None,
            )
            .unwrap();
            assert_eq!(l.expires_at, Some(ms), "{given}");
        }
        for (field, value) in [
            ("max_seats", json!(-1)),
            ("max_seats", json!(1.5)),
            ("max_seats", json!("3")),
            ("lease_seconds", json!(29)),
            (
                "max_borrow_seconds",
                json!(i64::from(MAX_BORROW_SECONDS) + 1),
            ),
            ("rate_limit_per_minute", json!(0)),
            ("features", json!(["a", "a"])),
            ("features", json!("a")),
            ("features", json!(["a b"])),
            ("expires_at", json!("1970-01-01T00:00:00Z")),
            ("expires_at", json!("1970-12-31T23:00:00-02:00")),
            ("expires_at", json!("9999-01-01T00:00:00Z")),
            ("expires_at", json!("0001-01-01T00:00:00Z")),
            ("expires_at", json!("tomorrow")),
            ("plan", json!("")),
        ] {
            let mut b = json!({"product_id": "prod_1", "max_seats": 3});
            b[field] = value.clone();
            let r = parse_new_license(&body(b), None);
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
}
