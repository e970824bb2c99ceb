//! The `admin` component: organizations, products, licenses, sessions, the audit trail, the
//! key-value rebuild and sweep, and the retention prune, under `/api/v1/admin/`.
//!
//! Every request is authorized first, with the `admin_token` variable compared in constant
//! time: without it every path answers the same 401, so nothing about the routes leaks. Then
//! the core (`license_edge::admin`) routes and checks the request, one SQL function of
//! `migrations/` does the work in one round trip, and the core shapes the answer.
//!
//! Changes validation must see are written through to the key-value store in the same
//! request, after PostgreSQL (the source of truth), and the writer then reads the license's
//! version back and writes again while it is stale (`license_edge::read_model::converge`), so that
//! two changes whose writes land out of order still leave the store equal to the database. A
//! key-value failure answers 503 `revocation_unavailable` saying the change is recorded, and a
//! retry or the rebuild propagates it. A new license is the exception: its entries (`lic:` and
//! its key's `key:`) are written *before* the row, because the key is shown only once and a 503
//! after the insert would lose it; entries without a row are harmless (no token can name that
//! license, and its key was never shown to anyone) and are removed on failure.

use edge_io::db::{self, text_or_null, Row};
use edge_io::kv::end_session;
use edge_io::log::{self, RequestLog};
use edge_io::{
    error, header, json, method_name, normalized_path, now_millis, random16, random32, read_request,
};
use license_edge::admin::{
    self, audit_event_json, authenticate, created_key_json, created_license_json, from_db,
    key_json, license_detail_json, license_json, license_state, new_license_key, new_org_key,
    org_key_hash, org_key_shown, organization_json, parse_license_patch, parse_new_key,
    parse_new_license, parse_new_organization, parse_new_product, parse_prune, parse_status_change,
    product_json, rebuild_json, released_json, route, session_json, sweep_json,
    updated_license_json, ApiKey, AuditEvent, Caller, Credential, EndedSession, Endpoint, KeyAuth,
    License, LicenseDetail, LicenseStanding, Organization, Owner, Product, Role, Session,
    StatusAction, SweepBatch, MAX_ADMIN_BODY, MAX_EMBEDDED_SESSIONS,
};
use license_edge::api::query::{list_body, paginate, parse_query, Cursor, Query};
use license_edge::api::request::{is_id, new_id};
use license_edge::api::ApiError;
use license_edge::outcome::AdminOutcome;
use license_edge::read_model::{
    converge, encode, license_key, marker_needed, session_key, verify_cache_key, Converged,
    LicenseState, LicenseStatus, SessionEnded,
};
use license_edge::seats::{is_session_id, license_key_hash};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use spin_sdk::http::{IncomingRequest, IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::pg4::{Connection, ParameterValue as P};
use spin_sdk::{key_value, variables};

mod key_entries;
mod usage;

/// Rows per round trip of the key-value rebuild.
const REBUILD_BATCH: i32 = 500;
/// The rebuild's second pass rereads licenses changed since this long before it started, so
/// that a change racing the first pass (on any replica, with some clock skew) is not
/// overwritten by the older state read before it.
const REBUILD_RECHECK_MS: i64 = 5_000;
/// Sessions per round trip of the key-value sweep.
const SWEEP_BATCH: i32 = 500;
/// Batches one sweep request handles at most; the answer says whether more are waiting.
const SWEEP_BATCHES_PER_CALL: u32 = 8;

#[http_component]
async fn handle(req: IncomingRequest) -> impl IntoResponse {
    let log = RequestLog::begin("admin", &req);
    let resp = read_request(req, MAX_ADMIN_BODY)
        .await
        .and_then(|req| serve(&req))
        .unwrap_or_else(|e| error(&e, log.request_id()));
    log.finish(resp)
}

/// Notes the route and the id it names in the request log, once the id has an id's shape.
fn note_route(pattern: &'static str, id: &str) {
    log::route(pattern);
    if pattern.contains("{license_id}") && is_id("lic", id) {
        log::license(id);
    } else if pattern.contains("{organization_id}") && is_id("org", id) {
        log::organization(id);
    } else if pattern.contains("{session_id}") && is_session_id(id) {
        log::session(id);
    }
}

fn serve(req: &Request) -> Result<Response, ApiError> {
    let tokens = variables::get("admin_token").map_err(|e| {
        eprintln!("admin: admin_token variable: {e}");
        ApiError::Unauthorized
    })?;
    let credential = authenticate(header(req, "authorization"), &tokens)?;
    let routed = route(method_name(req.method()), &normalized_path(req))?;
    let id = routed.param.as_deref().unwrap_or_default();
    note_route(routed.pattern, id);
    let now = now_millis();
    let q = req.query();
    // One connection for the request: the caller is stated on it for the audit trail, so every
    // statement of the request must use it.
    let conn = &db::open()?;
    let caller = identify(conn, credential, now)?;
    caller.permit(routed.endpoint)?;
    let scope = caller.organization();
    if let Some(org) = scope {
        log::organization(org);
        confine(conn, org, routed.endpoint, id)?;
    }
    match routed.endpoint {
        Endpoint::ListOrganizations => list_organizations(conn, q, scope),
        Endpoint::CreateOrganization => create_organization(conn, req, now),
        Endpoint::GetOrganization => get_organization(conn, q, id),
        Endpoint::OrganizationAudit => audit(conn, q, "organization", id),
        Endpoint::ListProducts => list_products(conn, q, scope),
        Endpoint::CreateProduct => create_product(conn, req, now, scope),
        Endpoint::GetProduct => get_product(conn, q, id),
        Endpoint::ListLicenses => list_licenses(conn, q, scope),
        Endpoint::CreateLicense => create_license(conn, req, now, scope),
        Endpoint::GetLicense => get_license(conn, q, id, now),
        Endpoint::UpdateLicense => update_license(conn, req, id, now),
        Endpoint::SuspendLicense => set_status(conn, req, id, StatusAction::Suspend, now),
        Endpoint::ReinstateLicense => set_status(conn, req, id, StatusAction::Reinstate, now),
        Endpoint::RevokeLicense => set_status(conn, req, id, StatusAction::Revoke, now),
        Endpoint::LicenseSessions => license_sessions(conn, q, id, now),
        Endpoint::LicenseAudit => audit(conn, q, "license", id),
        Endpoint::ReleaseSession => release_session(conn, q, id, now),
        Endpoint::RebuildKv => rebuild(conn, q, now),
        Endpoint::SweepKv => sweep(conn, q),
        Endpoint::Prune => prune(conn, req),
        Endpoint::ListKeys => list_keys(conn, q, id),
        Endpoint::CreateKey => create_key(conn, req, id, &caller, now),
        Endpoint::RevokeKey => revoke_key(conn, q, id, now),
        Endpoint::LicenseUsage => usage::usage(conn, q, "license", id, now),
        Endpoint::OrganizationUsage => usage::usage(conn, q, "organization", id, now),
    }
}

// --- Who is calling -------------------------------------------------------------------------

/// The caller behind a credential, stated on `conn` for the audit trail: the operator, or an
/// organization key that exists and is not revoked (read on every request, so a revoked key
/// is refused on the next one). An unknown key is the same 401 as any bad credential.
fn identify(conn: &Connection, credential: Credential, now: i64) -> Result<Caller, ApiError> {
    let hash = match credential {
        Credential::Operator => {
            call(conn, "SELECT * FROM le_admin_as_operator()", &[])?;
            return Ok(Caller::Operator);
        }
        Credential::OrganizationKey { hash } => hash,
    };
    let (_, body) = call(
        conn,
        "SELECT * FROM le_admin_key_auth($1, $2)",
        &[P::Str(hash), P::Int64(now)],
    )?;
    if body.is_null() {
        return Err(ApiError::Unauthorized);
    }
    let key: KeyAuth = decode(body)?;
    log::key(&key.id);
    let role = Role::parse(&key.role).ok_or_else(|| {
        eprintln!("admin: key {} has an unknown role", key.id);
        ApiError::Internal
    })?;
    Ok(Caller::Organization {
        key_id: key.id,
        organization_id: key.organization_id,
        role,
    })
}

/// For an organization key: the id a route names must belong to its organization, or the
/// answer is 404 as if it did not exist (nothing is read or written for it). Lists and creates
/// confine themselves (`scope`).
fn confine(conn: &Connection, org: &str, endpoint: Endpoint, id: &str) -> Result<(), ApiError> {
    let kind = match endpoint {
        Endpoint::GetOrganization
        | Endpoint::OrganizationAudit
        | Endpoint::OrganizationUsage
        | Endpoint::ListKeys
        | Endpoint::CreateKey => {
            return if id == org {
                Ok(())
            } else {
                Err(ApiError::NoSuch {
                    resource: "organization",
                })
            }
        }
        Endpoint::GetProduct => "product",
        Endpoint::GetLicense
        | Endpoint::UpdateLicense
        | Endpoint::SuspendLicense
        | Endpoint::ReinstateLicense
        | Endpoint::RevokeLicense
        | Endpoint::LicenseSessions
        | Endpoint::LicenseAudit
        | Endpoint::LicenseUsage => "license",
        Endpoint::ReleaseSession => "session",
        Endpoint::RevokeKey => "key",
        _ => return Ok(()),
    };
    owned_by(conn, org, kind, id)
}

/// Whether the `kind` (`product`, `license`, `session`, `key`: `le_admin_owner`'s kinds, also
/// the resource a 404 names) with `id` belongs to `org`; 404 when it does not, or does not
/// exist.
fn owned_by(conn: &Connection, org: &str, kind: &'static str, id: &str) -> Result<(), ApiError> {
    let (_, body) = call(
        conn,
        "SELECT * FROM le_admin_owner($1, $2)",
        &[P::Str(kind.to_owned()), P::Str(id.to_owned())],
    )?;
    let owner: Option<Owner> = decode(body)?;
    match owner {
        Some(o) if o.organization_id == org => Ok(()),
        _ => Err(ApiError::NoSuch { resource: kind }),
    }
}

/// A list's organization filter under a scope: the caller's own organization, and 404 for any
/// other named.
fn scoped_org(named: Option<String>, scope: Option<&str>) -> Result<Option<String>, ApiError> {
    match (named, scope) {
        (Some(n), Some(org)) if n != org => Err(ApiError::NoSuch {
            resource: "organization",
        }),
        (_, Some(org)) => Ok(Some(org.to_owned())),
        (named, None) => Ok(named),
    }
}

// --- Plumbing --------------------------------------------------------------------------------

/// Calls an admin SQL function; answers its outcome and body, or its refusal as an error.
fn call(conn: &Connection, sql: &str, params: &[P]) -> Result<(AdminOutcome, Value), ApiError> {
    let set = db::query(conn, sql, params)?;
    let row = Row::first(&set)?;
    let outcome = row.outcome(AdminOutcome::parse)?;
    admin::outcome(outcome)?;
    Ok((outcome, row.json("o_body")?))
}

fn decode<T: DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    from_db(body).inspect_err(|_| {
        eprintln!("admin: the database answered a body of an unexpected shape");
    })
}

