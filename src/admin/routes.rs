//! The admin API's route table ([`ADMIN_PATHS`]): every path, its operations and the
//! statuses each can answer, and [`route`], which maps a request to an [`Endpoint`].

use crate::api::{ApiError, RouteSpec};

// --- Routes --------------------------------------------------------------------------------

/// What an admin request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /organizations`
    ListOrganizations,
    /// `POST /organizations`
    CreateOrganization,
    /// `GET /organizations/{organization_id}`
    GetOrganization,
    /// `GET /organizations/{organization_id}/audit-events`
    OrganizationAudit,
    /// `GET /products`
    ListProducts,
    /// `POST /products`
    CreateProduct,
    /// `GET /products/{product_id}`
    GetProduct,
    /// `GET /licenses`
    ListLicenses,
    /// `POST /licenses`
    CreateLicense,
    /// `GET /licenses/{license_id}`
    GetLicense,
    /// `PATCH /licenses/{license_id}`
    UpdateLicense,
    /// `POST /licenses/{license_id}/suspend`
    SuspendLicense,
    /// `POST /licenses/{license_id}/reinstate`
    ReinstateLicense,
    /// `POST /licenses/{license_id}/revoke`
    RevokeLicense,
    /// `GET /licenses/{license_id}/sessions`
    LicenseSessions,
    /// `GET /licenses/{license_id}/audit-events`
    LicenseAudit,
    /// `DELETE /sessions/{session_id}`
    ReleaseSession,
    /// `POST /kv/rebuild`
    RebuildKv,
    /// `POST /kv/sweep`
    SweepKv,
    /// `POST /prune`
    Prune,
    /// `GET /organizations/{organization_id}/keys`
    ListKeys,
    /// `POST /organizations/{organization_id}/keys`
    CreateKey,
    /// `DELETE /keys/{key_id}`
    RevokeKey,
    /// `GET /licenses/{license_id}/usage`
    LicenseUsage,
    /// `GET /organizations/{organization_id}/usage`
    OrganizationUsage,
}

/// One method of an admin path.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// The method.
    pub method: &'static str,
    /// What it does.
    pub endpoint: Endpoint,
    /// Every status it can answer (besides an unexpected 500).
    pub statuses: &'static [u16],
}

/// One admin path and its methods.
#[derive(Debug, Clone, Copy)]
pub struct AdminPath {
    /// The template, with at most one `{parameter}` segment.
    pub pattern: &'static str,
    /// The methods, for a 405's `Allow` header; the same as `operations`' methods.
    pub methods: &'static [&'static str],
    /// What each method does.
    pub operations: &'static [Operation],
}

const fn op(method: &'static str, endpoint: Endpoint, statuses: &'static [u16]) -> Operation {
    Operation {
        method,
        endpoint,
        statuses,
    }
}

// Every operation may answer 400 (bad query string or body), 401 and 503 (database); those
// that a `read` key or an organization key may not use also answer 403.
const LIST: &[u16] = &[200, 400, 401, 503];
const LIST_FILTERED: &[u16] = &[200, 400, 401, 404, 503];
const GET_ONE: &[u16] = &[200, 400, 401, 404, 503];
const CREATE: &[u16] = &[201, 400, 401, 403, 413, 415, 503];
const CREATE_UNDER: &[u16] = &[201, 400, 401, 403, 404, 413, 415, 503];
const CREATE_PRODUCT: &[u16] = &[201, 400, 401, 403, 404, 409, 413, 415, 503];
const CHANGE: &[u16] = &[200, 400, 401, 403, 404, 409, 413, 415, 503];
const REVOKE: &[u16] = &[200, 400, 401, 403, 404, 413, 415, 503];
const RELEASE: &[u16] = &[200, 400, 401, 403, 404, 503];
const OPERATOR: &[u16] = &[200, 400, 401, 403, 503];
const OPERATOR_BODY: &[u16] = &[200, 400, 401, 403, 413, 415, 503];

