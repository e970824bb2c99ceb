//! Who calls the admin API and what they may do.
//!
//! Two kinds of credential, both `Authorization: Bearer …`:
//! - the **operator token** (the `admin_token` variable; up to two values separated by a comma,
//!   so it can be rotated without downtime): every organization, creating organizations, and
//!   the key-value rebuild, sweep and prune;
//! - an **organization API key** (`lek_` and 64 hex digits): one organization, with the role
//!   `admin` (everything inside it, including keys of a role no higher than its own) or `read`
//!   (lists, gets and the audit trail).
//!
//! Every failure to authenticate is the same 401, whatever the path. A role or scope that does
//! not allow the operation is 403 `insufficient_scope`, decided from the route alone (before
//! any id is looked at, so it reveals nothing). A resource of another organization is 404, as
//! if it did not exist; the admin component checks ownership with `le_admin_owner`.

use license_edge_token::encoding::{constant_time_eq, hex};
use sha2::{Digest, Sha256};

use super::routes::Endpoint;
use super::MIN_ADMIN_TOKEN_LEN;
use crate::api::{bearer, ApiError, Bearer};

/// What every organization API key starts with, so that people and secret scanners can tell
/// what leaked.
pub const ORG_KEY_PREFIX: &str = "lek_";
/// How many characters of a key are kept in the clear to name it (`lek_` and 8 hex digits).
pub const ORG_KEY_SHOWN_CHARS: usize = 12;

/// An organization key's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Lists, gets and the audit trail.
    Read,
    /// Everything inside the organization.
    Admin,
}

impl Role {
    /// The role as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => Some(Role::Read),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// What an `Authorization` header presents, before any database lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// One of the configured operator tokens.
    Operator,
    /// Something shaped like an organization key: its hash, to look up.
    OrganizationKey {
        /// [`org_key_hash`] of the key.
        hash: String,
    },
}

/// Reads the credential: an operator token (compared in constant time with every configured
/// value, each at least [`MIN_ADMIN_TOKEN_LEN`] characters; shorter ones authorize nobody), or
/// an organization key to look up. Anything else is 401.
pub fn authenticate(
    authorization: Option<&str>,
    operator_tokens: &str,
) -> Result<Credential, ApiError> {
    let Bearer::Credential(given) = bearer(authorization) else {
        return Err(ApiError::Unauthorized);
    };
    // Every configured token is compared, whichever matches, so timing says nothing.
    let operator = operator_tokens
        .split(',')
        .map(str::trim)
        .filter(|t| t.len() >= MIN_ADMIN_TOKEN_LEN)
        .fold(false, |matched, t| {
            constant_time_eq(given.as_bytes(), t.as_bytes()) | matched
        });
    if operator {
        return Ok(Credential::Operator);
    }
    if is_org_key(given) {
        return Ok(Credential::OrganizationKey {
            hash: org_key_hash(given),
        });
    }
    Err(ApiError::Unauthorized)
}

/// Who is calling, once the credential is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The operator token.
    Operator,
    /// An organization API key that is not revoked.
    Organization {
        /// The key's id (`key_…`).
        key_id: String,
        /// The organization it belongs to.
        organization_id: String,
        /// Its role.
        role: Role,
    },
}

impl Caller {
    /// The organization the caller is confined to; `None` for the operator.
    pub fn organization(&self) -> Option<&str> {
        match self {
            Caller::Operator => None,
            Caller::Organization {
                organization_id, ..
            } => Some(organization_id),
        }
    }

    /// Whether the caller may use `endpoint` at all (scope and role; ownership of the ids it
    /// names is checked separately).
    pub fn permit(&self, endpoint: Endpoint) -> Result<(), ApiError> {
        let role = match self {
            Caller::Operator => return Ok(()),
            Caller::Organization { role, .. } => *role,
        };
        match needs(endpoint) {
            Needs::Operator => Err(ApiError::InsufficientScope {
                needs: "the operator token",
            }),
            Needs::Admin if role < Role::Admin => Err(ApiError::InsufficientScope {
                needs: "an admin key",
            }),
            _ => Ok(()),
        }
    }

    /// Whether the caller may issue a key with `role`: the operator any, a key one no higher
    /// than its own.
    pub fn may_grant(&self, role: Role) -> Result<(), ApiError> {
        match self {
            Caller::Organization { role: own, .. } if role > *own => {
                Err(ApiError::InsufficientScope {
                    needs: "a key of at least the role it grants",
                })
            }
            _ => Ok(()),
        }
    }

    /// How the audit trail names the caller: `admin` for the operator (as before keys
    /// existed), `key:<id>` for an organization key.
    pub fn actor(&self) -> String {
        match self {
            Caller::Operator => "admin".to_owned(),
            Caller::Organization { key_id, .. } => format!("key:{key_id}"),
        }
    }
}

/// What an endpoint needs of an organization key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    Read,
    Admin,
    Operator,
}

