//! The edge read model: what the validate component reads from the key-value store to decide
//! whether a verified token is still in force, and the keys it lives under.
//!
//! PostgreSQL is the source of truth. The acquire and admin components write these entries
//! through in the same request that changes the database, and the admin rebuild rewrites them
//! all. Entries are small JSON documents; times are Unix epoch milliseconds.
//!
//! - `lic:{license_id}` ([`LicenseState`]) exists for every license. Its absence means the read
//!   model was lost (a Redis flush), so validation cannot answer authoritatively.
//! - `sess:{session_id}` ([`SessionEnded`]) exists only for a session that ended before its
//!   token expired; it can be deleted once `token_expires_at` has passed.
//! - `vt:{session_id}` ([`sealed_key`]): the validate component's verified-token cache entry for
//!   the session's current token ([`crate::token::sealed`]). It also stands for "this session
//!   had not ended when the entry was written, and nobody has ended it since", so a validation
//!   that uses it reads only `lic:`. Losing it costs only a signature check.
//!
//! # Ending a session: the two-writer protocol
//!
//! A session end and a validation that caches the session's token can run at the same time.
//! They keep "a `vt:` entry exists only for a session not ended" by ordering their operations
//! (each a single key-value call, which Redis serializes):
//!
//! - the writer that ends a session sets `sess:{id}`, then deletes `vt:{id}`
//!   (`edge_http::end_session`);
//! - a validation that found the session live sets `vt:{id}`, then reads `sess:{id}` again, and
//!   deletes `vt:{id}` if the marker is there now (the validate component's `remember`).
//!
//! Whatever the interleaving, either the validation's second read sees the marker, or the
//! writer's delete comes after the validation's set: no entry survives an end. The tests check
//! every interleaving. A key-value failure part-way through a session end is answered as such
//! (503), and the admin rebuild repeats both steps for every ended session.

use serde::{Deserialize, Serialize};

/// The key of a license's state.
pub fn license_key(license_id: &str) -> String {
    format!("lic:{license_id}")
}

/// The key of a session's end marker.
pub fn session_key(session_id: &str) -> String {
    format!("sess:{session_id}")
}

/// The key of a session's verified-token cache entry (see the module docs).
pub fn sealed_key(session_id: &str) -> String {
    format!("vt:{session_id}")
}

/// A license's standing, as the edge sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenseStatus {
    /// In force.
    Active,
    /// Temporarily withdrawn; may be reinstated.
    Suspended,
    /// Permanently withdrawn.
    Revoked,
}

impl LicenseStatus {
    /// The status as stored and shown (`active`, `suspended`, `revoked`).
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseStatus::Active => "active",
            LicenseStatus::Suspended => "suspended",
            LicenseStatus::Revoked => "revoked",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => LicenseStatus::Active,
            "suspended" => LicenseStatus::Suspended,
            "revoked" => LicenseStatus::Revoked,
            _ => return None,
        })
    }
}

/// `lic:{license_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseState {
    /// Whether the license is in force.
    pub status: LicenseStatus,
    /// When the license itself ends, if it does.
    pub expires_at: Option<i64>,
    /// When this entry was written.
    pub updated_at: i64,
}

/// `sess:{session_id}`: the session ended (released, force-released or replaced).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEnded {
    /// When it ended.
    pub ended_at: i64,
    /// The latest `exp` of any token issued for the session; after it the marker is moot.
    pub token_expires_at: i64,
}

/// Serializes an entry for the key-value store.
pub fn encode<T: Serialize>(entry: &T) -> Vec<u8> {
    // Invariant: these types serialize to JSON infallibly (no maps with non-string keys).
    serde_json::to_vec(entry).expect("read-model entries serialize")
}

/// Parses an entry read from the key-value store; `None` when it is not one.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

/// Why a verified token is no longer in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// License active and unexpired, session not ended.
    InForce,
    /// The license is suspended.
    LicenseSuspended,
    /// The license is revoked.
    LicenseRevoked,
    /// The license's own end date has passed.
    LicenseExpired,
    /// The session was ended.
    SessionEnded,
    /// The read model has no (or an unreadable) entry for the license: no authoritative answer.
    Unknown,
}

