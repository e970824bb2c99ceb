//! License-key validation: `{"license_key", "machine_id"?, "action"?}`, answered from the
//! key-value read model alone (`license_edge::read_model::keys`), never PostgreSQL.
//!
//! The reads, in order: the client address's guess counter (refused with 429 before anything
//! else once it is used up), `key:{hash}`, then for a known key `lic:{license}` and, when a
//! machine is named and the license is in force, `seat:{license}:{machine}` and the end marker
//! `sess:{session}` of the session it names. An unknown key counts one guess and reads
//! `key:index`: every unknown key takes the same steps, whatever the key.

use edge_io::{error, json, now_millis};
use license_edge::api::ApiError;
use license_edge::key_validation::{
    client_address, guess_counter_key, key_answer, key_code, GuessCounter, KeyCode, KeyRequest,
};
use license_edge::read_model::keys::{
    key_entry_key, seat_candidate, seat_key, KeyEntry, MachineSeat, KEY_INDEX,
};
use license_edge::read_model::{decode, encode, license_key, session_key, LicenseState};
use spin_sdk::http::{Request, Response};
use spin_sdk::key_value::Store;

/// Answers a key validation; refusals are answered here too, so the 429 carries `Retry-After`.
pub fn validate_key(req: &Request, request: &KeyRequest, request_id: &str) -> Response {
    match answer(req, request, request_id) {
        Ok(resp) => resp,
        Err(e) => {
            let mut resp = error(&e, request_id);
            if let ApiError::KeyGuessesLimited { retry_after_s, .. } = e {
                resp.set_header("retry-after", retry_after_s.to_string());
            }
            resp
        }
    }
}

/// The address guesses are counted under: Spin's own `spin-client-addr`, the last one (a client
/// may send the header too, and Spin appends its value after the client's).
/// `X-Forwarded-For` is never read: any client can write it.
fn client(req: &Request) -> String {
    let spin_value = req
        .headers()
        .filter(|(name, _)| name.eq_ignore_ascii_case("spin-client-addr"))
        .filter_map(|(_, value)| value.as_str().map(str::to_owned))
        .last();
    client_address(spin_value.as_deref())
}

fn answer(req: &Request, request: &KeyRequest, request_id: &str) -> Result<Response, ApiError> {
    let now = now_millis();
    let store = Store::open_default().map_err(unavailable)?;
    let counter_key = guess_counter_key(&client(req));
    let counter = GuessCounter::read(store.get(&counter_key).map_err(unavailable)?.as_deref());
    if let Some(refused) = GuessCounter::refusal(counter.as_ref(), now) {
        return Err(refused);
    }
    let Some(entry) = store
        .get(&key_entry_key(&request.key_hash))
        .map_err(unavailable)?
    else {
        // Counted first, and failing closed: a guess that cannot be counted is not answered.
        let counted = GuessCounter::after_failure(counter.as_ref(), now);
        store
            .set(&counter_key, &encode(&counted))
            .map_err(unavailable)?;
        if store.get(KEY_INDEX).map_err(unavailable)?.is_none() {
            eprintln!(
                "validate: no key entry and no key:index: the key entries were never built or were lost; run POST /api/v1/admin/kv/rebuild"
            );
            return Err(ApiError::RevocationUnavailable);
        }
        return Ok(json(
            200,
            &key_answer(KeyCode::NotFound, None, now, request_id),
        ));
    };
    let license_id = decode::<KeyEntry>(&entry)
        .ok_or_else(|| lost("a key entry is unreadable"))?
        .license_id;
    let state = store
        .get(&license_key(&license_id))
        .map_err(unavailable)?
        .as_deref()
        .and_then(decode::<LicenseState>)
        .ok_or_else(|| lost(&format!("no read-model entry for license {license_id}")))?;
    let mut code = key_code(&state, MachineSeat::NotAsked, now);
    if let (KeyCode::Valid, Some(machine)) = (code, &request.machine_hash) {
        let seat = machine_seat(&store, &license_id, machine, now)?;
        code = key_code(&state, seat, now);
    }
    Ok(json(
        200,
        &key_answer(code, Some((&license_id, &state)), now, request_id),
    ))
}

/// Whether `machine` holds a live seat: an unexpired seat entry whose session has no end
/// marker. The marker is read every time, so a release is seen on the next request even when
/// an older acquire's or heartbeat's seat write lands after it.
fn machine_seat(
    store: &Store,
    license_id: &str,
    machine: &str,
    now: i64,
) -> Result<MachineSeat, ApiError> {
    let entry = store
        .get(&seat_key(license_id, machine))
        .map_err(unavailable)?;
    let Some(seat) = seat_candidate(entry.as_deref(), now) else {
        return Ok(MachineSeat::NotSeated);
    };
    let ended = store
        .get(&session_key(&seat.session_id))
        .map_err(unavailable)?;
    Ok(if ended.is_some() {
        MachineSeat::NotSeated
    } else {
        MachineSeat::Seated
    })
}

fn lost(what: &str) -> ApiError {
    eprintln!("validate: key validation: {what}; the read model needs a rebuild");
    ApiError::RevocationUnavailable
}

fn unavailable(e: spin_sdk::key_value::Error) -> ApiError {
    eprintln!("validate: key validation: key-value store: {e}");
    ApiError::RevocationUnavailable
}
