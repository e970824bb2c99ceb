//! What the database answers: the rows the admin SQL functions return as JSON, and their
//! outcomes mapped to errors.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::api::ApiError;
use crate::outcome::AdminOutcome;
use crate::read_model::{LicenseState, LicenseStatus};

// --- What the database answers -------------------------------------------------------------

/// An organization as the SQL functions answer it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Organization {
    /// `org_…`
    pub id: String,
    /// Display name.
    pub name: String,
    /// Epoch ms.
    pub created_at: i64,
}

/// An organization API key as the SQL functions answer it (never its hash).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiKey {
    /// `key_…`
    pub id: String,
    /// The organization it acts for.
    pub organization_id: String,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    /// What it is for.
    pub name: String,
    /// `admin` or `read`.
    pub role: String,
    /// Epoch ms.
    pub created_at: i64,
    /// Who issued it (`admin` for the operator, `key:<id>` for a key).
    pub created_by: String,
    /// Epoch ms, to the minute; `None` if never used.
    pub last_used_at: Option<i64>,
    /// Epoch ms; `None` while it works.
    pub revoked_at: Option<i64>,
}

/// The key a request presented, as `le_admin_key_auth` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KeyAuth {
    /// `key_…`
    pub id: String,
    /// The organization it acts for.
    pub organization_id: String,
    /// `admin` or `read`.
    pub role: String,
}

/// The organization owning a resource, as `le_admin_owner` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Owner {
    /// `org_…`
    pub organization_id: String,
}

/// A product as the SQL functions answer it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Product {
    /// `prod_…`
    pub id: String,
    /// Owner.
    pub organization_id: String,
    /// The tokens' audience.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Epoch ms.
    pub created_at: i64,
    /// Whether its seats need a signed-in user (rows from before 0007 read as false).
    #[serde(default)]
    pub sign_in_required: bool,
}

/// A license as the SQL functions answer it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct License {
    /// `lic_…`
    pub id: String,
    /// Owner.
    pub organization_id: String,
    /// Product.
    pub product_id: String,
    /// The product's code.
    pub product_code: String,
    /// Standing.
    pub status: LicenseStatus,
    /// Plan name.
    pub plan: String,
    /// Seat limit.
    pub max_seats: u32,
    /// Enabled features.
    pub features: Vec<String>,
    /// End (epoch ms), if any.
    pub expires_at: Option<i64>,
    /// Lease length, seconds.
    pub lease_seconds: u32,
    /// Longest borrow, seconds (0: none).
    pub max_borrow_seconds: u32,
    /// How long after `exp` an offline verifier may accept the license's tokens, seconds.
    pub offline_grace_seconds: u32,
    /// Acquire attempts per minute.
    pub rate_limit_per_minute: u32,
    /// Live seats one signed-in user may hold (none: no limit).
    #[serde(default)]
    pub max_seats_per_user: Option<u32>,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms.
    pub updated_at: i64,
    /// Bumped by every change; the read model's writers converge on it.
    pub version: i64,
}

impl License {
    /// The read-model entry for this license, written at `now_ms`.
    pub fn state(&self, now_ms: i64) -> LicenseState {
        license_state(self.status, self.expires_at, self.version, now_ms)
    }
}

/// A session (seat lease) as the SQL functions answer it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Session {
    /// `ses_…`
    pub id: String,
    /// Its license.
    pub license_id: String,
    /// Hash of the machine id.
    pub machine_hash: String,
    /// The client's `User-Agent`, if any.
    pub user_agent: Option<String>,
    /// Client metadata.
    pub metadata: Value,
    /// Epoch ms.
    pub started_at: i64,
    /// Epoch ms.
    pub last_heartbeat_at: i64,
    /// When the lease lapses unless renewed (epoch ms).
    pub expires_at: i64,
    /// End of an offline borrow, if any.
    pub borrowed_until: Option<i64>,
    /// When it ended, if it did.
    pub ended_at: Option<i64>,
    /// `released`, `force_released`, `lapsed`, ...
    pub end_reason: Option<String>,
    /// Until when it holds its seat (epoch ms): past its lease by the validation leeway, and
    /// to the end of a borrow even when ended.
    pub seat_until: i64,
    /// The signed-in user's `sub`, if the session was taken signed in.
    #[serde(default)]
    pub user_sub: Option<String>,
    /// The signed-in user's e-mail, if their ID token carried one.
    #[serde(default)]
    pub user_email: Option<String>,
}

