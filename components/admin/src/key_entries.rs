//! The read-model entries of license-key validation that the admin component writes and
//! sweeps (`license_edge::read_model::keys`): `key:{hash}` for a new license and for every
//! license in the rebuild, `seat:{license}:{machine}` for every live session in the rebuild,
//! `key:index` once the rebuild's key entries are all written, and the sweep's deletion of
//! seat entries no token can use any more.

use super::{call, decode, kv_failed, REBUILD_BATCH};
use edge_io::db::text_or_null;
use license_edge::api::ApiError;
use license_edge::read_model::encode;
use license_edge::read_model::keys::{
    key_entry_key, seat_candidate, seat_key, KeyEntry, KeyIndex, SeatEntry, KEY_INDEX,
};
use serde::Deserialize;
use serde_json::json;
use spin_sdk::key_value::{Error, Store};
use spin_sdk::pg4::{Connection, ParameterValue as P};

/// Writes a license's key entry (`key:{key_hash}` -> `license_id`).
pub(crate) fn write_key(store: &Store, key_hash: &str, license_id: &str) -> Result<(), Error> {
    let entry = KeyEntry {
        license_id: license_id.to_owned(),
    };
    store.set(&key_entry_key(key_hash), &encode(&entry))
}

/// Removes the key entry of a license whose row was not created (its key was never shown).
pub(crate) fn remove_key(store: &Store, key_hash: &str, license_id: &str) {
    if let Err(e) = store.delete(&key_entry_key(key_hash)) {
        eprintln!("admin: could not remove the key entry of uncreated license {license_id}: {e}");
    }
}

#[derive(Deserialize)]
struct LicenseKey {
    id: String,
    key_hash: String,
}

#[derive(Deserialize)]
struct LiveSeat {
    id: String,
    license_id: String,
    machine_hash: String,
    expires_at: i64,
}

/// The rebuild's key entries: `key:` for every license, then `key:index`, which tells key
/// validation that a key without an entry is unknown rather than lost. Answers how many
/// entries it wrote. A key never changes, so there is nothing to converge on.
pub(crate) fn rebuild_keys(conn: &Connection, kv: &Store, now: i64) -> Result<u64, ApiError> {
    let mut written = 0u64;
    let mut after: Option<String> = None;
    loop {
        let (_, body) = call(
            conn,
            "SELECT * FROM le_admin_license_keys($1::text, $2::int)",
            &[text_or_null(after.as_deref()), P::Int32(REBUILD_BATCH)],
        )?;
        let batch: Vec<LicenseKey> = decode(body)?;
        for l in &batch {
            write_key(kv, &l.key_hash, &l.id).map_err(kv_failed)?;
            written += 1;
        }
        match batch.last() {
            Some(last) if batch.len() == REBUILD_BATCH as usize => after = Some(last.id.clone()),
            _ => break,
        }
    }
    let index = KeyIndex { rebuilt_at: now };
    kv.set(KEY_INDEX, &encode(&index)).map_err(kv_failed)?;
    Ok(written)
}

/// The rebuild's seat entries: `seat:` for every session holding a live seat. A seat entry
/// written from a state read before a release is harmless (the release's end marker is read
/// with it); one read before a heartbeat may state an earlier end, which the session's next
/// heartbeat rewrites.
pub(crate) fn rebuild_seats(conn: &Connection, kv: &Store) -> Result<u64, ApiError> {
    let mut written = 0u64;
    let mut after: Option<String> = None;
    loop {
        let (_, body) = call(
            conn,
            "SELECT * FROM le_admin_live_seats($1::text, $2::int)",
            &[text_or_null(after.as_deref()), P::Int32(REBUILD_BATCH)],
        )?;
        let batch: Vec<LiveSeat> = decode(body)?;
        for s in &batch {
            let entry = SeatEntry {
                session_id: s.id.clone(),
                expires_at: s.expires_at,
            };
            kv.set(&seat_key(&s.license_id, &s.machine_hash), &encode(&entry))
                .map_err(kv_failed)?;
            written += 1;
        }
        match batch.last() {
            Some(last) if batch.len() == REBUILD_BATCH as usize => after = Some(last.id.clone()),
            _ => return Ok(written),
        }
    }
}

/// For the sweep: deletes the seat entries of the swept `sessions` (no token of theirs can
/// validate any more) when the entry there is expired. An entry that names a newer session of
/// the same machine is unexpired and stays. Answers how many it deleted.
pub(crate) fn sweep_seats(
    conn: &Connection,
    kv: &Store,
    sessions: &[String],
    now: i64,
) -> Result<u64, ApiError> {
    if sessions.is_empty() {
        return Ok(0);
    }
    #[derive(Deserialize)]
    struct SessionSeat {
        license_id: String,
        machine_hash: String,
    }
    let (_, body) = call(
        conn,
        "SELECT * FROM le_admin_session_seats(($1::text)::jsonb)",
        &[P::Str(json!(sessions).to_string())],
    )?;
    let seats: Vec<SessionSeat> = decode(body)?;
    let mut deleted = 0u64;
    for s in &seats {
        let key = seat_key(&s.license_id, &s.machine_hash);
        let entry = kv.get(&key).map_err(kv_failed)?;
        if entry.is_some() && seat_candidate(entry.as_deref(), now).is_none() {
            kv.delete(&key).map_err(kv_failed)?;
            deleted += 1;
        }
    }
    Ok(deleted)
}
