//! Outbound HTTP with a deadline: one request through `wasi:http/outgoing-handler`, answered in
//! full or refused within a stated time.
//!
//! Spin sends what the component's `allowed_outbound_hosts` allows and refuses the rest at
//! once. It honours the request's connect, first-byte and between-bytes timeouts, but without
//! them it waits up to 600 s for each, and a frozen peer would hold the request that long. So
//! [`send`] sets all three and also races every wait against a monotonic-clock timer of its own:
//! whatever the host does, the call returns by its deadline. Synchronous on purpose: a handler
//! needs the answer before it can go on, and blocking on a `wasi:io` poll list costs no
//! executor.

use std::time::Duration;
use wasi::clocks::monotonic_clock;
use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasi::io::poll;
use wasi::io::streams::StreamError;

/// An outbound request, built by the caller.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    /// `GET` or `POST`.
    pub method: &'a str,
    /// An absolute `http://` or `https://` URL.
    pub url: &'a str,
    /// Request headers, name and value.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body (empty for none).
    pub body: &'a [u8],
}

/// A response read in full.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Response headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The first header named `name` (lower case), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why an outbound request gave no usable answer. None of them carries the request's secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundError {
    /// The URL is not an absolute `http(s)://` URL.
    BadUrl,
    /// The host refused the destination: it is not in `allowed_outbound_hosts`.
    Denied,
    /// No full answer before the deadline.
    Timeout,
    /// The body was longer than the caller allows.
    TooLarge,
    /// Connection refused, DNS failure, TLS or protocol error: the host's words.
    Failed(String),
}

impl std::fmt::Display for OutboundError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadUrl => f.write_str("not an absolute http(s) URL"),
            Self::Denied => f.write_str("destination not in allowed_outbound_hosts"),
            Self::Timeout => f.write_str("no answer before the deadline"),
            Self::TooLarge => f.write_str("response body too large"),
            Self::Failed(why) => write!(f, "request failed: {why}"),
        }
    }
}

fn from_code(code: ErrorCode) -> OutboundError {
    match code {
        ErrorCode::HttpRequestDenied => OutboundError::Denied,
        ErrorCode::ConnectionTimeout | ErrorCode::ConnectionReadTimeout => OutboundError::Timeout,
        other => OutboundError::Failed(describe(&other)),
    }
}