/// The admin API: the component routes with it, and a test holds `openapi.json` to it.
pub const ADMIN_PATHS: &[AdminPath] = &[
    AdminPath {
        pattern: "/api/v1/admin/organizations",
        methods: &["GET", "POST"],
        operations: &[
            op("GET", Endpoint::ListOrganizations, LIST),
            op("POST", Endpoint::CreateOrganization, CREATE),
        ],
    },
    AdminPath {
        pattern: "/api/v1/admin/organizations/{organization_id}",
        methods: &["GET"],
        operations: &[op("GET", Endpoint::GetOrganization, GET_ONE)],
    },
    AdminPath {
        pattern: "/api/v1/admin/organizations/{organization_id}/audit-events",
        methods: &["GET"],
        operations: &[op("GET", Endpoint::OrganizationAudit, GET_ONE)],
    },
    AdminPath {
        pattern: "/api/v1/admin/organizations/{organization_id}/usage",
        methods: &["GET"],
        operations: &[op("GET", Endpoint::OrganizationUsage, GET_ONE)],
    },
    AdminPath {
        pattern: "/api/v1/admin/products",
        methods: &["GET", "POST"],
        operations: &[
            op("GET", Endpoint::ListProducts, LIST_FILTERED),
            op("POST", Endpoint::CreateProduct, CREATE_PRODUCT),
        ],
    },
    AdminPath {
        pattern: "/api/v1/admin/products/{product_id}",
        methods: &["GET"],
        operations: &[op("GET", Endpoint::GetProduct, GET_ONE)],
    },
    AdminPath {
        pattern: "/api/v1/admin/licenses",
        methods: &["GET", "POST"],
        operations: &[
            op("GET", Endpoint::ListLicenses, LIST_FILTERED),
            op("POST", Endpoint::CreateLicense, CREATE_UNDER),
        ],
    },
    AdminPath {
        pattern: "/api/v1/admin/licenses/{license_id}",
        methods: &["GET", "PATCH"],
        operations: &[
            op("GET", Endpoint::GetLicense, GET_ONE),
            op("PATCH", Endpoint::UpdateLicense, CHANGE),
        ],
    },
    AdminPath {
        pattern: "/api/v1/admin/licenses/{license_id}/suspend",
        methods: &["POST"],
        operations: &[op("POST", Endpoint::SuspendLicense, CHANGE)],
    },
    AdminPath {
        pattern: "/api/v1/admin/licenses/{license_id}/reinstate",
        methods: &["POST"],
        operations: &[op("POST", Endpoint::ReinstateLicense, CHANGE)],
    },
    AdminPath {
        pattern: "/api/v1/admin/licenses/{license_id}/revoke",
        methods: &["POST"],
        operations: &[op("POST", Endpoint::RevokeLicense, REVOKE)],
    },
    AdminPath {
        pattern: "/api/v1/admin/licenses/{license_id}/sessions",
        methods: &["GET"],
        operations: &[op("GET", Endpoint::LicenseSessions, GET_ONE)],
    },
    AdminPath {
        pattern: "/api/v1/admin/licenses/{license_id}/audit-events",
        methods: &["GET"],
        operations: &[op("GET", Endpoint::LicenseAudit, GET_ONE)],
    },
    AdminPath {
        pattern: "/api/v1/admin/licenses/{license_id}/usage",
        methods: &["GET"],
        operations: &[op("GET", Endpoint::LicenseUsage, GET_ONE)],
    },
    AdminPath {
        pattern: "/api/v1/admin/sessions/{session_id}",
        methods: &["DELETE"],
        operations: &[op("DELETE", Endpoint::ReleaseSession, RELEASE)],
    },
    AdminPath {
        pattern: "/api/v1/admin/kv/rebuild",
        methods: &["POST"],
        operations: &[op("POST", Endpoint::RebuildKv, OPERATOR)],
    },
    AdminPath {
        pattern: "/api/v1/admin/kv/sweep",
        methods: &["POST"],
        operations: &[op("POST", Endpoint::SweepKv, OPERATOR)],
    },
    AdminPath {
        pattern: "/api/v1/admin/prune",
        methods: &["POST"],
        operations: &[op("POST", Endpoint::Prune, OPERATOR_BODY)],
    },
    AdminPath {
        pattern: "/api/v1/admin/organizations/{organization_id}/keys",
        methods: &["GET", "POST"],
        operations: &[
            op("GET", Endpoint::ListKeys, GET_ONE),
            op("POST", Endpoint::CreateKey, CREATE_UNDER),
        ],
    },
    AdminPath {
        pattern: "/api/v1/admin/keys/{key_id}",
        methods: &["DELETE"],
        operations: &[op("DELETE", Endpoint::RevokeKey, RELEASE)],
    },
];