fn no_query(q: &str) -> Result<(), ApiError> {
    parse_query(q, &[]).map(|_| ())
}

fn checked_id(prefix: &str, id: &str, resource: &'static str) -> Result<String, ApiError> {
    if is_id(prefix, id) {
        Ok(id.to_owned())
    } else {
        Err(ApiError::NoSuch { resource })
    }
}

fn content_type(req: &Request) -> Option<&str> {
    header(req, "content-type")
}

fn created(body: &Value, location: String) -> Response {
    let mut resp = json(201, body);
    resp.set_header("location", location);
    resp
}

fn cursor_params(cursor: Option<Cursor>) -> [P; 2] {
    match cursor {
        Some(c) => [P::Int64(c.at), P::Str(c.id)],
        None => [P::DbNull, P::DbNull],
    }
}

fn limit_param(limit: u32) -> P {
    // Invariant: limit <= MAX_PAGE (100), far inside i32.
    P::Int32(i32::try_from(limit).unwrap_or(i32::MAX))
}

/// A list route: its SQL function is called with the `filters` (checked after the page
/// parameters, so a bad `limit` or `cursor` is refused first), the cursor's time and id, the
/// page size and then `trailing`; the items it answers are paged by their `(time, id)` key and
/// shown with `show`.
fn list<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    q: &Query,
    filters: impl FnOnce() -> Result<Vec<P>, ApiError>,
    trailing: Vec<P>,
    key: impl Fn(&T) -> (i64, &str),
    show: impl Fn(&T) -> Value,
) -> Result<Response, ApiError> {
    let limit = q.limit()?;
    let [at, id] = cursor_params(q.cursor()?);
    let mut params = filters()?;
    params.extend([at, id, limit_param(limit)]);
    params.extend(trailing);
    let (_, body) = call(conn, sql, &params)?;
    let items: Vec<T> = decode(body)?;
    let (items, next) = paginate(items, limit, |item| {
        let (at, id) = key(item);
        Cursor {
            at,
            id: id.to_owned(),
        }
        .encode()
    });
    Ok(json(
        200,
        &list_body(items.iter().map(show).collect(), next),
    ))
}

