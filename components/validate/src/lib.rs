//! The `validate` component: the hot path. Verifies a license token against the public key set
//! and checks the edge read model (key-value store) for suspension, revocation and ended
//! sessions. It never touches PostgreSQL (its manifest entry has no outbound host), so it keeps
//! answering when the database is down. It also serves the public key set as JWKS, and
//! validates license keys sent in the old service's shape (`key.rs`).

use edge_io::log::{self, RequestLog};
use edge_io::{
    allow_methods, error, header, json, json_text, normalized_path, now_millis, read_request,
};
use license_edge::api::ApiError;
use license_edge::read_model::verify_cache::verify_cached;
use license_edge::read_model::{license_key, session_key, standing, Standing};
use license_edge::settings::lines;
use license_edge::validate::{
    invalid_body, is_for_product, parse_validation, standing_refusal, token_refusal_code,
    valid_body, Validation, MAX_VALIDATE_BODY,
};
use license_edge_token::{KeySet, TokenError, ValidationOptions};
use spin_sdk::http::{IncomingRequest, IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::{key_value, variables};

/// How long clients and caches may keep the key set. A new key must be published at least
/// this long before tokens are signed with it (see README, key rotation).
const JWKS_MAX_AGE_S: u32 = 300;

mod key;

const VALIDATE: &str = "/api/v1/licenses/validate";
const JWKS: &str = "/.well-known/jwks.json";

#[http_component]
async fn handle(req: IncomingRequest) -> impl IntoResponse {
    let log = RequestLog::begin("validate", &req);
    let request_id = log.request_id();
    let result = read_request(req, MAX_VALIDATE_BODY)
        .await
        .and_then(|req| match normalized_path(&req).as_str() {
            VALIDATE => {
                log::route(VALIDATE);
                allow_methods(&req, &["POST"]).and_then(|()| validate(&req, request_id))
            }
            JWKS => {
                log::route(JWKS);
                allow_methods(&req, &["GET"]).and_then(|()| jwks())
            }
            _ => Err(ApiError::NotFound),
        });
    let resp = result.unwrap_or_else(|e| error(&e, request_id));
    log.finish(resp)
}

/// A validation that is not `VALID`, noted in the request log with its code.
fn refused(code: &str, message: &str, request_id: &str) -> Response {
    log::code(code);
    json(200, &invalid_body(code, message, request_id))
}

/// What validate reads per request, from its one `validate_settings` variable (one host call
/// instead of three: `license_edge::settings`).
struct Settings {
    text: String,
}

impl Settings {
    fn read() -> Result<Self, ApiError> {
        let text = variables::get("validate_settings").map_err(|e| {
            eprintln!("validate: validate_settings variable: {e}");
            ApiError::Internal
        })?;
        Ok(Settings { text })
    }

    /// `[token_issuer, verify_cache_key, public_keys]`.
    fn parts(&self) -> Result<[&str; 3], ApiError> {
        lines::<3>(&self.text).ok_or_else(|| {
            eprintln!("validate: validate_settings is not token_issuer, verify_cache_key and public_keys, one a line");
            ApiError::Internal
        })
    }

    /// The public key set. `publish` (the JWKS route) checks every key's point up front; the
    /// validate route defers that to verification, so a request that uses the verified-token
    /// cache pays no curve arithmetic at all (see `KeySet::from_text_deferring_point_checks`).
    fn key_set(&self, publish: bool) -> Result<KeySet, ApiError> {
        let [_, _, text] = self.parts()?;
        let parsed = if publish {
            KeySet::from_text(text)
        } else {
            KeySet::from_text_deferring_point_checks(text)
        };
        parsed.map_err(|e| {
            eprintln!("validate: public_keys is not a usable key set: {e}");
            ApiError::Internal
        })
    }
}

fn jwks() -> Result<Response, ApiError> {
    let keys = Settings::read()?.key_set(true)?;
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("cache-control", format!("public, max-age={JWKS_MAX_AGE_S}"))
        .body(keys.to_jwks_json())
        .build())
}

fn validate(req: &Request, request_id: &str) -> Result<Response, ApiError> {
    let request = match parse_validation(
        req.body(),
        header(req, "content-type"),
        header(req, "authorization"),
    )? {
        Validation::Token(request) => request,
        Validation::Key(request) => return Ok(key::validate_key(req, &request, request_id)),
    };
    let settings = Settings::read()?;
    let keys = settings.key_set(false)?;
    // Fail closed: a validation that cannot read the issuer it must require answers an error,
    // never a check without it (an unreadable `validate_settings` is an error above).
    let [issuer, cache_secret, _] = settings.parts()?;
    let policy = ValidationOptions::new().with_issuer(issuer.to_owned());
    let now_ms = now_millis();
    // The store is opened when first needed: for the verified-token cache once the token has
    // parsed, else after it verified. A refused token is answered without it (and on Spin,
    // whose open sends a `PING` that hangs while Redis is down, without waiting on it).
    let mut store: Option<Result<key_value::Store, key_value::Error>> = None;
    let checked = verify_cached(
        &request.token,
        &keys,
        &policy,
        now_ms / 1000,
        request.machine_id.as_deref(),
        Some(cache_secret.as_bytes()),
        |cache_key| match store.get_or_insert_with(key_value::Store::open_default) {
            Ok(store) => store.get(cache_key).unwrap_or_else(|e| {
                eprintln!("validate: verified-token cache read failed: {e}");
                None
            }),
            Err(_) => None,
        },
    );
    let checked = match checked {
        Ok(checked) => checked,
        Err(e) => {
            let code = token_refusal_code(&e);
            return Ok(refused(&code, &e.to_string(), request_id));
        }
    };
    let claims = checked.verified.claims();
    if let Some(org) = &claims.org {
        log::organization(org);
    }
    log::license(&claims.sub);
    log::session(&claims.sid);
    // The product is checked here rather than as the token's audience, so that tokens issued
    // before audiences named the organization keep matching (see `is_for_product`).
    if let Some(product) = &request.product {
        if !is_for_product(claims, product) {
            let e = TokenError::WrongAudience;
            let code = token_refusal_code(&e);
            return Ok(refused(&code, &e.to_string(), request_id));
        }
    }
    let store = store
        .unwrap_or_else(key_value::Store::open_default)
        .map_err(unavailable)?;
    let license = store.get(&license_key(&claims.sub)).map_err(unavailable)?;
    // The end marker is read on every request, cache hit or not: a session whose marker is
    // written is refused whatever happened to its cache entry (see `license_edge::read_model`).
    let session = store.get(&session_key(&claims.sid)).map_err(unavailable)?;
    let standing = standing(license.as_deref(), session.as_deref(), now_ms);
    if let (Standing::InForce, Some((cache_key, entry))) = (standing, &checked.new_entry) {
        // Only saves the next validation a signature check; a failure costs nothing else.
        if let Err(e) = store.set(cache_key, entry) {
            eprintln!("validate: verified-token cache write failed: {e}");
        }
    }
    match standing {
        Standing::Unknown => {
            eprintln!("validate: no read-model entry for license {}", claims.sub);
            Err(ApiError::RevocationUnavailable)
        }
        other => Ok(match standing_refusal(other) {
            Some((code, message)) => refused(code, message, request_id),
            None => {
                log::code("VALID");
                json_text(200, valid_body(claims, request_id))
            }
        }),
    }
}

fn unavailable(e: key_value::Error) -> ApiError {
    eprintln!("validate: key-value store: {e}");
    ApiError::RevocationUnavailable
}