/// Every admin operation as a [`RouteSpec`].
pub fn routes() -> impl Iterator<Item = RouteSpec> {
    ADMIN_PATHS.iter().flat_map(|p| {
        p.operations.iter().map(|o| RouteSpec {
            method: o.method,
            path: p.pattern,
            statuses: o.statuses,
        })
    })
}

/// A routed admin request: the endpoint and the path parameter, if the route has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// What is asked.
    pub endpoint: Endpoint,
    /// The path template that matched (for the request log).
    pub pattern: &'static str,
    /// The `{parameter}` segment's text, unchecked.
    pub param: Option<String>,
}

/// Routes a (normalized, query-less) path and method. `HEAD` is routed as `GET`.
/// An unknown path is 404; a known path with another method is 405.
pub fn route(method: &str, path: &str) -> Result<Routed, ApiError> {
    let method = if method == "HEAD" { "GET" } else { method };
    for spec in ADMIN_PATHS {
        let Some(param) = match_pattern(spec.pattern, path) else {
            continue;
        };
        let operation = spec.operations.iter().find(|o| o.method == method).ok_or(
            ApiError::MethodNotAllowed {
                allowed: spec.methods,
            },
        )?;
        return Ok(Routed {
            endpoint: operation.endpoint,
            pattern: spec.pattern,
            param,
        });
    }
    Err(ApiError::NotFound)
}

/// `Some(param)` when `path` fits `pattern` (`param` is the `{…}` segment, if any).
fn match_pattern(pattern: &str, path: &str) -> Option<Option<String>> {
    let mut pattern_parts = pattern.split('/');
    let mut path_parts = path.split('/');
    let mut param = None;
    loop {
        match (pattern_parts.next(), path_parts.next()) {
            (None, None) => return Some(param),
            (Some(p), Some(s)) if p.starts_with('{') => {
                if s.is_empty() {
                    return None;
                }
                param = Some(s.to_owned());
            }
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::ADMIN_PREFIX;

    #[test]
    fn routes_match_templates_and_refuse_other_methods() {
        let r = route("GET", "/api/v1/admin/licenses/lic_1").unwrap();
        assert_eq!(r.endpoint, Endpoint::GetLicense);
        assert_eq!(r.param.as_deref(), Some("lic_1"));
        assert_eq!(
            route("HEAD", "/api/v1/admin/licenses").unwrap().endpoint,
            Endpoint::ListLicenses
        );
        assert_eq!(
            route("POST", "/api/v1/admin/licenses/lic_1/revoke")
                .unwrap()
                .endpoint,
            Endpoint::RevokeLicense
        );
        assert_eq!(
            route("DELETE", "/api/v1/admin/licenses/lic_1"),
            Err(ApiError::MethodNotAllowed {
                allowed: &["GET", "PATCH"]
            })
        );
        for missing in [
            "/api/v1/admin",
            "/api/v1/admin/licenses/lic_1/explode",
            "/api/v1/admin/licenses//suspend",
            "/api/v1/admin/kv",
        ] {
            assert_eq!(route("GET", missing), Err(ApiError::NotFound), "{missing}");
        }
    }

    #[test]
    fn the_route_table_is_consistent() {
        for p in ADMIN_PATHS {
            let methods: Vec<&str> = p.operations.iter().map(|o| o.method).collect();
            assert_eq!(methods, p.methods, "{}", p.pattern);
            assert!(p.pattern.starts_with(ADMIN_PREFIX));
            for o in p.operations {
                assert!(o.statuses.contains(&401) && o.statuses.contains(&503));
            }
        }
        assert_eq!(routes().count(), 25);
    }
}
