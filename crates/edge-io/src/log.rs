//! The request log: one JSON line per request on the component's stderr, which Spin collects
//! (its terminal or `--log-dir`; the pod's log on SpinKube).
//!
//! A handler starts a [`RequestLog`] before anything else, notes what it learns on the way
//! ([`route`], [`organization`], [`license`], [`session`], [`key`], [`code`]) and ends with
//! [`RequestLog::finish`], which sets `X-Request-Id` on the answer and writes the line with the
//! duration from the monotonic clock. The notes live in an instance-wide slot rather than in
//! arguments threaded through every handler: Spin gives every request a fresh instance and the
//! components are single-threaded, so the slot belongs to exactly one request.
//!
//! Only ids and codes are noted; the line's type ([`RequestLine`]) has no field for anything
//! else. [`crate::error`] notes the error code by itself.

use crate::{method_name, new_request_id, now_millis};
use license_edge::api::log::{choose_request_id, millis_from_nanos, RequestLine};
use license_edge::time::rfc3339_from_millis;
use spin_sdk::http::{IncomingRequest, Response};
use std::cell::RefCell;
use std::io::Write;

#[derive(Default)]
struct Notes {
    request_id: Option<String>,
    route: Option<&'static str>,
    code: Option<String>,
    organization_id: Option<String>,
    license_id: Option<String>,
    session_id: Option<String>,
    key_id: Option<String>,
}

thread_local! {
    static CURRENT: RefCell<Notes> = RefCell::new(Notes::default());
}

fn note(f: impl FnOnce(&mut Notes)) {
    CURRENT.with(|c| f(&mut c.borrow_mut()));
}

/// The route template that matched (`/api/v1/admin/licenses/{license_id}`).
pub fn route(template: &'static str) {
    note(|n| n.route = Some(template));
}

/// The error code of the answer, or validate's code (`VALID`, `EXPIRED`, ...).
pub fn code(code: &str) {
    note(|n| n.code = Some(code.to_owned()));
}

/// The organization the request concerns (an `org_…` id the handler read or checked).
pub fn organization(id: &str) {
    note(|n| n.organization_id = Some(id.to_owned()));
}

/// The license the request concerns (a `lic_…` id the handler read or checked).
pub fn license(id: &str) {
    note(|n| n.license_id = Some(id.to_owned()));
}

/// The session the request concerns (a `ses_…` id the handler read or checked).
pub fn session(id: &str) {
    note(|n| n.session_id = Some(id.to_owned()));
}

/// The organization API key (its `key_…` id) that authenticated an admin request.
pub fn key(id: &str) {
    note(|n| n.key_id = Some(id.to_owned()));
}

/// The current request's id, once a [`RequestLog`] has begun.
pub fn current_request_id() -> Option<String> {
    CURRENT.with(|c| c.borrow().request_id.clone())
}

/// One request's log, from its start to its answer.
#[derive(Debug)]
pub struct RequestLog {
    component: &'static str,
    method: String,
    request_id: String,
    started_ns: u64,
}

impl RequestLog {
    /// Starts the clock on a request of `component`, and takes its id: the client's
    /// `X-Request-Id` when it sent exactly one well-formed one
    /// ([`license_edge::api::log::is_well_formed_request_id`]), else a fresh `req_…` id.
    pub fn begin(component: &'static str, req: &IncomingRequest) -> Self {
        let started_ns = wasi::clocks::monotonic_clock::now();
        let sent = req.headers().get("x-request-id");
        let texts: Vec<&str> = sent
            .iter()
            .filter_map(|v| std::str::from_utf8(v).ok())
            .collect();
        // A value that is not UTF-8 makes the lists differ in length: a fresh id, then.
        let request_id = if texts.len() == sent.len() {
            choose_request_id(&texts, new_request_id)
        } else {
            new_request_id()
        };
        CURRENT.with(|c| {
            *c.borrow_mut() = Notes {
                request_id: Some(request_id.clone()),
                ..Notes::default()
            }
        });
        RequestLog {
            component,
            method: method_name(&req.method()).to_owned(),
            request_id,
            started_ns,
        }
    }

    /// The request's id, for the error envelope and the answers' `meta`.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// Sets `X-Request-Id` on the answer and writes the request's one log line.
    pub fn finish(self, mut resp: Response) -> Response {
        let elapsed = wasi::clocks::monotonic_clock::now().saturating_sub(self.started_ns);
        resp.set_header("x-request-id", self.request_id.clone());
        let status = *resp.status();
        let notes = CURRENT.with(|c| std::mem::take(&mut *c.borrow_mut()));
        let line = RequestLine {
            ts: rfc3339_from_millis(now_millis()),
            level: RequestLine::level_for(status),
            msg: "request",
            component: self.component,
            request_id: self.request_id,
            method: self.method,
            route: notes.route.unwrap_or("unmatched").to_owned(),
            status,
            code: notes.code,
            duration_ms: millis_from_nanos(elapsed),
            organization_id: notes.organization_id,
            license_id: notes.license_id,
            session_id: notes.session_id,
            key_id: notes.key_id,
        };
        let mut text = line.to_json();
        text.push('\n');
        // One write, so that lines of concurrent instances never interleave; a log that cannot
        // be written must not fail the request.
        let _ = std::io::stderr().write_all(text.as_bytes());
        resp
    }
}