/// An audit event as the SQL functions answer it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AuditEvent {
    /// Increasing id.
    pub id: i64,
    /// Epoch ms.
    pub occurred_at: i64,
    /// Organization, if known.
    pub organization_id: Option<String>,
    /// License, if known.
    pub license_id: Option<String>,
    /// Session, if any.
    pub session_id: Option<String>,
    /// `admin` or `client`.
    pub actor: String,
    /// e.g. `license.suspend`.
    pub action: String,
    /// e.g. `ok`, `no_seats`.
    pub outcome: String,
    /// Structured details.
    pub details: Value,
}

/// A license with its live seats, as the detail route answers it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LicenseDetail {
    /// The license.
    pub license: License,
    /// Live sessions now.
    pub active_seats: u32,
    /// The newest live sessions, at most [`super::MAX_EMBEDDED_SESSIONS`].
    #[serde(default)]
    pub sessions: Vec<Session>,
}

/// The license entry and session marker the rebuild writes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LicenseStanding {
    /// License id.
    pub id: String,
    /// Standing.
    pub status: LicenseStatus,
    /// End (epoch ms), if any.
    pub expires_at: Option<i64>,
    /// The license row's version.
    pub version: i64,
}

impl LicenseStanding {
    /// The read-model entry for this standing, written at `now_ms`.
    pub fn state(&self, now_ms: i64) -> LicenseState {
        license_state(self.status, self.expires_at, self.version, now_ms)
    }
}

/// A session that ended while its token may still verify.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EndedSession {
    /// Session id.
    pub id: String,
    /// When it ended.
    pub ended_at: i64,
    /// The latest `exp` of its tokens.
    pub token_expires_at: i64,
}

/// Reads a SQL function's JSON answer into `T`; a wrong shape is an internal error (the
/// component logs it).
pub fn from_db<T: DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    serde_json::from_value(body).map_err(|_| ApiError::Internal)
}

/// The error for a SQL function's refusal; `Ok` for the outcomes that succeed.
pub fn outcome(outcome: AdminOutcome) -> Result<(), ApiError> {
    use AdminOutcome as O;
    Err(match outcome {
        O::Ok | O::Changed | O::Unchanged | O::Released | O::AlreadyEnded => return Ok(()),
        O::OrganizationNotFound => ApiError::NoSuch {
            resource: "organization",
        },
        O::ProductNotFound => ApiError::NoSuch {
            resource: "product",
        },
        O::LicenseNotFound => ApiError::NoSuch {
            resource: "license",
        },
        O::SessionNotFound => ApiError::NoSuch {
            resource: "session",
        },
        O::KeyNotFound => ApiError::NoSuch { resource: "key" },
        O::DuplicateProductCode => ApiError::DuplicateProductCode,
        O::RevokedReinstate => ApiError::RevocationIsFinal {
            action: "be reinstated",
        },
        O::RevokedSuspend => ApiError::RevocationIsFinal {
            action: "be suspended",
        },
        O::RevokedUpdate => ApiError::RevocationIsFinal {
            action: "be changed",
        },
    })
}

/// The read-model entry for a license's standing at row `version`, written at `now_ms`.
pub fn license_state(
    status: LicenseStatus,
    expires_at: Option<i64>,
    version: i64,
    now_ms: i64,
) -> LicenseState {
    LicenseState {
        status,
        expires_at,
        updated_at: now_ms,
        version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How a component reads an outcome: a string no enum knows is an internal error.
    fn outcome_of(text: &str) -> Result<(), ApiError> {
        AdminOutcome::parse(text).map_or(Err(ApiError::Internal), outcome)
    }

    #[test]
    fn outcomes_map_to_errors() {
        assert_eq!(outcome_of("ok"), Ok(()));
        assert_eq!(
            outcome_of("license_not_found"),
            Err(ApiError::NoSuch {
                resource: "license"
            })
        );
        assert_eq!(
            outcome_of("duplicate_product_code"),
            Err(ApiError::DuplicateProductCode)
        );
        assert_eq!(
            outcome_of("revoked_reinstate")
                .unwrap_err()
                .describe()
                .status,
            409
        );
        assert_eq!(outcome_of("???"), Err(ApiError::Internal));
    }
}
