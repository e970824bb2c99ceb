//! The public route table: every operation of the health, validate and acquire components,
//! as `openapi.json` documents it.

/// One operation of the HTTP API as `openapi.json` documents it: the method, the path template
/// (`{name}` for a parameter) and every status the operation can answer.
///
/// A 405 belongs to a path rather than an operation (any other method gets it) and an
/// unexpected 500 to no operation, so neither is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    /// The method, upper case.
    pub method: &'static str,
    /// The path template, as in `openapi.json`.
    pub path: &'static str,
    /// Every status the operation can answer.
    pub statuses: &'static [u16],
}

/// The public (non-admin) operations, served by the health, validate and acquire components.
/// The admin component's own table is [`crate::admin::ADMIN_PATHS`]; a test holds both to
/// `openapi.json`.
pub const PUBLIC_ROUTES: &[RouteSpec] = &[
    RouteSpec {
        method: "GET",
        path: "/api/v1/health/",
        statuses: &[200],
    },
    RouteSpec {
        method: "GET",
        path: "/api/v1/health/ready/",
        statuses: &[200, 503],
    },
    RouteSpec {
        method: "GET",
        path: "/api/v1/health/db/",
        statuses: &[200, 503],
    },
    RouteSpec {
        method: "GET",
        path: "/api/v1/openapi.json",
        statuses: &[200],
    },
    RouteSpec {
        method: "POST",
        path: "/api/v1/licenses/validate/",
        statuses: &[200, 400, 401, 413, 415, 429, 503],
    },
    RouteSpec {
        method: "GET",
        path: "/.well-known/jwks.json",
        statuses: &[200],
    },
    RouteSpec {
        method: "POST",
        path: "/api/v1/licenses/acquire/",
        statuses: &[200, 201, 400, 401, 403, 409, 413, 415, 429, 503],
    },
    RouteSpec {
        method: "PATCH",
        path: "/api/v1/licenses/sessions/{session_id}/heartbeat/",
        statuses: &[200, 401, 403, 404, 410, 503],
    },
    RouteSpec {
        method: "POST",
        path: "/api/v1/licenses/sessions/{session_id}/borrow/",
        statuses: &[200, 400, 401, 403, 404, 410, 413, 415, 503],
    },
    RouteSpec {
        method: "DELETE",
        path: "/api/v1/licenses/sessions/{session_id}/",
        statuses: &[200, 401, 404, 409, 503],
    },
];
