//! The `validate` component: the hot path. Verifies a license token against the public key set
//! and checks the edge read model (key-value store) for suspension, revocation and ended
//! sessions. It never touches PostgreSQL (its manifest entry has no outbound host), so it keeps
//! answering when the database is down. It also serves the public key set as JWKS.

use edge_http::{allow_methods, error, json, new_request_id, normalized_path, now_millis};
use license_edge::api::ApiError;
use license_edge::edge::{license_key, session_key, standing, Standing};
use license_edge::validate::{
    invalid_body, parse_request, standing_refusal, token_refusal_code, valid_body,
};
use license_edge::{verify, KeySet, Policy};
use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::{key_value, variables};

/// How long clients and caches may keep the key set. A new key must be published at least
/// this long before tokens are signed with it (see README, key rotation).
const JWKS_MAX_AGE_S: u32 = 300;

#[http_component]
fn handle(req: Request) -> impl IntoResponse {
    let request_id = new_request_id();
    let result = match normalized_path(&req).as_str() {
        "/api/v1/licenses/validate" => {
            allow_methods(&req, &["POST"]).and_then(|()| validate(&req, &request_id))
        }
        "/.well-known/jwks.json" => allow_methods(&req, &["GET"]).and_then(|()| jwks()),
        _ => Err(ApiError::NotFound),
    };
    result.unwrap_or_else(|e| error(&e, &request_id))
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.header(name).and_then(|v| v.as_str())
}

fn key_set() -> Result<KeySet, ApiError> {
    let text = variables::get("public_keys").map_err(|e| {
        eprintln!("validate: public_keys variable: {e}");
        ApiError::Internal
    })?;
    KeySet::from_text(&text).map_err(|e| {
        eprintln!("validate: public_keys is not a usable key set: {e}");
        ApiError::Internal
    })
}

fn jwks() -> Result<Response, ApiError> {
    let keys = key_set()?;
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("cache-control", format!("public, max-age={JWKS_MAX_AGE_S}"))
        .body(keys.to_jwks_json())
        .build())
}

fn validate(req: &Request, request_id: &str) -> Result<Response, ApiError> {
    let request = parse_request(
        req.body(),
        header(req, "content-type"),
        header(req, "authorization"),
    )?;
    let keys = key_set()?;
    let mut policy = Policy::new();
    if let Ok(issuer) = variables::get("token_issuer") {
        policy = policy.with_issuer(issuer);
    }
    if let Some(product) = &request.product {
        policy = policy.with_audience(product.clone());
    }
    let now_ms = now_millis();
    let verified = match verify(
        &request.token,
        &keys,
        &policy,
        now_ms / 1000,
        request.machine_id.as_deref(),
    ) {
        Ok(v) => v,
        Err(e) => {
            let body = invalid_body(&token_refusal_code(&e), &e.to_string(), request_id);
            return Ok(json(200, &body));
        }
    };
    let claims = verified.claims();
    let store = key_value::Store::open_default().map_err(unavailable)?;
    let license = store.get(&license_key(&claims.sub)).map_err(unavailable)?;
    let session = store.get(&session_key(&claims.sid)).map_err(unavailable)?;
    match standing(license.as_deref(), session.as_deref(), now_ms) {
        Standing::Unknown => {
            eprintln!("validate: no read-model entry for license {}", claims.sub);
            Err(ApiError::RevocationUnavailable)
        }
        other => Ok(match standing_refusal(other) {
            Some((code, message)) => json(200, &invalid_body(code, message, request_id)),
            None => json(200, &valid_body(claims, request_id)),
        }),
    }
}

fn unavailable(e: key_value::Error) -> ApiError {
    eprintln!("validate: key-value store: {e}");
    ApiError::RevocationUnavailable
}