fn store() -> Result<key_value::Store, key_value::Error> {
    key_value::Store::open_default()
}

/// The latest state of the licenses `ids` names, from PostgreSQL, as entries written at `now`.
fn latest_states(
    conn: &Connection,
    ids: &[&str],
    now: i64,
) -> Result<Vec<(String, LicenseState)>, ApiError> {
    let (_, body) = call(
        conn,
        "SELECT * FROM le_license_states(($1::text)::jsonb)",
        &[P::Str(json!(ids).to_string())],
    )?;
    let states: Vec<LicenseStanding> = decode(body)?;
    Ok(states
        .into_iter()
        .map(|l| (l.id.clone(), l.state(now)))
        .collect())
}

/// Writes a license's standing to the read model after PostgreSQL recorded it, then converges
/// on the database's latest version (see `license_edge::read_model::converge`).
fn propagate(conn: &Connection, id: &str, first: LicenseState, now: i64) -> Result<(), ApiError> {
    let not_propagated = |what: &str| {
        eprintln!("admin: license {id} changed in PostgreSQL, but {what}");
        ApiError::ChangeNotPropagated
    };
    let store = store().map_err(|e| not_propagated(&format!("the key-value store failed: {e}")))?;
    let outcome = converge(
        first,
        |state| {
            store
                .set(&license_key(id), &encode(state))
                .map_err(|e| format!("the key-value store failed: {e}"))
        },
        || {
            latest_states(conn, &[id], now)
                .map(|mut found| found.pop().map(|(_, state)| state))
                .map_err(|_| "rereading its version failed".to_owned())
        },
    );
    match outcome {
        Converged::Current | Converged::Gone => Ok(()),
        Converged::Failed(what) => Err(not_propagated(&what)),
        Converged::StillChanging { rounds } => Err(not_propagated(&format!(
            "it kept changing for {rounds} rounds of writes"
        ))),
    }
}

