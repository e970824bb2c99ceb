//! The read model: what the validate component reads from the key-value store to decide
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
//! - `vt:{session_id}` ([`verify_cache_key`]): the validate component's verified-token cache entry for
//!   the session's current token ([`crate::read_model::verify_cache`]). It stands in for the signature
//!   check and for nothing else: a validation that uses it still reads `lic:` and `sess:`.
//!   Losing it costs only a signature check.
//! - `key:{key_hash}`, `key:index` and `seat:{license_id}:{machine_hash}`: what license-key
//!   validation reads ([`keys`]).
//!
//! # Ending a session fails closed
//!
//! Whatever ends a session sets `sess:{id}` (the one write that matters) and then deletes
//! `vt:{id}` (housekeeping). Validation reads `sess:{id}` on every request, cache hit or not,
//! so a session whose marker is written is refused on the next request whatever happened to
//! its cache entry: a delete that failed, a cache write that landed late, or one whose answer
//! was lost. A failure to write the marker is answered as such (503, recorded), and the admin
//! rebuild writes every marker again.
//!
//! # Writers converge on the database
//!
//! Two changes to one license commit in one order and may reach the store in the other. So a
//! writer of `lic:{id}` writes the state it has, reads the license's latest version back from
//! PostgreSQL, and writes again while that version is not the one it wrote ([`converge`]). The
//! last write to land is then always followed by a read that finds it current: when the
//! writers settle, the store equals the database. `sess:{id}` never needs this: a session's
//! end, once recorded, never changes, so every writer writes the same marker.
//!
//! # Lifetimes
//!
//! `lic:` lives as long as its license. `sess:` and `vt:` matter only while a token of the
//! session can still validate: until `token_expires_at` (a `vt:` entry states its token's
//! `exp`) plus the validation leeway. After that the sweep (`POST /api/v1/admin/kv/sweep`,
//! run on a schedule) deletes them; nothing else ever does, so Redis must not evict keys
//! (`maxmemory-policy noeviction`): an evicted marker would bring an ended session back.

pub mod keys;
pub mod verify_cache;

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
pub fn verify_cache_key(session_id: &str) -> String {
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
    /// The license row's version in PostgreSQL when this state was read (every change bumps
    /// it). Entries written before versions existed read as 0.
    #[serde(default)]
    pub version: i64,
}

/// The clock leeway validation grants on a token's `exp`, in milliseconds
/// ([`license_edge_token::jwt::DEFAULT_LEEWAY_SECS`]); the SQL function `le_token_leeway_ms` says the same.
pub const TOKEN_LEEWAY_MS: i64 = license_edge_token::jwt::DEFAULT_LEEWAY_SECS as i64 * 1000;

/// Whether a session that ended still needs its end marker at `now_ms`: while a token of it
/// can still validate (its `exp` plus the leeway).
pub fn marker_needed(token_expires_at: i64, now_ms: i64) -> bool {
    token_expires_at.saturating_add(TOKEN_LEEWAY_MS) > now_ms
}

/// How [`converge`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Converged<E> {
    /// The last state written was the latest when read back.
    Current,
    /// The license no longer exists (nothing to keep in step).
    Gone,
    /// The store or the database failed; the error says which.
    Failed(E),
    /// The state kept changing for `rounds` rounds; the writers of those changes converge.
    StillChanging {
        /// Rounds tried.
        rounds: u32,
    },
}

/// The most write-and-reread rounds one writer makes before it reports that the license kept
/// changing under it. Each round past the first needs another change committed in between, so
/// only a burst of more changes than this to one license can exhaust it; the writer then
/// answers that the change is recorded but not propagated (a retry propagates it).
pub const MAX_CONVERGE_ROUNDS: u32 = 64;