/// Decides a verified token's standing from the entries read for its license and session.
pub fn standing(license: Option<&[u8]>, session: Option<&[u8]>, now_ms: i64) -> Standing {
    let Some(license) = license.and_then(decode::<LicenseState>) else {
        return Standing::Unknown;
    };
    match license.status {
        LicenseStatus::Revoked => return Standing::LicenseRevoked,
        LicenseStatus::Suspended => return Standing::LicenseSuspended,
        LicenseStatus::Active => {}
    }
    if license.expires_at.is_some_and(|end| end <= now_ms) {
        return Standing::LicenseExpired;
    }
    if session.is_some() {
        return Standing::SessionEnded;
    }
    Standing::InForce
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lic(status: LicenseStatus, expires_at: Option<i64>) -> Vec<u8> {
        encode(&LicenseState {
            status,
            expires_at,
            updated_at: 1,
        })
    }

    #[test]
    fn standing_follows_the_entries() {
        let ended = encode(&SessionEnded {
            ended_at: 5,
            token_expires_at: 9,
        });
        let active = lic(LicenseStatus::Active, None);
        assert_eq!(standing(Some(&active), None, 10), Standing::InForce);
        assert_eq!(
            standing(Some(&active), Some(&ended), 10),
            Standing::SessionEnded
        );
        assert_eq!(standing(None, None, 10), Standing::Unknown);
        assert_eq!(standing(Some(b"garbage"), None, 10), Standing::Unknown);
        let s = lic(LicenseStatus::Suspended, None);
        assert_eq!(
            standing(Some(&s), Some(&ended), 10),
            Standing::LicenseSuspended
        );
        let r = lic(LicenseStatus::Revoked, None);
        assert_eq!(standing(Some(&r), None, 10), Standing::LicenseRevoked);
        let e = lic(LicenseStatus::Active, Some(10));
        assert_eq!(standing(Some(&e), None, 10), Standing::LicenseExpired);
        assert_eq!(standing(Some(&e), None, 9), Standing::InForce);
    }

    /// One step of the session-end protocol of the module docs.
    #[derive(Clone, Copy)]
    enum Step {
        /// Set `sess:{id}`.
        SetMarker,
        /// Delete `vt:{id}`.
        DeleteEntry,
        /// Set `vt:{id}`.
        SetEntry,
        /// Read `sess:{id}`; when the marker is there, the entry is deleted afterwards.
        CheckMarker,
    }

    /// What a writer that ends a session does, in order.
    const SESSION_END: [Step; 2] = [Step::SetMarker, Step::DeleteEntry];

    /// What a validation that found the session live does to cache its token, in order.
    const CACHE_WRITE: [Step; 2] = [Step::SetEntry, Step::CheckMarker];

    /// Runs the two sequences of the session-end protocol in every interleaving against a
    /// model store (`marker`, `entry`) and checks that no entry outlives an end.
    #[test]
    fn no_interleaving_leaves_an_entry_for_an_ended_session() {
        fn run(order: &[bool]) -> (bool, bool) {
            let (mut marker, mut entry) = (false, false);
            let (mut end, mut cache) = (SESSION_END.iter(), CACHE_WRITE.iter());
            let mut delete_after_check = false;
            for &end_moves in order {
                let step = if end_moves { end.next() } else { cache.next() };
                match step.copied() {
                    Some(Step::SetMarker) => marker = true,
                    Some(Step::DeleteEntry) => entry = false,
                    Some(Step::SetEntry) => entry = true,
                    Some(Step::CheckMarker) => delete_after_check = marker,
                    None => unreachable!(),
                }
            }
            if delete_after_check {
                entry = false;
            }
            (marker, entry)
        }
        let mut orders = 0;
        for bits in 0u8..16 {
            let order: Vec<bool> = (0..4).map(|i| bits & (1 << i) != 0).collect();
            if order.iter().filter(|&&e| e).count() != SESSION_END.len() {
                continue;
            }
            orders += 1;
            let (marker, entry) = run(&order);
            assert!(marker && !entry, "order {order:?} left an entry");
        }
        assert_eq!(orders, 6);
    }

    #[test]
    fn entries_round_trip_and_keys_are_prefixed() {
        let state = LicenseState {
            status: LicenseStatus::Suspended,
            expires_at: Some(3),
            updated_at: 2,
        };
        assert_eq!(decode::<LicenseState>(&encode(&state)), Some(state));
        assert_eq!(license_key("L1"), "lic:L1");
        assert_eq!(session_key("S1"), "sess:S1");
        assert_eq!(
            LicenseStatus::parse("revoked"),
            Some(LicenseStatus::Revoked)
        );
        assert_eq!(LicenseStatus::parse("x"), None);
    }
}