// --- Organizations and products ---------------------------------------------------------------

fn list_organizations(
    conn: &Connection,
    q: &str,
    scope: Option<&str>,
) -> Result<Response, ApiError> {
    let q = parse_query(q, &["limit", "cursor"])?;
    if let Some(org) = scope {
        // An organization key sees its own organization, on the first page.
        q.limit()?;
        let first_page = q.cursor()?.is_none();
        let items = if first_page {
            let (_, body) = call(
                conn,
                "SELECT * FROM le_admin_organization($1)",
                &[P::Str(org.to_owned())],
            )?;
            vec![organization_json(&decode(body)?)]
        } else {
            vec![]
        };
        return Ok(json(200, &list_body(items, None)));
    }
    list(
        conn,
        "SELECT * FROM le_admin_organizations($1::bigint, $2::text, $3::int)",
        &q,
        || Ok(vec![]),
        vec![],
        |o: &Organization| (o.created_at, &o.id),
        organization_json,
    )
}

fn create_organization(conn: &Connection, req: &Request, now: i64) -> Result<Response, ApiError> {
    no_query(req.query())?;
    let name = parse_new_organization(req.body(), content_type(req))?;
    let id = new_id("org", random16());
    let (_, body) = call(
        conn,
        "SELECT * FROM le_admin_create_organization($1, $2, $3)",
        &[P::Str(id.clone()), P::Str(name), P::Int64(now)],
    )?;
    let org: Organization = decode(body)?;
    Ok(created(
        &organization_json(&org),
        format!("/api/v1/admin/organizations/{id}"),
    ))
}

fn get_organization(conn: &Connection, q: &str, id: &str) -> Result<Response, ApiError> {
    no_query(q)?;
    let id = checked_id("org", id, "organization")?;
    let (_, body) = call(
        conn,
        "SELECT * FROM le_admin_organization($1)",
        &[P::Str(id)],
    )?;
    Ok(json(200, &organization_json(&decode(body)?)))
}

fn list_products(conn: &Connection, q: &str, scope: Option<&str>) -> Result<Response, ApiError> {
    let q = parse_query(q, &["organization_id", "limit", "cursor"])?;
    let org = scoped_org(q.id("organization_id", "org")?, scope)?;
    list(
        conn,
        "SELECT * FROM le_admin_products($1::text, $2::bigint, $3::text, $4::int)",
        &q,
        || Ok(vec![text_or_null(org.as_deref())]),
        vec![],
        |p: &Product| (p.created_at, &p.id),
        product_json,
    )
}

fn create_product(
    conn: &Connection,
    req: &Request,
    now: i64,
    scope: Option<&str>,
) -> Result<Response, ApiError> {
    no_query(req.query())?;
    let new = parse_new_product(req.body(), content_type(req))?;
    if scope.is_some_and(|org| org != new.organization_id) {
        return Err(ApiError::NoSuch {
            resource: "organization",
        });
    }
    let id = new_id("prod", random16());
    let (_, body) = call(
        conn,
        "SELECT * FROM le_admin_create_product($1, $2, $3, $4, $5, $6)",
        &[
            P::Str(id.clone()),
            P::Str(new.organization_id),
            P::Str(new.code),
            P::Str(new.name),
            P::Int64(now),
            P::Boolean(new.sign_in_required),
        ],
    )?;
    let product: Product = decode(body)?;
    Ok(created(
        &product_json(&product),
        format!("/api/v1/admin/products/{id}"),
    ))
}

fn get_product(conn: &Connection, q: &str, id: &str) -> Result<Response, ApiError> {
    no_query(q)?;
    let id = checked_id("prod", id, "product")?;
    let (_, body) = call(conn, "SELECT * FROM le_admin_product($1)", &[P::Str(id)])?;
    Ok(json(200, &product_json(&decode(body)?)))
}

