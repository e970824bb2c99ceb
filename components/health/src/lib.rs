//! The `health` component: liveness (touches nothing), readiness (a key-value round trip: what
//! every component needs; never PostgreSQL, so a database outage does not take validation out
//! of the load balancer), the database check (`SELECT 1` on PostgreSQL, a route of its own),
//! and the OpenAPI document of the whole API (`openapi.json`, embedded at build time; touches
//! nothing).

use edge_io::log::{self, RequestLog};
use edge_io::{allow_methods, error, json, normalized_path, now_millis, read_request};
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

const ROUTES: [&str; 4] = [
    "/api/v1/health",
    "/api/v1/health/ready",
    "/api/v1/health/db",
    "/api/v1/openapi.json",
];

#[http_component]
async fn handle(req: IncomingRequest) -> impl IntoResponse {
    let log = RequestLog::begin("health", &req);
    // No route here takes a body: none is kept.
    let resp = match read_request(req, 0).await {
        Ok(req) => serve(&req).unwrap_or_else(|e| error(&e, log.request_id())),
        Err(e) => error(&e, log.request_id()),
    };
    log.finish(resp)
}

fn serve(req: &spin_sdk::http::Request) -> Result<spin_sdk::http::Response, ApiError> {
    let path = normalized_path(req);
    let route = ROUTES
        .iter()
        .find(|r| **r == path)
        .ok_or(ApiError::NotFound)?;
    log::route(route);
    allow_methods(req, &["GET"])?;
    match *route {
        "/api/v1/health" => Ok(liveness()),
        "/api/v1/health/ready" => Ok(readiness()),
        "/api/v1/health/db" => database(),
        _ => Ok(openapi()),
    }
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

/// Readiness: what every component needs, the key-value store (validate answers from it
/// alone). PostgreSQL is not checked here: a database outage must not take validation out of
/// the load balancer; `/api/v1/health/db` reports it.
fn readiness() -> spin_sdk::http::Response {
    let key_value = check_key_value();
    let checks = json!({
        "key_value": if key_value.is_ok() { "connected" } else { "unavailable" },
    });
    let timestamp = rfc3339_from_millis(now_millis());
    match key_value {
        Ok(()) => json(
            200,
            &json!({"status": "ready", "timestamp": timestamp, "service": SERVICE, "version": VERSION, "checks": checks}),
        ),
        Err(failure) => {
            log::code("key_value_unavailable");
            json(
                503,
                &json!({"status": "not_ready", "timestamp": timestamp, "service": SERVICE, "version": VERSION, "checks": checks, "error": failure}),
            )
        }
    }
}

/// The database check: `SELECT 1` on the configured database; 200, or 503
/// `database_unavailable` in the error envelope. The failure's detail goes to the log, never
/// to the client (the connection string may hold a password).
fn database() -> Result<spin_sdk::http::Response, ApiError> {
    let url = variables::get("database_url").map_err(|e| {
        eprintln!("health: database_url variable: {e}");
        ApiError::DatabaseUnavailable
    })?;
    let conn = pg4::Connection::open(&url).map_err(|e| {
        eprintln!("health: database open: {e}");
        ApiError::DatabaseUnavailable
    })?;
    let rows = conn.query("SELECT 1", &[]).map_err(|e| {
        eprintln!("health: database query: {e}");
        ApiError::DatabaseUnavailable
    })?;
    if rows.rows.len() != 1 {
        eprintln!("health: SELECT 1 answered {} rows", rows.rows.len());
        return Err(ApiError::DatabaseUnavailable);
    }
    Ok(json(
        200,
        &json!({
            "status": "ok",
            "timestamp": rfc3339_from_millis(now_millis()),
            "service": SERVICE,
            "version": VERSION,
            "checks": {"database": "connected"},
        }),
    ))
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