/// Writes `first` with `write`, then reads the license's latest state with `latest` and
/// writes again while its version differs from the one written, at most
/// [`MAX_CONVERGE_ROUNDS`] times (see the module docs). This function does no I/O itself.
pub fn converge<E>(
    first: LicenseState,
    mut write: impl FnMut(&LicenseState) -> Result<(), E>,
    mut latest: impl FnMut() -> Result<Option<LicenseState>, E>,
) -> Converged<E> {
    let mut state = first;
    for _ in 0..MAX_CONVERGE_ROUNDS {
        if let Err(e) = write(&state) {
            return Converged::Failed(e);
        }
        match latest() {
            Err(e) => return Converged::Failed(e),
            Ok(None) => return Converged::Gone,
            Ok(Some(now)) if now.version == state.version => return Converged::Current,
            Ok(Some(now)) => state = now,
        }
    }
    Converged::StillChanging {
        rounds: MAX_CONVERGE_ROUNDS,
    }
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
            version: 1,
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

    fn state(status: LicenseStatus, version: i64) -> LicenseState {
        LicenseState {
            status,
            expires_at: None,
            updated_at: version,
            version,
        }
    }

    /// Two admin changes (v1 reinstate, v2 suspend) whose writes reach the store in every
    /// order, each writer following [`converge`]: the store always ends at the latest state.
    /// With a single write each (last writer wins), one order leaves the stale v1 in place.
    #[test]
    fn writers_converge_on_the_latest_version_in_every_order() {
        use LicenseStatus::{Active, Suspended};
        // Each writer's steps: write its state, read the database back, write again if stale.
        // A schedule says which writer moves next; the database holds v2 from the start of the
        // schedule (both changes committed before either write lands).
        fn run(schedule: &[usize], converging: bool) -> LicenseState {
            let db = state(Suspended, 2);
            let store = std::cell::RefCell::new(state(Active, 0));
            let mut pending: Vec<Vec<LicenseState>> =
                vec![vec![state(Active, 1)], vec![state(Suspended, 2)]];
            for &w in schedule {
                let Some(next) = pending[w].pop() else {
                    continue;
                };
                *store.borrow_mut() = next.clone();
                if converging && next.version != db.version {
                    pending[w].push(db.clone());
                }
            }
            for writer in &mut pending {
                while let Some(next) = writer.pop() {
                    *store.borrow_mut() = next.clone();
                    if converging && next.version != db.version {
                        writer.push(db.clone());
                    }
                }
            }
            store.into_inner()
        }
        let schedules: [&[usize]; 4] = [&[0, 1], &[1, 0], &[0, 1, 0], &[1, 0, 1]];
        for schedule in schedules {
            assert_eq!(run(schedule, true).version, 2, "{schedule:?}");
        }
        assert_eq!(
            run(&[1, 0], false).version,
            1,
            "last writer wins without converging"
        );
    }

    #[test]
    fn converge_rewrites_until_the_version_read_back_is_the_one_written() {
        let mut written = Vec::new();
        let mut versions = vec![2, 3, 3].into_iter();
        let out: Converged<()> = converge(
            state(LicenseStatus::Active, 1),
            |s| {
                written.push(s.version);
                Ok(())
            },
            || Ok(versions.next().map(|v| state(LicenseStatus::Revoked, v))),
        );
        assert_eq!(out, Converged::Current);
        assert_eq!(
            written,
            vec![1, 2, 3],
            "stale, then each newer state read back"
        );

        let gone: Converged<()> =
            converge(state(LicenseStatus::Active, 1), |_| Ok(()), || Ok(None));
        assert_eq!(gone, Converged::Gone);
        let failed = converge(state(LicenseStatus::Active, 1), |_| Err("kv"), || Ok(None));
        assert_eq!(failed, Converged::Failed("kv"));
        let mut v = 1;
        let churn: Converged<()> = converge(
            state(LicenseStatus::Active, 0),
            |_| Ok(()),
            || {
                v += 1;
                Ok(Some(state(LicenseStatus::Active, v)))
            },
        );
        assert_eq!(
            churn,
            Converged::StillChanging {
                rounds: MAX_CONVERGE_ROUNDS
            }
        );
    }

    #[test]
    fn markers_matter_until_the_leeway_after_the_token_ends() {
        assert!(marker_needed(1_000, 1_000 + TOKEN_LEEWAY_MS - 1));
        assert!(!marker_needed(1_000, 1_000 + TOKEN_LEEWAY_MS));
        assert!(!marker_needed(i64::MAX, i64::MAX));
    }

    #[test]
    fn entries_round_trip_and_keys_are_prefixed() {
        let state = LicenseState {
            status: LicenseStatus::Suspended,
            expires_at: Some(3),
            updated_at: 2,
            version: 7,
        };
        assert_eq!(decode::<LicenseState>(&encode(&state)), Some(state));
        let old = br#"{"status":"active","expires_at":null,"updated_at":1}"#;
        assert_eq!(decode::<LicenseState>(old).map(|s| s.version), Some(0));
        assert_eq!(license_key("L1"), "lic:L1");
        assert_eq!(session_key("S1"), "sess:S1");
        assert_eq!(
            LicenseStatus::parse("revoked"),
            Some(LicenseStatus::Revoked)
        );
        assert_eq!(LicenseStatus::parse("x"), None);
    }
}