// --- Licenses --------------------------------------------------------------------------------

fn list_licenses(conn: &Connection, q: &str, scope: Option<&str>) -> Result<Response, ApiError> {
    let q = parse_query(
        q,
        &["organization_id", "product_id", "status", "limit", "cursor"],
    )?;
    let org = scoped_org(q.id("organization_id", "org")?, scope)?;
    let product = q.id("product_id", "prod")?;
    let status = q.one_of("status", &["active", "suspended", "revoked"])?;
    list(
        conn,
        "SELECT * FROM le_admin_licenses($1::text, $2::text, $3::text, $4::bigint, $5::text, $6::int)",
        &q,
        || {
            if let (Some(scope), Some(product)) = (scope, &product) {
                owned_by(conn, scope, "product", product)?;
            }
            Ok(vec![
                text_or_null(org.as_deref()),
                text_or_null(product.as_deref()),
                text_or_null(status),
            ])
        },
        vec![],
        |l: &License| (l.created_at, &l.id),
        license_json,
    )
}

fn create_license(
    conn: &Connection,
    req: &Request,
    now: i64,
    scope: Option<&str>,
) -> Result<Response, ApiError> {
    no_query(req.query())?;
    let new = parse_new_license(req.body(), content_type(req))?;
    if let Some(org) = scope {
        // Before the read-model entry is written: another organization's product changes nothing.
        owned_by(conn, org, "product", &new.product_id)?;
    }
    let id = new_id("lic", random16());
    let key = new_license_key(random32());
    let key_hash = license_key_hash(&key);
    // The read-model entry first (see the crate docs): nothing is recorded if it fails.
    // A new row's version is 0 (only updates bump it).
    let entry = encode(&license_state(
        LicenseStatus::Active,
        new.expires_at,
        0,
        now,
    ));
    let kv = store()
        .and_then(|s| s.set(&license_key(&id), &entry).map(|()| s))
        .and_then(|s| match key_entries::write_key(&s, &key_hash, &id) {
            Ok(()) => Ok(s),
            Err(e) => {
                if let Err(kv_err) = s.delete(&license_key(&id)) {
                    eprintln!(
                        "admin: could not remove the entry of uncreated license {id}: {kv_err}"
                    );
                }
                Err(e)
            }
        })
        .map_err(|e| {
            eprintln!("admin: key-value store failed before creating a license: {e}");
            ApiError::KeyValueUnavailable
        })?;
    let result = {
        call(
            conn,
            "SELECT * FROM le_admin_create_license($1, $2, $3, ($4::text)::jsonb, $5)",
            &[
                P::Str(id.clone()),
                P::Str(key_hash.clone()),
                P::Str(new.product_id),
                P::Str(new.fields.to_string()),
                P::Int64(now),
            ],
        )
    };
    let body = match result {
        Ok((_, body)) => body,
        Err(e) => {
            key_entries::remove_key(&kv, &key_hash, &id);
            if let Err(kv_err) = kv.delete(&license_key(&id)) {
                eprintln!("admin: could not remove the entry of uncreated license {id}: {kv_err}");
            }
            return Err(e);
        }
    };
    let license: License = decode(body)?;
    Ok(created(
        &created_license_json(&license, &key),
        format!("/api/v1/admin/licenses/{id}"),
    ))
}

fn get_license(conn: &Connection, q: &str, id: &str, now: i64) -> Result<Response, ApiError> {
    no_query(q)?;
    let id = checked_id("lic", id, "license")?;
    let (_, body) = call(
        conn,
        "SELECT * FROM le_admin_license($1, $2, $3::int)",
        &[
            P::Str(id),
            P::Int64(now),
            P::Int32(MAX_EMBEDDED_SESSIONS as i32),
        ],
    )?;
    let detail: LicenseDetail = decode(body)?;
    Ok(json(200, &license_detail_json(&detail, now)))
}

fn update_license(
    conn: &Connection,
    req: &Request,
    id: &str,
    now: i64,
) -> Result<Response, ApiError> {
    no_query(req.query())?;
    let id = checked_id("lic", id, "license")?;
    let patch = parse_license_patch(req.body(), content_type(req))?;
    let (_, body) = call(
        conn,
        "SELECT * FROM le_admin_update_license($1, ($2::text)::jsonb, $3)",
        &[P::Str(id.clone()), P::Str(patch.to_string()), P::Int64(now)],
    )?;
    #[derive(serde::Deserialize)]
    struct Updated {
        license: License,
        active_seats: u32,
    }
    let updated: Updated = decode(body)?;
    // Written even when nothing changed, so that a retry after a key-value failure propagates.
    propagate(conn, &id, updated.license.state(now), now)?;
    Ok(json(
        200,
        &updated_license_json(&updated.license, updated.active_seats),
    ))
}

