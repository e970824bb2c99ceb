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
//! - `vt:{sha256(token)}` and `vtx:{session_id}`: the verified-token cache of the validate
//!   component ([`crate::token::sealed`]), at most one entry per session. Losing them costs
//!   only a signature check.

use serde::{Deserialize, Serialize};

/// The key of a license's state.
pub fn license_key(license_id: &str) -> String {
    format!("lic:{license_id}")
}

/// The key of a session's end marker.
pub fn session_key(session_id: &str) -> String {
    format!("sess:{session_id}")
}

/// The key naming a session's current verified-token cache entry (see
/// [`crate::token::sealed`]): the validate component keeps one entry per session and deletes
/// the previous one when a new token of the session is cached.
pub fn sealed_index_key(session_id: &str) -> String {
    format!("vtx:{session_id}")
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
