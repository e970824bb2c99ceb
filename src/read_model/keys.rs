//! The read-model entries behind license-key validation (`POST /api/v1/licenses/validate/`
//! with `license_key`): which license a key belongs to, which machine holds a live seat, and
//! whether the key entries were ever built. No I/O.
//!
//! - `key:{sha256-hex of the key}` ([`KeyEntry`]): a pointer to the license; its standing is
//!   read from `lic:{license_id}`, so every write-through and convergence of `lic:` (suspend,
//!   reinstate, revoke, a new end date) is what key validation sees too. The hash is the one
//!   PostgreSQL stores ([`crate::seats::license_key_hash`]); the key itself is never stored.
//!   Written by the admin component when it creates a license (before the row, beside `lic:`)
//!   and by the rebuild; it lives as long as its license.
//! - `key:index` ([`KeyIndex`]): written by the rebuild once every key entry is in place. A key
//!   with no entry is unknown only while this exists; without it the store was flushed or
//!   never built (an upgrade from a release without key entries) and the answer is 503
//!   `revocation_unavailable`, not a `NOT_FOUND` that would tell a paying client its key is
//!   wrong.
//! - `seat:{license_id}:{machine_hash}` ([`SeatEntry`]): the session a machine last held a
//!   seat with and that session's `expires_at`, written by acquire, heartbeat and borrow after
//!   the seat is granted or extended. A machine holds a live seat when the entry is unexpired
//!   (its `expires_at` plus the validation leeway, as long as a token of the session can
//!   validate) **and** the session's end marker `sess:{session_id}` is absent. Release and the
//!   admin's force release write that marker fail-closed, so a seat entry that lands late
//!   (an acquire's or heartbeat's write delayed past the release) names an ended session and
//!   seats nobody. A seat write that fails is logged and never fails the grant: the machine
//!   then reads as `NO_SEAT` until its next heartbeat (fail closed). The sweep deletes entries
//!   past their expiry; the rebuild writes them for every live session.

use serde::{Deserialize, Serialize};

use super::{decode, TOKEN_LEEWAY_MS};

/// The key of the marker the rebuild writes once every key entry exists (see the module docs).
pub const KEY_INDEX: &str = "key:index";

/// The key of a license key's entry, from the key's hash (64 hex digits, so it never collides
/// with [`KEY_INDEX`]).
pub fn key_entry_key(key_hash: &str) -> String {
    format!("key:{key_hash}")
}

/// The key of a machine's seat entry on a license.
pub fn seat_key(license_id: &str, machine_hash: &str) -> String {
    format!("seat:{license_id}:{machine_hash}")
}

/// `key:{hash}`: the license a key belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEntry {
    /// The license's id.
    pub license_id: String,
}

/// `key:index`: when the rebuild last wrote every key entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyIndex {
    /// When the rebuild that wrote it finished its key entries (epoch ms).
    pub rebuilt_at: i64,
}

/// `seat:{license_id}:{machine_hash}`: the machine's latest granted or extended session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatEntry {
    /// The session holding the seat.
    pub session_id: String,
    /// The session's lease (or borrow) end when the entry was written (epoch ms).
    pub expires_at: i64,
}

impl SeatEntry {
    /// Whether a token of the session can still validate at `now_ms` (its end plus the
    /// validation leeway): until then the entry may seat its machine, after it never does.
    pub fn unexpired(&self, now_ms: i64) -> bool {
        self.expires_at.saturating_add(TOKEN_LEEWAY_MS) > now_ms
    }
}

/// Whether a machine named in a key validation holds a live seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineSeat {
    /// No machine was named.
    NotAsked,
    /// The machine holds a live session.
    Seated,
    /// The machine holds none: no entry, an expired one, or one whose session ended.
    NotSeated,
}

/// The session a seat entry names, if the entry is there, well formed and unexpired: the one
/// whose end marker decides whether the machine is seated. A malformed entry seats nobody.
pub fn seat_candidate(entry: Option<&[u8]>, now_ms: i64) -> Option<SeatEntry> {
    entry
        .and_then(decode::<SeatEntry>)
        .filter(|e| e.unexpired(now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_model::encode;

    #[test]
    fn keys_are_prefixed_and_the_index_is_no_hash() {
        let hash = crate::seats::license_key_hash("LE-x");
        assert_eq!(key_entry_key(&hash), format!("key:{hash}"));
        assert_ne!(key_entry_key(&hash), KEY_INDEX);
        assert_eq!(seat_key("lic_1", "abc"), "seat:lic_1:abc");
    }

    #[test]
    fn a_seat_entry_seats_until_the_leeway_after_its_end() {
        let entry = SeatEntry {
            session_id: "ses_1".into(),
            expires_at: 1_000,
        };
        let bytes = encode(&entry);
        assert_eq!(
            seat_candidate(Some(&bytes), 1_000 + TOKEN_LEEWAY_MS - 1),
            Some(entry.clone())
        );
        assert_eq!(seat_candidate(Some(&bytes), 1_000 + TOKEN_LEEWAY_MS), None);
        assert_eq!(seat_candidate(None, 0), None);
        assert_eq!(seat_candidate(Some(b"{\"session_id\":1}"), 0), None);
        assert!(!SeatEntry {
            session_id: "s".into(),
            expires_at: i64::MAX
        }
        .unexpired(i64::MAX));
    }
}