fn set_status(
    conn: &Connection,
    req: &Request,
    id: &str,
    action: StatusAction,
    now: i64,
) -> Result<Response, ApiError> {
    no_query(req.query())?;
    let id = checked_id("lic", id, "license")?;
    let reason = parse_status_change(req.body(), content_type(req))?;
    let (outcome, body) = call(
        conn,
        "SELECT * FROM le_admin_set_status($1, $2, $3::text, $4)",
        &[
            P::Str(id.clone()),
            P::Str(action.as_str().to_owned()),
            text_or_null(reason.as_deref()),
            P::Int64(now),
        ],
    )?;
    let license: License = decode(body)?;
    // Written even when unchanged, so that a retry after a key-value failure propagates.
    propagate(conn, &id, license.state(now), now)?;
    let mut body = license_json(&license);
    body["changed"] = json!(outcome == AdminOutcome::Changed);
    Ok(json(200, &body))
}

// --- Sessions and the audit trail -------------------------------------------------------------

fn license_sessions(conn: &Connection, q: &str, id: &str, now: i64) -> Result<Response, ApiError> {
    let q = parse_query(q, &["status", "limit", "cursor"])?;
    let state = q
        .one_of("status", &["live", "ended", "all"])?
        .unwrap_or("live");
    list(
        conn,
        "SELECT * FROM le_admin_sessions($1, $2, $3::bigint, $4::text, $5::int, $6)",
        &q,
        || {
            Ok(vec![
                P::Str(checked_id("lic", id, "license")?),
                P::Str(state.to_owned()),
            ])
        },
        vec![P::Int64(now)],
        |s: &Session| (s.started_at, &s.id),
        |s| session_json(s, now),
    )
}

fn release_session(conn: &Connection, q: &str, id: &str, now: i64) -> Result<Response, ApiError> {
    no_query(q)?;
    if !is_session_id(id) {
        return Err(ApiError::NoSuch {
            resource: "session",
        });
    }
    let (outcome, body) = call(
        conn,
        "SELECT * FROM le_admin_release($1, $2)",
        &[P::Str(id.to_owned()), P::Int64(now)],
    )?;
    #[derive(serde::Deserialize)]
    struct Released {
        license_id: String,
        ended_at: i64,
        token_expires_at: i64,
        seat_until: i64,
        now: i64,
    }
    let released: Released = decode(body)?;
    // As the client's release does: on every release, repeated ones included, so that a retry
    // after a key-value failure still reaches the edge.
    if marker_needed(released.token_expires_at, released.now) {
        let marker = SessionEnded {
            ended_at: released.ended_at,
            token_expires_at: released.token_expires_at,
        };
        store()
            .and_then(|s| end_session(&s, id, &marker))
            .map_err(|e| {
                eprintln!(
                    "admin: session {id} ended in PostgreSQL, but the key-value store failed: {e}"
                );
                ApiError::ChangeNotPropagated
            })?;
    }
    Ok(json(
        200,
        &released_json(
            id,
            &released.license_id,
            released.ended_at,
            released.seat_until,
            outcome == AdminOutcome::AlreadyEnded,
        ),
    ))
}

fn audit(conn: &Connection, q: &str, scope: &'static str, id: &str) -> Result<Response, ApiError> {
    let q = parse_query(q, &["limit", "cursor"])?;
    let limit = q.limit()?;
    let before = q.event_cursor()?;
    let id = match scope {
        "license" => checked_id("lic", id, "license")?,
        _ => checked_id("org", id, "organization")?,
    };
    let (_, body) = call(
        conn,
        "SELECT * FROM le_admin_audit($1, $2, $3::bigint, $4::int)",
        &[
            P::Str(scope.to_owned()),
            P::Str(id),
            before.map_or(P::DbNull, P::Int64),
            limit_param(limit),
        ],
    )?;
    let items: Vec<AuditEvent> = decode(body)?;
    let (items, next) = paginate(items, limit, |e| e.id.to_string());
    Ok(json(
        200,
        &list_body(items.iter().map(audit_event_json).collect(), next),
    ))
}

// --- Organization API keys ------------------------------------------------------------------

fn list_keys(conn: &Connection, q: &str, org: &str) -> Result<Response, ApiError> {
    let q = parse_query(q, &["limit", "cursor"])?;
    list(
        conn,
        "SELECT * FROM le_admin_keys($1, $2::bigint, $3::text, $4::int)",
        &q,
        || {
            let org = checked_id("org", org, "organization")?;
            Ok(vec![P::Str(org)])
        },
        vec![],
        |k: &ApiKey| (k.created_at, &k.id),
        key_json,
    )
}

