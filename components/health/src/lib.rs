//! The `health` component: liveness (touches nothing) and readiness (a key-value round trip and
//! `SELECT 1` on PostgreSQL), as the service it replaces answered them; and the OpenAPI
//! document of the whole API (`openapi.json`, embedded at build time; touches nothing).

use edge_io::{
    allow_methods, error, json, new_request_id, normalized_path, now_millis, read_request,
};
use license_edge::api::ApiError;
use license_edge::time::rfc3339_from_millis;
use serde_json::json;
use spin_sdk::http::{IncomingRequest, IntoResponse};
use spin_sdk::http_component;
use spin_sdk::{key_value, pg4, variables};

const SERVICE: &str = "license-edge";
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The OpenAPI 3.1 document of the whole API, as kept at the repository root.
const OPENAPI: &str = include_str!("../../../openapi.json");

#[http_component]
async fn handle(req: IncomingRequest) -> impl IntoResponse {
    let request_id = new_request_id();
    // No route here takes a body: none is kept.
    let req = match read_request(req, 0).await {
        Ok(req) => req,
        Err(e) => return error(&e, &request_id),
    };
    let path = normalized_path(&req);
    let outcome = match path.as_str() {
        "/api/v1/health" => allow_methods(&req, &["GET"]).map(|()| liveness()),
        "/api/v1/health/ready" => allow_methods(&req, &["GET"]).map(|()| readiness()),
        "/api/v1/openapi.json" => allow_methods(&req, &["GET"]).map(|()| openapi()),
        _ => Err(ApiError::NotFound),
    };
    outcome.unwrap_or_else(|e| error(&e, &request_id))
}

fn liveness() -> spin_sdk::http::Response {
    json(
        200,
        &json!({
            "status": "healthy",
            "timestamp": rfc3339_from_millis(now_millis()),
            "service": SERVICE,
            "version": VERSION,
        }),
    )
}

fn openapi() -> spin_sdk::http::Response {
    spin_sdk::http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("cache-control", "public, max-age=300")
        .body(OPENAPI)
        .build()
}

fn readiness() -> spin_sdk::http::Response {
    let database = check_database();
    let key_value = check_key_value();
    let checks = json!({
        "database": if database.is_ok() { "connected" } else { "unavailable" },
        "key_value": if key_value.is_ok() { "connected" } else { "unavailable" },
    });
    let timestamp = rfc3339_from_millis(now_millis());
    let failures: Vec<String> = [database.err(), key_value.err()]
        .into_iter()
        .flatten()
        .collect();
    if failures.is_empty() {
        json(
            200,
            &json!({"status": "ready", "timestamp": timestamp, "service": SERVICE, "version": VERSION, "checks": checks}),
        )
    } else {
        json(
            503,
            &json!({"status": "not_ready", "timestamp": timestamp, "service": SERVICE, "version": VERSION, "checks": checks, "error": failures.join("; ")}),
        )
    }
}

/// `SELECT 1` on the configured database. The returned text names the failing check and its
/// kind, never the connection string (it may hold a password).
fn check_database() -> Result<(), String> {
    let url = variables::get("database_url").map_err(|e| {
        eprintln!("readiness: database_url variable: {e}");
        "database: not configured".to_owned()
    })?;
    let conn = pg4::Connection::open(&url).map_err(|e| {
        eprintln!("readiness: database open: {e}");
        "database: connection failed".to_owned()
    })?;
    let rows = conn.query("SELECT 1", &[]).map_err(|e| {
        eprintln!("readiness: database query: {e}");
        "database: query failed".to_owned()
    })?;
    if rows.rows.len() == 1 {
        Ok(())
    } else {
        Err("database: unexpected answer to SELECT 1".to_owned())
    }
}

/// A read of one key in the default store: a full round trip to the backend.
fn check_key_value() -> Result<(), String> {
    let store = key_value::Store::open_default().map_err(|e| {
        eprintln!("readiness: key-value open: {e}");
        "key_value: store unavailable".to_owned()
    })?;
    store.get("health:probe").map_err(|e| {
        eprintln!("readiness: key-value get: {e}");
        "key_value: read failed".to_owned()
    })?;
    Ok(())
}