fn needs(endpoint: Endpoint) -> Needs {
    use Endpoint as E;
    match endpoint {
        E::CreateOrganization | E::RebuildKv | E::SweepKv | E::Prune => Needs::Operator,
        E::ListOrganizations
        | E::GetOrganization
        | E::OrganizationAudit
        | E::ListProducts
        | E::GetProduct
        | E::ListLicenses
        | E::GetLicense
        | E::LicenseSessions
        | E::LicenseAudit
        | E::LicenseUsage
        | E::OrganizationUsage
        | E::ListKeys => Needs::Read,
        E::CreateProduct
        | E::CreateLicense
        | E::UpdateLicense
        | E::SuspendLicense
        | E::ReinstateLicense
        | E::RevokeLicense
        | E::ReleaseSession
        | E::CreateKey
        | E::RevokeKey => Needs::Admin,
    }
}

/// A new organization key from 32 random bytes: [`ORG_KEY_PREFIX`] and 64 hex digits.
pub fn new_org_key(random: [u8; 32]) -> String {
    format!("{ORG_KEY_PREFIX}{}", hex(&random))
}

/// Whether `text` has the shape of an organization key.
pub fn is_org_key(text: &str) -> bool {
    text.strip_prefix(ORG_KEY_PREFIX)
        .is_some_and(|rest| rest.len() == 64 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The SHA-256 (hex) under which a key is stored. The key itself is never stored.
pub fn org_key_hash(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

/// The part of a key kept in the clear to name it in lists and the audit trail.
pub fn org_key_shown(key: &str) -> String {
    key.chars().take(ORG_KEY_SHOWN_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "admin-token-0123456789";

    #[test]
    fn operator_tokens_need_an_exact_match() {
        let ok = authenticate(Some(&format!("Bearer {TOKEN}")), TOKEN);
        assert_eq!(ok, Ok(Credential::Operator));
        for bad in [
            None,
            Some("Bearer admin-token-012345678"),
            Some("Bearer admin-token-01234567890"),
            Some("Basic admin-token-0123456789"),
            Some("Bearer"),
            Some(TOKEN),
        ] {
            assert_eq!(
                authenticate(bad, TOKEN),
                Err(ApiError::Unauthorized),
                "{bad:?}"
            );
        }
        // A short configured token authorizes nobody, even when matched.
        assert_eq!(
            authenticate(Some("Bearer short"), "short"),
            Err(ApiError::Unauthorized)
        );
    }

    #[test]
    fn two_operator_tokens_work_at_once_for_a_rotation() {
        let both = "old-operator-token-0001, new-operator-token-0002";
        for t in ["old-operator-token-0001", "new-operator-token-0002"] {
            assert_eq!(
                authenticate(Some(&format!("Bearer {t}")), both),
                Ok(Credential::Operator)
            );
        }
        assert_eq!(
            authenticate(
                Some("Bearer old-operator-token-0001, new-operator-token-0002"),
                both
            ),
            Err(ApiError::Unauthorized)
        );
        // An empty value between commas is no token.
        assert_eq!(
            authenticate(Some("Bearer x"), ",,"),
            Err(ApiError::Unauthorized)
        );
    }

    #[test]
    fn organization_keys_are_recognised_hashed_and_shown_by_prefix() {
        let key = new_org_key([0xab; 32]);
        assert!(key.starts_with("lek_") && key.len() == 68, "{key}");
        assert!(is_org_key(&key));
        assert!(!is_org_key("lek_xyz") && !is_org_key(&key[..67]) && !is_org_key("LE-ABC"));
        assert_eq!(
            authenticate(Some(&format!("Bearer {key}")), TOKEN),
            Ok(Credential::OrganizationKey {
                hash: org_key_hash(&key)
            })
        );
        assert_ne!(org_key_hash(&key), key);
        assert_eq!(org_key_shown(&key), "lek_abababab");
    }

    #[test]
    fn roles_and_scopes_decide_from_the_route_alone() {
        let key = |role| Caller::Organization {
            key_id: "key_1".into(),
            organization_id: "org_1".into(),
            role,
        };
        let (admin, read) = (key(Role::Admin), key(Role::Read));
        assert_eq!(read.permit(Endpoint::GetLicense), Ok(()));
        assert_eq!(read.permit(Endpoint::ListKeys), Ok(()));
        for write in [
            Endpoint::CreateLicense,
            Endpoint::RevokeLicense,
            Endpoint::CreateKey,
        ] {
            assert_eq!(admin.permit(write), Ok(()));
            assert!(matches!(
                read.permit(write),
                Err(ApiError::InsufficientScope { .. })
            ));
        }
        for operator_only in [
            Endpoint::CreateOrganization,
            Endpoint::RebuildKv,
            Endpoint::Prune,
        ] {
            assert!(matches!(
                admin.permit(operator_only),
                Err(ApiError::InsufficientScope { .. })
            ));
            assert_eq!(Caller::Operator.permit(operator_only), Ok(()));
        }
        assert_eq!(admin.may_grant(Role::Admin), Ok(()));
        assert!(read.may_grant(Role::Admin).is_err());
        assert_eq!(read.may_grant(Role::Read), Ok(()));
        assert_eq!(Caller::Operator.actor(), "admin");
        assert_eq!(admin.actor(), "key:key_1");
        assert_eq!(admin.organization(), Some("org_1"));
    }
}