/// Issues a key: shown once, in this answer; only its hash is stored.
fn create_key(
    conn: &Connection,
    req: &Request,
    org: &str,
    caller: &Caller,
    now: i64,
) -> Result<Response, ApiError> {
    no_query(req.query())?;
    let org = checked_id("org", org, "organization")?;
    let new = parse_new_key(req.body(), content_type(req))?;
    caller.may_grant(new.role)?;
    let key = new_org_key(random32());
    let id = new_id("key", random16());
    let (_, body) = call(
        conn,
        "SELECT * FROM le_admin_create_key($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            P::Str(id),
            P::Str(org.clone()),
            P::Str(org_key_hash(&key)),
            P::Str(org_key_shown(&key)),
            P::Str(new.name),
            P::Str(new.role.as_str().to_owned()),
            P::Str(caller.actor()),
            P::Int64(now),
        ],
    )?;
    let created_key: ApiKey = decode(body)?;
    Ok(created(
        &created_key_json(&created_key, &key),
        format!("/api/v1/admin/organizations/{org}/keys"),
    ))
}

/// Revokes a key; every later request with it is refused. Revoking twice is not an error.
fn revoke_key(conn: &Connection, q: &str, id: &str, now: i64) -> Result<Response, ApiError> {
    no_query(q)?;
    let id = checked_id("key", id, "key")?;
    let (outcome, body) = call(
        conn,
        "SELECT * FROM le_admin_revoke_key($1, $2)",
        &[P::Str(id), P::Int64(now)],
    )?;
    let revoked: ApiKey = decode(body)?;
    let mut body = key_json(&revoked);
    body["changed"] = json!(outcome == AdminOutcome::Changed);
    Ok(json(200, &body))
}

// --- The key-value rebuild --------------------------------------------------------------------

fn rebuild(conn: &Connection, q: &str, started: i64) -> Result<Response, ApiError> {
    no_query(q)?;
    let kv = store().map_err(kv_failed)?;
    let licenses = rewrite_licenses(conn, &kv, None, started)?;
    // Second pass: a change that committed while the first pass ran may have been overwritten
    // by the state read before it; reread whatever changed since shortly before the start.
    let rechecked = rewrite_licenses(conn, &kv, Some(started - REBUILD_RECHECK_MS), started)?;
    // License-key validation's entries: every key (then `key:index`), every live seat.
    let keys = key_entries::rebuild_keys(conn, &kv, started)?;
    let seats = key_entries::rebuild_seats(conn, &kv)?;
    let mut sessions = 0u64;
    let mut after: Option<String> = None;
    loop {
        let (_, body) = call(
            conn,
            "SELECT * FROM le_admin_ended_sessions($1::text, $2::int, $3)",
            &[
                text_or_null(after.as_deref()),
                P::Int32(REBUILD_BATCH),
                P::Int64(started),
            ],
        )?;
        let batch: Vec<EndedSession> = decode(body)?;
        for s in &batch {
            let marker = SessionEnded {
                ended_at: s.ended_at,
                token_expires_at: s.token_expires_at,
            };
            end_session(&kv, &s.id, &marker).map_err(kv_failed)?;
            sessions += 1;
        }
        match batch.last() {
            Some(last) if batch.len() == REBUILD_BATCH as usize => after = Some(last.id.clone()),
            _ => break,
        }
    }
    let finished = now_millis();
    let details = json!({
        "licenses_written": licenses,
        "licenses_rechecked": rechecked,
        "sessions_written": sessions,
        "keys_written": keys,
        "seats_written": seats,
    });
    db::execute(
        conn,
        "INSERT INTO audit_events (occurred_at, actor, action, outcome, details) \
         VALUES ($1, 'admin', 'kv.rebuild', 'ok', ($2::text)::jsonb)",
        &[P::Int64(finished), P::Str(details.to_string())],
    )?;
    let mut body = rebuild_json(licenses, sessions, started, finished);
    body["licenses_rechecked"] = json!(rechecked);
    body["keys_written"] = json!(keys);
    body["seats_written"] = json!(seats);
    body["entries_written"] = json!(licenses + sessions + keys + seats);
    Ok(json(200, &body))
}

