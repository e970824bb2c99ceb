//! The `acquire` component: seats. Acquire, heartbeat, release and borrow, each decided by a
//! seat function in PostgreSQL that takes the license row lock for the seat decision only and
//! reads the database's clock after it, so seats are never oversold whatever the concurrency,
//! the number of instances or the clocks of the machines they run on. An acquire is two
//! statements: the key and rate limit (`le_acquire_attempt`, committed at once, no lock), then
//! the seat (`le_acquire_seat`). A release is written through to the key-value store so that
//! validation sees the ended session on the next request. Who signs tokens, and what happens
//! to a seat when signing fails, is [`signer`]'s.

mod signer;

use edge_io::db::{self, text_or_null, Row};
use edge_io::kv::{end_session, record_seat};
use edge_io::log::{self, RequestLog};
use edge_io::{
    allow_methods, error, header, json, normalized_path, now_millis, random16, read_request,
};
use license_edge::api::ApiError;
use license_edge::identity::{acquire_credentials, session_credential, SessionCredential};
use license_edge::outcome::SeatOutcome;
use license_edge::read_model::{marker_needed, SessionEnded};
use license_edge::seats::{
    granted_body, is_session_id, parse_acquire, parse_borrow, rate_limit_headers, refusal,
    released_body, retry_after_s, session_claims, session_id, user_agent, with_session_details,
    AcquireRequest, SeatLicense, SessionDetails, MAX_SEAT_BODY,
};
use license_edge_oidc::SignedInUser;
use signer::{release_unissued, undo_extend, Signing, Undo};
use spin_sdk::http::{IncomingRequest, IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value;
use spin_sdk::pg4::{Connection, ParameterValue as P};

mod settings;
mod signin;

use settings::SeatSettings;

const ACQUIRE: &str = "/api/v1/licenses/acquire";
const SESSIONS: &str = "/api/v1/licenses/sessions/";

#[http_component]
async fn handle(req: IncomingRequest) -> impl IntoResponse {
    let log = RequestLog::begin("acquire", &req);
    let request_id = log.request_id();
    let resp = read_request(req, MAX_SEAT_BODY)
        .await
        .and_then(|req| route(&req, request_id))
        .unwrap_or_else(|e| with_rate_limit(error(&e, request_id), &e));
    log.finish(resp)
}

fn route(req: &Request, request_id: &str) -> Result<Response, ApiError> {
    let path = normalized_path(req);
    if path == ACQUIRE {
        log::route(ACQUIRE);
        allow_methods(req, &["POST"])?;
        return acquire(req, request_id);
    }
    let rest = path.strip_prefix(SESSIONS).ok_or(ApiError::NotFound)?;
    let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
    if is_session_id(id) {
        log::session(id);
    }
    match action {
        "" => {
            log::route("/api/v1/licenses/sessions/{session_id}");
            allow_methods(req, &["DELETE"]).and_then(|()| release(req, id))
        }
        "heartbeat" => {
            log::route("/api/v1/licenses/sessions/{session_id}/heartbeat");
            allow_methods(req, &["PATCH"]).and_then(|()| extend(req, id, false))
        }
        "borrow" => {
            log::route("/api/v1/licenses/sessions/{session_id}/borrow");
            allow_methods(req, &["POST"]).and_then(|()| extend(req, id, true))
        }
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

fn seat_license(row: &Row) -> Result<SeatLicense, ApiError> {
    let license = SeatLicense {
        id: row.required_text("o_license_id")?,
        organization_id: row.required_text("o_organization_id")?,
        product: row.required_text("o_product")?,
        plan: row.required_text("o_plan")?,
        features: row.text_array("o_features")?,
        max_seats: row.count("o_max_seats")?,
        expires_at: row.int("o_license_expires_at")?,
        lease_seconds: row.count("o_lease_seconds")?,
        offline_grace_seconds: row.count("o_offline_grace_seconds")?,
    };
    log::organization(&license.organization_id);
    log::license(&license.id);
    Ok(license)
}

/// A refused license key: logged with where it came from (the last `spin-client-addr`, which
/// Spin sets after any the client sent), never written to PostgreSQL.
fn unknown_key(req: &Request, route: &str) -> ApiError {
    let from = req
        .headers()
        .filter(|(name, _)| name.eq_ignore_ascii_case("spin-client-addr"))
        .filter_map(|(_, value)| value.as_str().map(str::to_owned))
        .last()
        .unwrap_or_else(|| "unknown".to_owned());
    eprintln!("acquire: unknown license key on {route} from {from}");
    ApiError::Unauthorized
}

/// Issues the token of a granted session. Its `iat`/`nbf` come from this instance's clock,
/// the one thing that clock is used for: its `exp` and every seat decision come from the
/// database's.
fn session_token(
    signing: &Signing,
    license: &SeatLicense,
    session: &str,
    machine_hash: &str,
    expires: i64,
) -> Result<String, ApiError> {
    let claims = session_claims(
        &signing.issuer,
        license,
        session,
        machine_hash,
        now_millis(),
        expires,
    );
    signing.sign(&claims)
}

fn acquire(req: &Request, request_id: &str) -> Result<Response, ApiError> {
    let request = parse_acquire(req.body(), header(req, "content-type"))?;
    let credentials =
        acquire_credentials(header(req, "authorization"), request.license_key.as_deref())?;
    let key_hash = credentials.key_hash;
    // The user is checked before anything is written: a refused ID token costs no attempt.
    let user = credentials
        .id_token
        .as_deref()
        .map(signin::signed_in_user)
        .transpose()?;
    // The signer is read before the seat is taken: a seat must never be held without a token.
    let settings = SeatSettings::read()?;
    let parts = settings.parts()?;
    let signing = signer::configured(&parts)?;
    let conn = db::open_url(parts.database_url)?;
    // Step 1: the key and the rate limit, committed on their own, so that refused attempts
    // never wait for (or hold up) a seat decision.
    let set = db::query(
        &conn,
        "SELECT * FROM le_acquire_attempt($1)",
        &[P::Str(key_hash)],
    )?;
    let attempt = Row::first(&set)?;
    let outcome = attempt.outcome(SeatOutcome::parse)?;
    if outcome == SeatOutcome::UnknownKey {
        return Err(unknown_key(req, "acquire"));
    }
    if let Ok(Some(license)) = attempt.text("o_license_id") {
        log::license(&license);
    }
    let now = attempt.required_int("o_now")?;
    let limit = attempt.count("o_rate_limit")?;
    let reset = attempt.required_int("o_rate_reset_at")?;
    let rate_headers = rate_limit_headers(
        limit,
        attempt.count("o_rate_remaining")?,
        reset,
        now,
        outcome == SeatOutcome::RateLimited,
    );
    let result = if outcome == SeatOutcome::RateLimited {
        Err(ApiError::RateLimited {
            limit,
            retry_after_s: retry_after_s(reset, now),
        })
    } else {
        seat(
            &conn,
            &attempt.required_text("o_license_id")?,
            req,
            (&request, user.as_ref()),
            &signing,
        )
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

/// Step 2 of an acquire: the seat decision, under the license lock, on the database's clock.
fn seat(
    conn: &Connection,
    license_id: &str,
    req: &Request,
    (request, user): (&AcquireRequest, Option<&SignedInUser>),
    signing: &Signing,
) -> Result<Response, ApiError> {
    let set = db::query(
        conn,
        "SELECT * FROM le_acquire_seat($1, $2, $3, $4, ($5::text)::jsonb, $6, $7)",
        &[
            P::Str(license_id.to_owned()),
            P::Str(request.machine_hash.clone()),
            P::Str(session_id(random16())),
            text_or_null(user_agent(header(req, "user-agent")).as_deref()),
            P::Str(request.metadata.to_string()),
            text_or_null(user.map(|u| u.subject.as_str())),
            text_or_null(user.and_then(|u| u.email.as_deref())),
        ],
    )?;
    let row = Row::first(&set)?;
    let outcome = row.outcome(SeatOutcome::parse)?;
    log::license(license_id);
    if let Ok(Some(org)) = row.text("o_organization_id") {
        log::organization(&org);
    }
    match outcome {
        SeatOutcome::NoSeats => Err(ApiError::NoSeatsAvailable {
            max_seats: row.count("o_max_seats")?,
            active_seats: row.count("o_active_seats")?,
            next_available_at: row.int("o_next_available_at")?,
        }),
        SeatOutcome::UserSeatLimit => Err(ApiError::UserSeatLimit {
            max_seats_per_user: row.count("o_max_seats_per_user")?,
            user_seats: row.count("o_user_seats")?,
        }),
        SeatOutcome::Created | SeatOutcome::Existing => {
            let license = seat_license(&row)?;
            let session = row.required_text("o_session_id")?;
            log::session(&session);
            let expires = row.required_int("o_session_expires_at")?;
            let token = session_token(signing, &license, &session, &request.machine_hash, expires)
                .inspect_err(|_| {
                    // A new session without a token frees its seat now. A machine's existing
                    // session keeps its earlier token, so it stays (its lease was renewed).
                    if outcome == SeatOutcome::Created && signing.is_remote() {
                        release_unissued(conn, &session);
                    }
                })?;
            record_seat(&license.id, &request.machine_hash, &session, expires);
            let active = row.count("o_active_seats").ok();
            let status = if outcome == SeatOutcome::Created {
                201
            } else {
                200
            };
            let details = SessionDetails {
                started_at: row.int("o_started_at")?,
                last_heartbeat_at: row.int("o_last_heartbeat_at")?,
                machine_id: Some(&request.machine_id),
                user: user.map(|u| (u.subject.as_str(), u.email.as_deref())),
            };
            let body = granted_body(&session, &token, expires, &license, active);
            Ok(json(status, &with_session_details(body, &details)))
        }
        other => Err(refusal(other).unwrap_or(ApiError::Internal)),
    }
}

/// The credential of a heartbeat, borrow or release as the SQL takes it: the key hash, or the
/// signed-in user's `sub` (one of the two is NULL).
fn session_caller(req: &Request) -> Result<(P, P, Option<SignedInUser>), ApiError> {
    Ok(match session_credential(header(req, "authorization"))? {
        SessionCredential::Key(hash) => (P::Str(hash), P::DbNull, None),
        SessionCredential::IdToken(token) => {
            let user = signin::signed_in_user(&token)?;
            (P::DbNull, P::Str(user.subject.clone()), Some(user))
        }
    })
}

/// Heartbeat (`borrow == false`) or borrow: both extend a live session and answer a new token.
fn extend(req: &Request, id: &str, borrow: bool) -> Result<Response, ApiError> {
    let (key_hash, user_sub, user) = session_caller(req)?;
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
    let settings = SeatSettings::read()?;
    let parts = settings.parts()?;
    let signing = signer::configured(&parts)?;
    let conn = db::open_url(parts.database_url)?;
    // A signer that can fail after the extension is committed needs the extension undoable.
    let sql = if signing.is_remote() {
        "SELECT * FROM le_extend_as_undoable($1, $2, $3, $4::bigint)"
    } else {
        "SELECT * FROM le_extend_as($1, $2, $3, $4::bigint)"
    };
    let set = db::query(
        &conn,
        sql,
        &[key_hash, user_sub, P::Str(id.to_owned()), duration],
    )?;
    let row = Row::first(&set)?;
    match row.outcome(SeatOutcome::parse)? {
        SeatOutcome::Renewed | SeatOutcome::Borrowed => {
            let license = seat_license(&row)?;
            let expires = row.required_int("o_session_expires_at")?;
            let machine = row.required_text("o_machine_hash")?;
            let undo = if signing.is_remote() {
                Some(Undo::from_row(&row)?)
            } else {
                None
            };
            let token =
                session_token(&signing, &license, id, &machine, expires).inspect_err(|_| {
                    if let Some(undo) = &undo {
                        undo_extend(&conn, id, undo);
                    }
                })?;
            record_seat(&license.id, &machine, id, expires);
            let details = SessionDetails {
                started_at: row.int("o_started_at")?,
                last_heartbeat_at: row.int("o_last_heartbeat_at")?,
                machine_id: None,
                user: user
                    .as_ref()
                    .map(|u| (u.subject.as_str(), u.email.as_deref())),
            };
            let body = granted_body(id, &token, expires, &license, None);
            Ok(json(200, &with_session_details(body, &details)))
        }
        SeatOutcome::BorrowTooLong => Err(ApiError::BorrowTooLong {
            max_seconds: row.count("o_max_borrow_seconds")?,
        }),
        SeatOutcome::UnknownKey => Err(unknown_key(req, "heartbeat or borrow")),
        other => Err(refusal(other).unwrap_or(ApiError::Internal)),
    }
}

fn release(req: &Request, id: &str) -> Result<Response, ApiError> {
    let (key_hash, user_sub, _) = session_caller(req)?;
    if !is_session_id(id) {
        return Err(ApiError::SessionNotFound);
    }
    let settings = SeatSettings::read()?;
    let conn = db::open_url(settings.parts()?.database_url)?;
    let set = db::query(
        &conn,
        "SELECT * FROM le_release_as($1, $2, $3)",
        &[key_hash, user_sub, P::Str(id.to_owned())],
    )?;
    let row = Row::first(&set)?;
    match row.outcome(SeatOutcome::parse)? {
        SeatOutcome::UnknownKey => return Err(unknown_key(req, "release")),
        SeatOutcome::Borrowed => {
            return Err(ApiError::SessionBorrowed {
                borrowed_until: row.required_int("o_borrowed_until")?,
            })
        }
        other => {
            if let Some(e) = refusal(other) {
                return Err(e);
            }
        }
    }
    let now = row.required_int("o_now")?;
    let ended_at = row.required_int("o_ended_at")?;
    let token_expires_at = row.required_int("o_token_expires_at")?;
    // Written on every release, repeated ones included, so that a retry after a key-value
    // failure still reaches the edge.
    if marker_needed(token_expires_at, now) {
        let marker = SessionEnded {
            ended_at,
            token_expires_at,
        };
        let store = key_value::Store::open_default().map_err(not_propagated)?;
        end_session(&store, id, &marker).map_err(not_propagated)?;
    }
    Ok(json(200, &released_body(id, ended_at)))
}

/// A release PostgreSQL recorded whose end marker could not be written: answered as the admin
/// component answers any recorded change the edge may not see yet (503
/// `revocation_unavailable`, `recorded: true`); a retry writes the marker, as does the rebuild.
fn not_propagated(e: key_value::Error) -> ApiError {
    eprintln!("acquire: the release is recorded but the key-value store failed: {e}");
    ApiError::ChangeNotPropagated
}
