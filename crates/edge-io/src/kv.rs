//! The key-value writes the components share: ending a session in the read model, and
//! recording which machine holds a seat (for license-key validation).

use license_edge::read_model::keys::{seat_key, SeatEntry};
use license_edge::read_model::{encode, session_key, verify_cache_key, SessionEnded};
use spin_sdk::key_value::{Error, Store};

/// Ends a session in the edge read model: sets its end marker, then deletes its
/// verified-token cache entry (`license_edge::read_model`). The marker is the one write that
/// matters: validation reads it on every request, so an error setting it means the edge may
/// still take the session's token, and callers answer it as such. The delete is housekeeping
/// (a left entry vouches for nothing once the marker is there, and the sweep removes it), so
/// its failure is logged, not returned.
pub fn end_session(store: &Store, session_id: &str, marker: &SessionEnded) -> Result<(), Error> {
    store.set(&session_key(session_id), &encode(marker))?;
    if let Err(e) = store.delete(&verify_cache_key(session_id)) {
        eprintln!(
            "session {session_id} ended; its verified-token cache entry stays until the sweep: {e}"
        );
    }
    Ok(())
}

/// Records in the edge read model that `machine_hash` holds a seat of `license_id` through
/// `session_id` until `expires_at`, after PostgreSQL granted or extended it (acquire,
/// heartbeat, borrow), for license-key validation's `NO_SEAT` check
/// (`license_edge::read_model::keys`). A failure is logged and never fails the grant: the
/// machine then reads as holding no seat until its next heartbeat, which is the safe side.
/// A write that lands late cannot seat a released machine: validation also reads the
/// session's end marker, which release writes fail-closed.
pub fn record_seat(license_id: &str, machine_hash: &str, session_id: &str, expires_at: i64) {
    let entry = SeatEntry {
        session_id: session_id.to_owned(),
        expires_at,
    };
    let written = Store::open_default()
        .and_then(|store| store.set(&seat_key(license_id, machine_hash), &encode(&entry)));
    if let Err(e) = written {
        eprintln!(
            "session {session_id} holds its seat, but its seat entry was not written (key validation answers NO_SEAT for its machine until the next heartbeat): {e}"
        );
    }
}