/// Writes `lic:` for every license (or, with `since`, those changed since then); answers how
/// many it wrote. Each batch converges like a single write does: after writing it, the batch's
/// versions are read back and whatever changed meanwhile is written again.
fn rewrite_licenses(
    conn: &Connection,
    kv: &key_value::Store,
    since: Option<i64>,
    now: i64,
) -> Result<u64, ApiError> {
    let mut written = 0u64;
    let mut after: Option<String> = None;
    loop {
        let (_, body) = call(
            conn,
            "SELECT * FROM le_admin_license_states($1::text, $2::bigint, $3::int)",
            &[
                text_or_null(after.as_deref()),
                since.map_or(P::DbNull, P::Int64),
                P::Int32(REBUILD_BATCH),
            ],
        )?;
        let batch: Vec<LicenseStanding> = decode(body)?;
        let mut pending: Vec<(String, LicenseState)> =
            batch.iter().map(|l| (l.id.clone(), l.state(now))).collect();
        written += pending.len() as u64;
        for _ in 0..license_edge::read_model::MAX_CONVERGE_ROUNDS {
            for (id, state) in &pending {
                kv.set(&license_key(id), &encode(state))
                    .map_err(kv_failed)?;
            }
            let ids: Vec<&str> = pending.iter().map(|(id, _)| id.as_str()).collect();
            if ids.is_empty() {
                break;
            }
            let latest = latest_states(conn, &ids, now)?;
            pending.retain(|(id, state)| {
                latest
                    .iter()
                    .any(|(l, s)| l == id && s.version != state.version)
            });
            for (id, state) in &mut pending {
                if let Some((_, s)) = latest.iter().find(|(l, _)| l == id) {
                    *state = s.clone();
                }
            }
        }
        if !pending.is_empty() {
            eprintln!(
                "admin: rebuild: {} licenses kept changing; their writers converge",
                pending.len()
            );
        }
        match batch.last() {
            Some(last) if batch.len() == REBUILD_BATCH as usize => after = Some(last.id.clone()),
            _ => return Ok(written),
        }
    }
}

// --- Retention ----------------------------------------------------------------------------

/// Rows of each kind one prune request deletes at most; the answer says whether more wait.
const PRUNE_BATCH: i32 = 10_000;

/// Deletes ended sessions and audit events past the retention the body gives (one batch of
/// each, in PostgreSQL; see `migrations/0005_retention.sql`).
fn prune(conn: &Connection, req: &Request) -> Result<Response, ApiError> {
    no_query(req.query())?;
    let retention = parse_prune(req.body(), content_type(req))?;
    let days = |d: i64| P::Int32(i32::try_from(d).unwrap_or(i32::MAX));
    let (_, body) = call(
        conn,
        "SELECT * FROM le_admin_prune($1, $2, $3)",
        &[
            days(retention.sessions_days),
            days(retention.audit_days),
            P::Int32(PRUNE_BATCH),
        ],
    )?;
    Ok(json(200, &body))
}

// --- The key-value sweep --------------------------------------------------------------------

/// Deletes the `sess:` and `vt:` entries of sessions no token of which can validate any more
/// (and their machines' `seat:` entries once expired: `key_entries::sweep_seats`),
/// in expiry order from where the last sweep stopped (kept in PostgreSQL), at most
/// [`SWEEP_BATCHES_PER_CALL`] batches per request. A key-value failure stops before the
/// watermark moves, so the next sweep repeats the batch (deleting twice is harmless).
fn sweep(conn: &Connection, q: &str) -> Result<Response, ApiError> {
    no_query(q)?;
    let kv = store().map_err(kv_failed)?;
    let now = now_millis();
    let mut swept = 0u64;
    let mut seats = 0u64;
    let mut until = None;
    let answer = |swept: u64, until: Option<i64>, seats: u64, more: bool| {
        let mut body = sweep_json(swept, until, more);
        body["seat_entries_deleted"] = json!(seats);
        json(200, &body)
    };
    for _ in 0..SWEEP_BATCHES_PER_CALL {
        let (_, body) = call(
            conn,
            "SELECT * FROM le_admin_kv_sweep_batch($1::int)",
            &[P::Int32(SWEEP_BATCH)],
        )?;
        let batch: SweepBatch = decode(body)?;
        for id in &batch.sessions {
            kv.delete(&session_key(id)).map_err(kv_failed)?;
            kv.delete(&verify_cache_key(id)).map_err(kv_failed)?;
        }
        seats += key_entries::sweep_seats(conn, &kv, &batch.sessions, now)?;
        let Some(cursor) = batch.cursor else {
            return Ok(answer(swept, until, seats, false));
        };
        call(
            conn,
            "SELECT * FROM le_admin_kv_sweep_advance($1, $2)",
            &[P::Int64(cursor.at), P::Str(cursor.id)],
        )?;
        swept += batch.sessions.len() as u64;
        until = Some(cursor.at);
        if batch.sessions.len() < SWEEP_BATCH as usize {
            return Ok(answer(swept, until, seats, false));
        }
    }
    Ok(answer(swept, until, seats, true))
}

fn kv_failed(e: key_value::Error) -> ApiError {
    eprintln!("admin: key-value store failed during a rebuild or sweep: {e}");
    ApiError::KeyValueUnavailable
}
