//! The `acquire` component: seats. Acquire, heartbeat, release and borrow, each one call to a
//! seat function in PostgreSQL that takes the license row lock for the seat decision only, so
//! seats are never oversold whatever the concurrency or number of instances. A release is
//! written through to the key-value store so that validation sees the ended session at once.

use edge_http::db::{self, text_or_null, Row};
use edge_http::{
    allow_methods, end_session, error, header, json, new_request_id, normalized_path, now_millis,
    random16, read_request,
};
use license_edge::api::ApiError;
use license_edge::edge::SessionEnded;
use license_edge::seats::{
    authenticate, granted_body, is_session_id, parse_acquire, parse_borrow, rate_limit_headers,
    refusal, released_body, retry_after_s, session_claims, session_id, user_agent, SeatLicense,
    MAX_SEAT_BODY,
};
use license_edge::{issue, SigningKey};
use spin_sdk::http::{IncomingRequest, IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::pg4::ParameterValue as P;
use spin_sdk::{key_value, variables};

const ACQUIRE: &str = "/api/v1/licenses/acquire";
const SESSIONS: &str = "/api/v1/licenses/sessions/";

#[http_component]
async fn handle(req: IncomingRequest) -> impl IntoResponse {
    let request_id = new_request_id();
    read_request(req, MAX_SEAT_BODY)
        .await
        .and_then(|req| route(&req, &request_id))
        .unwrap_or_else(|e| with_rate_limit(error(&e, &request_id), &e))
}

fn route(req: &Request, request_id: &str) -> Result<Response, ApiError> {
    let path = normalized_path(req);
    if path == ACQUIRE {
        allow_methods(req, &["POST"])?;
        return acquire(req, request_id);
    }
    let rest = path.strip_prefix(SESSIONS).ok_or(ApiError::NotFound)?;
    let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
    match action {
        "" => allow_methods(req, &["DELETE"]).and_then(|()| release(req, id)),
        "heartbeat" => allow_methods(req, &["PATCH"]).and_then(|()| extend(req, id, false)),
        "borrow" => allow_methods(req, &["POST"]).and_then(|()| extend(req, id, true)),
        _ => Err(ApiError::NotFound),
    }
}

/// The rate-limit headers travel on the 429 itself.
fn with_rate_limit(mut resp: Response, err: &ApiError) -> Response {
    if let ApiError::RateLimited { retry_after_s, .. } = err {
        resp.set_header("retry-after", retry_after_s.to_string());
    }
    resp
}

fn signing_key() -> Result<(SigningKey, String), ApiError> {
    let key = variables::get("signing_key")
        .map_err(|e| {
            eprintln!("acquire: signing_key variable: {e}");
            ApiError::Internal
        })
        .and_then(|text| {
            SigningKey::from_text(&text).map_err(|e| {
                eprintln!("acquire: signing_key is not a usable key: {e}");
                ApiError::Internal
            })
        })?;
    let issuer = variables::get("token_issuer").unwrap_or_else(|_| "license-edge".to_owned());
    Ok((key, issuer))
}

fn seat_license(row: &Row) -> Result<SeatLicense, ApiError> {
    Ok(SeatLicense {
        id: row.required_text("o_license_id")?,
        organization_id: row.required_text("o_organization_id")?,
        product: row.required_text("o_product")?,
        plan: row.required_text("o_plan")?,
        features: row.text_array("o_features")?,
        max_seats: row.count("o_max_seats")?,
        expires_at: row.int("o_license_expires_at")?,
        lease_seconds: row.count("o_lease_seconds")?,
    })
}

fn acquire(req: &Request, request_id: &str) -> Result<Response, ApiError> {
    let key_hash = authenticate(header(req, "authorization"))?;
    let request = parse_acquire(req.body(), header(req, "content-type"))?;
    // The key is read before the seat is taken: a seat must never be held without a token.
    let (key, issuer) = signing_key()?;
    let now = now_millis();
    let new_session = session_id(random16());
    let conn = db::open()?;
    let set = db::query(
        &conn,
        "SELECT * FROM le_acquire($1, $2, $3, $4, ($5::text)::jsonb, $6)",
        &[
            P::Str(key_hash),
            P::Str(request.machine_hash.clone()),
            P::Str(new_session),
            text_or_null(user_agent(header(req, "user-agent")).as_deref()),
            P::Str(request.metadata.to_string()),
            P::Int64(now),
        ],
    )?;
    let row = Row::first(&set)?;
    let outcome = row.required_text("o_outcome")?;
    let rate_headers = match (
        row.int("o_rate_limit")?,
        row.int("o_rate_remaining")?,
        row.int("o_rate_reset_at")?,
    ) {
        (Some(limit), Some(remaining), Some(reset)) => rate_limit_headers(
            u32::try_from(limit).unwrap_or(u32::MAX),
            u32::try_from(remaining).unwrap_or(0),
            reset,
            now,
            outcome == "rate_limited",
        ),
        _ => Vec::new(),
    };
    let result = match outcome.as_str() {
        "rate_limited" => Err(ApiError::RateLimited {
            limit: row.count("o_rate_limit")?,
            retry_after_s: retry_after_s(row.required_int("o_rate_reset_at")?, now),
        }),
        "no_seats" => Err(ApiError::NoSeatsAvailable {
            max_seats: row.count("o_max_seats")?,
            active_seats: row.count("o_active_seats")?,
            next_available_at: row.int("o_next_available_at")?,
        }),
        "created" | "existing" => {
            let license = seat_license(&row)?;
            let session = row.required_text("o_session_id")?;
            let expires = row.required_int("o_session_expires_at")?;
            let claims = session_claims(
                &issuer,
                &license,
                &session,
                &request.machine_hash,
                now,
                expires,
            );
            let token = issue(&key, &claims).map_err(|e| {
                eprintln!("acquire: issuing the token failed: {e}");
                ApiError::Internal
            })?;
            let active = row.count("o_active_seats").ok();
            let status = if outcome == "created" { 201 } else { 200 };
            Ok(json(
                status,
                &granted_body(&session, &token, expires, &license, active),
            ))
        }
        other => Err(refusal(other).unwrap_or(ApiError::Internal)),
    };
    let mut resp = match result {
        Ok(resp) => resp,
        Err(e) => with_rate_limit(error(&e, request_id), &e),
    };
    for (name, value) in rate_headers {
        resp.set_header(name, value);
    }
    Ok(resp)
}

/// Heartbeat (`borrow == false`) or borrow: both extend a live session and answer a new token.
fn extend(req: &Request, id: &str, borrow: bool) -> Result<Response, ApiError> {
    let key_hash = authenticate(header(req, "authorization"))?;
    if !is_session_id(id) {
        return Err(ApiError::SessionNotFound);
    }
    let duration = if borrow {
        P::Int64(i64::from(parse_borrow(
            req.body(),
            header(req, "content-type"),
        )?))
    } else {
        P::DbNull
    };
    let (key, issuer) = signing_key()?;
    let now = now_millis();
    let conn = db::open()?;
    let set = db::query(
        &conn,
        "SELECT * FROM le_extend($1, $2, $3::bigint, $4)",
        &[
            P::Str(key_hash),
            P::Str(id.to_owned()),
            duration,
            P::Int64(now),
        ],
    )?;
    let row = Row::first(&set)?;
    match row.required_text("o_outcome")?.as_str() {
        "renewed" | "borrowed" => {
            let license = seat_license(&row)?;
            let expires = row.required_int("o_session_expires_at")?;
            let machine = row.required_text("o_machine_hash")?;
            let claims = session_claims(&issuer, &license, id, &machine, now, expires);
            let token = issue(&key, &claims).map_err(|e| {
                eprintln!("acquire: issuing the token failed: {e}");
                ApiError::Internal
            })?;
            Ok(json(
                200,
                &granted_body(id, &token, expires, &license, None),
            ))
        }
        "borrow_too_long" => Err(ApiError::BorrowTooLong {
            max_seconds: row.count("o_max_borrow_seconds")?,
        }),
        other => Err(refusal(other).unwrap_or(ApiError::Internal)),
    }
}

fn release(req: &Request, id: &str) -> Result<Response, ApiError> {
    let key_hash = authenticate(header(req, "authorization"))?;
    if !is_session_id(id) {
        return Err(ApiError::SessionNotFound);
    }
    let now = now_millis();
    let conn = db::open()?;
    let set = db::query(
        &conn,
        "SELECT * FROM le_release($1, $2, 'client', $3)",
        &[P::Str(key_hash), P::Str(id.to_owned()), P::Int64(now)],
    )?;
    let row = Row::first(&set)?;
    let outcome = row.required_text("o_outcome")?;
    if let Some(e) = refusal(&outcome) {
        return Err(e);
    }
    let ended_at = row.required_int("o_ended_at")?;
    let token_expires_at = row.required_int("o_token_expires_at")?;
    // Written on every release, repeated ones included, so that a retry after a key-value
    // failure still reaches the edge.
    if token_expires_at > now {
        let marker = SessionEnded {
            ended_at,
            token_expires_at,
        };
        let store = key_value::Store::open_default().map_err(kv_unavailable)?;
        end_session(&store, id, &marker).map_err(kv_unavailable)?;
    }
    Ok(json(200, &released_body(id, ended_at)))
}

fn kv_unavailable(e: key_value::Error) -> ApiError {
    eprintln!("acquire: the release is recorded but the key-value store failed: {e}");
    ApiError::RevocationUnavailable
}
