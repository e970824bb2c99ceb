//! The signed-in user of a seat request: its ID token checked against the issuer's key set,
//! which is fetched through Spin's outbound HTTP and kept in the key-value store for as long as
//! its `Cache-Control` allows (see `license_edge_oidc::cache`).
//!
//! Configuration (Spin variables): `oidc_issuer` and `oidc_audience` (both empty: sign-in is not
//! configured, and an ID token is answered 503 `identity_unavailable`), `oidc_jwks_url` (its
//! origin must be in the component's `allowed_outbound_hosts`, which spin.toml builds from
//! `oidc_jwks_origin`).

use edge_io::now_millis;
use edge_io::outbound::{send, Outgoing};
use license_edge::api::ApiError;
use license_edge::identity::id_token_refusal;
use license_edge_oidc::cache::{cache_key, CachedKeySet};
use license_edge_oidc::{verify_id_token, IdTokenError, IssuerConfig, IssuerKeys, SignedInUser};
use spin_sdk::{key_value, variables};
use std::time::Duration;

/// The longest a key-set fetch may take before the request is answered 503.
pub const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest key set accepted, bytes (Google's is about 2 KB).
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// The user `id_token` names, or why not.
pub fn signed_in_user(id_token: &str) -> Result<SignedInUser, ApiError> {
    let (config, url) = configuration()?;
    let store = key_value::Store::open_default().map_err(|e| {
        eprintln!("acquire: sign-in: key-value store: {e}");
        ApiError::IdentityUnavailable
    })?;
    let key = cache_key(&url);
    let now_ms = now_millis();
    let stored = store
        .get(&key)
        .unwrap_or_else(|e| {
            eprintln!("acquire: sign-in: reading the cached key set: {e}");
            None
        })
        .and_then(|bytes| CachedKeySet::from_bytes(&bytes));

    let (set, fetched_now) = match stored {
        Some(set) if set.is_fresh(now_ms) => (set, false),
        stale => match fetch(&url, now_ms) {
            Ok(set) => {
                save(&store, &key, &set);
                (set, true)
            }
            // The issuer cannot be reached: a recently fresh set may stand in.
            Err(e) => match stale.filter(|s| s.usable_when_issuer_down(now_ms)) {
                Some(set) => {
                    eprintln!("acquire: sign-in: key set fetch failed ({e}); using the stored set");
                    (set, true)
                }
                None => {
                    eprintln!("acquire: sign-in: key set fetch failed: {e}");
                    return Err(ApiError::IdentityUnavailable);
                }
            },
        },
    };
    let now_s = now_ms / 1000;
    match check(id_token, &set, &config, now_s) {
        // The issuer may have rotated: one fetch, unless one was just made.
        Err(IdTokenError::UnknownKey) if !fetched_now && set.may_refetch(now_ms) => {
            let set = fetch(&url, now_ms).map_err(|e| {
                eprintln!("acquire: sign-in: key set refetch failed: {e}");
                ApiError::IdentityUnavailable
            })?;
            save(&store, &key, &set);
            check(id_token, &set, &config, now_s).map_err(|e| id_token_refusal(&e))
        }
        other => other.map_err(|e| id_token_refusal(&e)),
    }
}

fn check(
    id_token: &str,
    set: &CachedKeySet,
    config: &IssuerConfig,
    now_s: i64,
) -> Result<SignedInUser, IdTokenError> {
    // A stored set that no longer parses is treated as holding no key: the refetch decides.
    match IssuerKeys::from_jwks(set.jwks.as_bytes()) {
        Ok(keys) => verify_id_token(id_token, &keys, config, now_s),
        Err(_) => Err(IdTokenError::UnknownKey),
    }
}

fn configuration() -> Result<(IssuerConfig, String), ApiError> {
    let get = |name: &str| {
        variables::get(name).map_err(|e| {
            eprintln!("acquire: sign-in: {name} variable: {e}");
            ApiError::IdentityUnavailable
        })
    };
    let issuer = get("oidc_issuer")?;
    let audience = get("oidc_audience")?;
    if issuer.is_empty() || audience.is_empty() {
        eprintln!("acquire: an ID token arrived but sign-in is not configured (oidc_issuer, oidc_audience)");
        return Err(ApiError::IdentityUnavailable);
    }
    Ok((IssuerConfig { issuer, audience }, get("oidc_jwks_url")?))
}

/// Fetches the key set; an answer that is not a usable JWKS is a failure like no answer.
fn fetch(url: &str, now_ms: i64) -> Result<CachedKeySet, String> {
    let reply = send(
        &Outgoing {
            method: "GET",
            url,
            headers: &[("accept", "application/json")],
            body: &[],
        },
        JWKS_FETCH_TIMEOUT,
        MAX_JWKS_BYTES,
    )
    .map_err(|e| e.to_string())?;
    if reply.status != 200 {
        return Err(format!("the issuer answered {}", reply.status));
    }
    IssuerKeys::from_jwks(&reply.body).map_err(|e| e.to_string())?;
    let cache_control = reply.header("cache-control").map(str::to_owned);
    let text = String::from_utf8(reply.body).map_err(|_| "the key set is not UTF-8".to_owned())?;
    Ok(CachedKeySet::new(text, now_ms, cache_control.as_deref()))
}

/// Stores the set (even one that is not fresh at all: it may still stand in while the issuer
/// is down); a failure costs the next request a fetch, nothing else.
fn save(store: &key_value::Store, key: &str, set: &CachedKeySet) {
    if let Err(e) = store.set(key, &set.to_bytes()) {
        eprintln!("acquire: sign-in: storing the key set: {e}");
    }
}
