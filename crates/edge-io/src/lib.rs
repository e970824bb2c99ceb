//! The edge I/O shared by license-edge's Spin components: HTTP answers here, PostgreSQL in
//! [`db`], the key-value writes that end a session in [`kv`], the one log line per request in
//! [`log`].
//!
//! A component handler parses the request, calls the core, and answers through this crate, so
//! every component speaks the same envelope. It does not route (Spin routes to components; a
//! component dispatches on its own few paths) and holds no business rules.

use futures::TryStreamExt;
use license_edge::api::{error_envelope, request_id, ApiError};
use spin_sdk::http::{IncomingRequest, Method, Request, Response};

pub mod db;
pub mod kv;
pub mod log;
pub mod outbound;

/// The current time as Unix epoch milliseconds, from the host's wall clock.
pub fn now_millis() -> i64 {
    let now = wasi::clocks::wall_clock::now();
    // i64 milliseconds overflow in the year 292 million; the cast cannot truncate before then.
    (now.seconds as i64) * 1000 + i64::from(now.nanoseconds / 1_000_000)
}

/// 16 bytes from the host's cryptographically secure random source (ids).
pub fn random16() -> [u8; 16] {
    random_bytes()
}

/// 32 bytes from the host's cryptographically secure random source (secrets: license and API
/// keys), in one host call.
pub fn random32() -> [u8; 32] {
    random_bytes()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let bytes = wasi::random::random::get_random_bytes(N as u64);
    let mut out = [0u8; N];
    for (dst, src) in out.iter_mut().zip(bytes) {
        *dst = src;
    }
    out
}

/// A fresh request id from the host's random source.
pub fn new_request_id() -> String {
    request_id(random16())
}

/// Reads `req` into a [`Request`], keeping at most `limit + 1` bytes of its body: enough for
/// the route's size check to refuse an oversize body as before, without holding it. Spin
/// hands a component bodies of any size (100 MB included), and spin-sdk's own conversion
/// reads them whole before the handler runs. A body that cannot be read is a 400.
pub async fn read_request(req: IncomingRequest, limit: usize) -> Result<Request, ApiError> {
    let mut builder = Request::builder();
    builder
        .method(req.method())
        .uri(req.uri())
        .headers(req.headers());
    let mut stream = req.into_body_stream();
    let mut body = Vec::new();
    while body.len() <= limit {
        match stream.try_next().await {
            Ok(Some(chunk)) => {
                let room = limit + 1 - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => break,
            Err(e) => {
                eprintln!("reading the request body: {e:?}");
                return Err(ApiError::BadRequest {
                    message: "the request body could not be read".into(),
                });
            }
        }
    }
    Ok(builder.body(body).build())
}

/// A request header as text, if present and valid UTF-8.
pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.header(name).and_then(|v| v.as_str())
}

/// The request path without its query, with leading duplicate slashes folded and one trailing
/// slash removed, so `//api/v1/health/` and `/api/v1/health` compare equal, as Spin routes them.
pub fn normalized_path(req: &Request) -> String {
    let trimmed = req.path().trim_start_matches('/');
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    format!("/{trimmed}")
}

/// A JSON response with the given status and body. An object without `meta` gets
/// `"meta": {"request_id": …}` of the current request ([`log::RequestLog`]), as the error
/// envelope carries it.
pub fn json(status: u16, body: &serde_json::Value) -> Response {
    let text = body.to_string();
    let text = match (body.as_object(), log::current_request_id()) {
        (Some(map), Some(id)) if !map.contains_key("meta") => with_meta(text, &id),
        _ => text,
    };
    json_text(status, text)
}

/// `text`, a serialized JSON object, with `meta.request_id` added as its last member.
fn with_meta(mut text: String, request_id: &str) -> String {
    // Invariant: `text` is an object serialized by serde_json, so it ends with `}`.
    text.pop();
    if text.len() > 1 {
        text.push(',');
    }
    text.push_str("\"meta\":");
    text.push_str(&serde_json::json!({ "request_id": request_id }).to_string());
    text.push('}');
    text
}

/// A JSON response from text already serialized, with the same headers as [`json`].
pub fn json_text(status: u16, body: String) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(body)
        .build()
}

/// The error envelope for `err`, with the status and headers it calls for.
pub fn error(err: &ApiError, request_id: &str) -> Response {
    log::code(err.describe().code);
    let (status, body) = error_envelope(err, request_id);
    let mut builder = Response::builder();
    builder
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .header("x-request-id", request_id);
    if let Some(allow) = err.allow_header() {
        builder.header("allow", allow);
    }
    builder.body(body).build()
}

/// Refuses a method the route does not take. `HEAD` is accepted wherever `GET` is.
pub fn allow_methods(req: &Request, allowed: &'static [&'static str]) -> Result<(), ApiError> {
    let method = method_name(req.method());
    let ok = allowed.contains(&method) || (method == "HEAD" && allowed.contains(&"GET"));
    if ok {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed { allowed })
    }
}

/// The method's name as it appears on the wire.
pub fn method_name(method: &Method) -> &str {
    match method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Patch => "PATCH",
        Method::Head => "HEAD",
        Method::Options => "OPTIONS",
        Method::Connect => "CONNECT",
        Method::Trace => "TRACE",
        Method::Other(name) => name,
    }
}
