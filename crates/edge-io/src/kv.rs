//! The key-value writes the components share: ending a session in the read model.

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