/// The host's error code in WASI's own words (`connection-refused`), with what detail it
/// carries. Written out rather than derived (`{:?}`): the derived form was 7 KB of every
/// component that sends a request.
fn describe(code: &ErrorCode) -> String {
    use ErrorCode as E;
    let (name, detail) = match code {
        E::DnsTimeout => ("DNS-timeout", None),
        E::DnsError(p) => (
            "DNS-error",
            Some(p.rcode.as_deref().unwrap_or("(no rcode)")),
        ),
        E::DestinationNotFound => ("destination-not-found", None),
        E::DestinationUnavailable => ("destination-unavailable", None),
        E::DestinationIpProhibited => ("destination-IP-prohibited", None),
        E::DestinationIpUnroutable => ("destination-IP-unroutable", None),
        E::ConnectionRefused => ("connection-refused", None),
        E::ConnectionTerminated => ("connection-terminated", None),
        E::ConnectionTimeout => ("connection-timeout", None),
        E::ConnectionReadTimeout => ("connection-read-timeout", None),
        E::ConnectionWriteTimeout => ("connection-write-timeout", None),
        E::ConnectionLimitReached => ("connection-limit-reached", None),
        E::TlsProtocolError => ("TLS-protocol-error", None),
        E::TlsCertificateError => ("TLS-certificate-error", None),
        E::TlsAlertReceived(p) => (
            "TLS-alert-received",
            Some(p.alert_message.as_deref().unwrap_or("(no message)")),
        ),
        E::HttpRequestDenied => ("HTTP-request-denied", None),
        E::HttpRequestLengthRequired => ("HTTP-request-length-required", None),
        E::HttpRequestBodySize(_) => ("HTTP-request-body-size", None),
        E::HttpRequestMethodInvalid => ("HTTP-request-method-invalid", None),
        E::HttpRequestUriInvalid => ("HTTP-request-URI-invalid", None),
        E::HttpRequestUriTooLong => ("HTTP-request-URI-too-long", None),
        E::HttpRequestHeaderSectionSize(_) => ("HTTP-request-header-section-size", None),
        E::HttpRequestHeaderSize(_) => ("HTTP-request-header-size", None),
        E::HttpRequestTrailerSectionSize(_) => ("HTTP-request-trailer-section-size", None),
        E::HttpRequestTrailerSize(_) => ("HTTP-request-trailer-size", None),
        E::HttpResponseIncomplete => ("HTTP-response-incomplete", None),
        E::HttpResponseHeaderSectionSize(_) => ("HTTP-response-header-section-size", None),
        E::HttpResponseHeaderSize(_) => ("HTTP-response-header-size", None),
        E::HttpResponseBodySize(_) => ("HTTP-response-body-size", None),
        E::HttpResponseTrailerSectionSize(_) => ("HTTP-response-trailer-section-size", None),
        E::HttpResponseTrailerSize(_) => ("HTTP-response-trailer-size", None),
        E::HttpResponseTransferCoding(_) => ("HTTP-response-transfer-coding", None),
        E::HttpResponseContentCoding(_) => ("HTTP-response-content-coding", None),
        E::HttpResponseTimeout => ("HTTP-response-timeout", None),
        E::HttpUpgradeFailed => ("HTTP-upgrade-failed", None),
        E::HttpProtocolError => ("HTTP-protocol-error", None),
        E::LoopDetected => ("loop-detected", None),
        E::ConfigurationError => ("configuration-error", None),
        E::InternalError(detail) => (
            "internal-error",
            Some(detail.as_deref().unwrap_or("(no detail)")),
        ),
    };
    match detail {
        Some(detail) => format!("{name} {detail}"),
        None => name.to_owned(),
    }
}

/// The parts of an absolute URL the request needs.
fn split_url(url: &str) -> Option<(Scheme, &str, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return None,
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let path = match path.strip_prefix('/') {
        Some(_) => path.to_owned(),
        None => format!("/{path}"),
    };
    Some((scheme, authority, path))
}

