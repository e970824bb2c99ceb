//! The usage routes: one call of `le_admin_usage` (migrations/0008_usage.sql), which computes
//! everything in PostgreSQL, shaped by `license_edge::admin::usage`.

use crate::{call, checked_id, decode};
use edge_io::json;
use license_edge::admin::usage::{parse_usage_range, usage_json, UsageRow, USAGE_PARAMETERS};
use license_edge::api::query::parse_query;
use license_edge::api::ApiError;
use spin_sdk::http::Response;
use spin_sdk::pg4::{Connection, ParameterValue as P};

/// `GET /licenses/{id}/usage` (`scope` `license`) or `GET /organizations/{id}/usage`
/// (`organization`). Tenancy is checked before (`confine`): a key reaches only its own.
pub(crate) fn usage(
    conn: &Connection,
    q: &str,
    scope: &'static str,
    id: &str,
    now: i64,
) -> Result<Response, ApiError> {
    let q = parse_query(q, USAGE_PARAMETERS)?;
    let range = parse_usage_range(&q, now)?;
    let id = match scope {
        "license" => checked_id("lic", id, "license")?,
        _ => checked_id("org", id, "organization")?,
    };
    let (_, body) = call(
        conn,
        "SELECT * FROM le_admin_usage($1, $2, $3::bigint, $4::bigint)",
        &[
            P::Str(scope.to_owned()),
            P::Str(id.clone()),
            P::Int64(range.from),
            P::Int64(range.to),
        ],
    )?;
    let row: UsageRow = decode(body)?;
    Ok(json(200, &usage_json(scope, &id, range, &row)))
}