/// Sends `req` and reads the answer, at most `max_body` bytes of body, all within `timeout`.
pub fn send(
    req: &Outgoing<'_>,
    timeout: Duration,
    max_body: usize,
) -> Result<Reply, OutboundError> {
    let (scheme, authority, path) = split_url(req.url).ok_or(OutboundError::BadUrl)?;
    // The whole exchange shares one deadline on the monotonic clock.
    let deadline = monotonic_clock::now().saturating_add(timeout.as_nanos() as u64);
    let remaining = || deadline.saturating_sub(monotonic_clock::now());

    let entries: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    let headers = Fields::from_list(&entries)
        .map_err(|_| OutboundError::Failed("a request header is not valid".into()))?;
    let request = OutgoingRequest::new(headers);
    let method = match req.method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        other => Method::Other(other.to_owned()),
    };
    let bad = |_| OutboundError::BadUrl;
    request.set_method(&method).map_err(bad)?;
    request.set_scheme(Some(&scheme)).map_err(bad)?;
    request.set_authority(Some(authority)).map_err(bad)?;
    request.set_path_with_query(Some(&path)).map_err(bad)?;
    let body = request
        .body()
        .map_err(|()| OutboundError::Failed("request body taken twice".into()))?;

    let options = wasi::http::types::RequestOptions::new();
    let limit = Some(timeout.as_nanos() as u64);
    // A host that does not support an option refuses to set it; the timer below still holds.
    let _ = options.set_connect_timeout(limit);
    let _ = options.set_first_byte_timeout(limit);
    let _ = options.set_between_bytes_timeout(limit);

    // The request goes out first and its body after, as the host streams it.
    let pending = outgoing_handler::handle(request, Some(options)).map_err(from_code)?;
    write_body(&body, req.body)?;
    OutgoingBody::finish(body, None).map_err(from_code)?;

    let ready = pending.subscribe();
    if !wait(&ready, remaining()) {
        return Err(OutboundError::Timeout);
    }
    drop(ready);
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(from_code(code)),
        Some(Err(())) | None => return Err(OutboundError::Failed("response lost".into())),
    };
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(n, v)| {
            (
                n.to_ascii_lowercase(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect();
    let incoming = response
        .consume()
        .map_err(|()| OutboundError::Failed("response body taken twice".into()))?;
    let stream = incoming
        .stream()
        .map_err(|()| OutboundError::Failed("response body stream taken twice".into()))?;
    let mut out = Vec::new();
    loop {
        let readable = stream.subscribe();
        if !wait(&readable, remaining()) {
            return Err(OutboundError::Timeout);
        }
        drop(readable);
        match stream.read(64 * 1024) {
            Ok(chunk) => {
                if out.len() + chunk.len() > max_body {
                    return Err(OutboundError::TooLarge);
                }
                out.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(OutboundError::Failed(e.to_debug_string()))
            }
        }
    }
    drop(stream);
    drop(incoming);
    Ok(Reply {
        status,
        headers,
        body: out,
    })
}

/// Writes the whole body, in pieces no larger than the host says it takes.
fn write_body(body: &OutgoingBody, bytes: &[u8]) -> Result<(), OutboundError> {
    if bytes.is_empty() {
        return Ok(());
    }
    let stream = body
        .write()
        .map_err(|()| OutboundError::Failed("request body stream taken twice".into()))?;
    // blocking_write_and_flush takes at most 4096 bytes a call.
    for piece in bytes.chunks(4096) {
        stream.blocking_write_and_flush(piece).map_err(|e| {
            let why = match e {
                StreamError::LastOperationFailed(e) => e.to_debug_string(),
                StreamError::Closed => "closed".to_owned(),
            };
            OutboundError::Failed(format!("writing the request body: {why}"))
        })?;
    }
    Ok(())
}

/// Waits until `ready` is ready or `nanos` pass; true when ready.
fn wait(ready: &poll::Pollable, nanos: u64) -> bool {
    if ready.ready() {
        return true;
    }
    if nanos == 0 {
        return false;
    }
    let timer = monotonic_clock::subscribe_duration(nanos);
    let woke = poll::poll(&[ready, &timer]);
    woke.contains(&0) || ready.ready()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_errors_are_named_with_their_detail() {
        use wasi::http::types::DnsErrorPayload;
        assert_eq!(
            describe(&ErrorCode::ConnectionRefused),
            "connection-refused"
        );
        let dns = ErrorCode::DnsError(DnsErrorPayload {
            rcode: Some("NXDOMAIN".into()),
            info_code: None,
        });
        assert_eq!(describe(&dns), "DNS-error NXDOMAIN");
        assert_eq!(
            describe(&ErrorCode::InternalError(None)),
            "internal-error (no detail)"
        );
    }

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        let (s, a, p) = split_url("https://www.googleapis.com/service_accounts/v1/jwk/x").unwrap();
        assert!(matches!(s, Scheme::Https));
        assert_eq!(
            (a, p.as_str()),
            ("www.googleapis.com", "/service_accounts/v1/jwk/x")
        );
        let (s, a, p) = split_url("http://127.0.0.1:8080").unwrap();
        assert!(matches!(s, Scheme::Http));
        assert_eq!((a, p.as_str()), ("127.0.0.1:8080", "/"));
        let (_, a, p) = split_url("http://h:1?x=1").unwrap();
        assert_eq!((a, p.as_str()), ("h:1", "/?x=1"));
        for bad in ["ftp://x/", "//x/", "https:///p", "https://user@x/", "x"] {
            assert!(split_url(bad).is_none(), "{bad}");
        }
    }
}
