//! The seat routes over HTTP: requests, and answers read into values or [`Error`]s.

use std::time::Duration;

use serde_json::Value;

use crate::error::Error;

/// The most read from one answer (a grant is under 2 KiB, a key set a few).
const MAX_ANSWER_BYTES: u64 = 1 << 20;

/// The longest wait a server can ask for (interval, `Retry-After`): a day. Larger values are
/// a server's mistake, and would overflow the clock arithmetic.
pub(crate) const MAX_WAIT_SECS: u64 = 86_400;

/// What a granted acquire or heartbeat answers, before its token is verified.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub session_id: String,
    pub token: String,
    pub heartbeat_interval: Duration,
}

/// A blocking client of one server.
pub(crate) struct Http {
    base: String,
    auth: String,
    agent: ureq::Agent,
}

impl Http {
    pub fn new(server: &str, license_key: &str, timeout: Duration) -> Result<Http, Error> {
        let base = server.trim_end_matches('/').to_owned();
        check_url(&base)?;
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(concat!("license-edge-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Http {
            base,
            auth: format!("Bearer {license_key}"),
            agent,
        })
    }

    pub fn acquire(&self, machine_id: &str, metadata: Option<&Value>) -> Result<Grant, Error> {
        let mut body = serde_json::json!({ "machine_id": machine_id });
        if let Some(m) = metadata {
            body["metadata"] = m.clone();
        }
        let sent = self
            .agent
            .post(format!("{}/api/v1/licenses/acquire/", self.base))
            .header("authorization", &self.auth)
            .content_type("application/json")
            .send(body.to_string());
        grant(answer(sent)?)
    }

    pub fn heartbeat(&self, session_id: &str) -> Result<Grant, Error> {
        let sent = self
            .agent
            .patch(format!(
                "{}/api/v1/licenses/sessions/{}/heartbeat/",
                self.base,
                path_segment(session_id)?
            ))
            .header("authorization", &self.auth)
            .send_empty();
        grant(answer(sent)?)
    }

    pub fn release(&self, session_id: &str) -> Result<(), Error> {
        let sent = self
            .agent
            .delete(format!(
                "{}/api/v1/licenses/sessions/{}/",
                self.base,
                path_segment(session_id)?
            ))
            .header("authorization", &self.auth)
            .call();
        answer(sent).map(|_| ())
    }

    /// The server's public key set, as text.
    pub fn jwks(&self) -> Result<String, Error> {
        let sent = self
            .agent
            .get(format!("{}/.well-known/jwks.json", self.base))
            .call();
        answer(sent).map(|v| v.to_string())
    }
}

/// Reads an answer: the JSON of a 2xx, or the [`Error`] its status and envelope say.
fn answer(sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Value, Error> {
    let mut resp = sent.map_err(|e| Error::Unreachable(e.to_string()))?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(MAX_WAIT_SECS)));
    let text = resp
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_string()
        .map_err(|e| Error::Unreachable(format!("reading the answer: {e}")))?;
    let parsed: Option<Value> = serde_json::from_str(&text).ok();
    if (200..300).contains(&status) {
        return parsed.ok_or_else(|| Error::Server {
            status,
            code: "invalid_answer".into(),
            message: "the answer is not JSON".into(),
        });
    }
    Err(refusal(status, retry_after, parsed.as_ref()))
}

/// The error a non-2xx answer stands for.
pub(crate) fn refusal(status: u16, retry_after: Option<Duration>, body: Option<&Value>) -> Error {
    let error = body.map(|v| &v["error"]);
    let code = error
        .and_then(|e| e["code"].as_str())
        .map_or_else(|| format!("http_{status}"), str::to_owned);
    let message = error
        .and_then(|e| e["message"].as_str())
        .unwrap_or_default()
        .to_owned();
    let details = error.map(|e| &e["details"]);
    let detail_str = |name: &str| details.and_then(|d| d[name].as_str()).map(str::to_owned);
    let detail_u64 = |name: &str| details.and_then(|d| d[name].as_u64());
    match (status, code.as_str()) {
        (409, "no_seats_available") => Error::NoSeatsAvailable {
            max_seats: detail_u64("max_seats"),
            active_seats: detail_u64("active_seats"),
            next_available_hint: detail_str("next_available_hint"),
        },
        (409, "session_borrowed") => Error::SessionBorrowed {
            borrowed_until: detail_str("borrowed_until"),
        },
        (429, _) => Error::RateLimited {
            retry_after: retry_after.or_else(|| {
                detail_u64("retry_after_s").map(|s| Duration::from_secs(s.min(MAX_WAIT_SECS)))
            }),
        },
        (401, _) => Error::Unauthorized,
        (403, _) => Error::Forbidden { code, message },
        (404 | 410, _) => Error::SessionEnded { code },
        _ => Error::Server {
            status,
            code,
            message,
        },
    }
}

fn grant(v: Value) -> Result<Grant, Error> {
    let field = |name: &str| {
        v[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Server {
                status: 200,
                code: "invalid_answer".into(),
                message: format!("the answer has no {name}"),
            })
    };
    Ok(Grant {
        session_id: field("session_id")?,
        token: field("license_token")?,
        heartbeat_interval: Duration::from_secs(
            v["heartbeat_interval_s"]
                .as_u64()
                .unwrap_or(180)
                .clamp(1, MAX_WAIT_SECS),
        ),
    })
}

/// A session id as a path segment: the server's ids are `ses_` and hex, so anything else
/// (a cache file edited by hand) is refused rather than encoded.
fn path_segment(session_id: &str) -> Result<&str, Error> {
    if !session_id.is_empty()
        && session_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(session_id)
    } else {
        Err(Error::Config(format!("not a session id: {session_id:?}")))
    }
}

/// Refuses URLs that would send the license key in clear text over a network.
pub(crate) fn check_url(url: &str) -> Result<(), Error> {
    let bad = |why: String| Err(Error::Config(why));
    let Some((scheme, rest)) = url.split_once("://") else {
        return bad(format!("server {url:?} must start with https://"));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    if host.is_empty() {
        return bad(format!("server {url:?} has no host"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if is_loopback(host) => Ok(()),
        "http" => bad(format!(
            "refusing to send the license key in clear text to {host}: use https://"
        )),
        other => bad(format!("scheme {other:?} is not http or https")),
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refusals_become_typed_errors_with_the_servers_details() {
        let body = json!({"error": {"code": "no_seats_available", "message": "all 1 seats are in use",
            "details": {"max_seats": 1, "active_seats": 1, "next_available_hint": "2026-12-02T05:00:00.000Z"}}});
        assert_eq!(
            refusal(409, None, Some(&body)),
            Error::NoSeatsAvailable {
                max_seats: Some(1),
                active_seats: Some(1),
                next_available_hint: Some("2026-12-02T05:00:00.000Z".into())
            }
        );
        let body = json!({"error": {"code": "rate_limited", "message": "", "details": {"retry_after_s": 7}}});
        assert_eq!(
            refusal(429, Some(Duration::from_secs(12)), Some(&body)),
            Error::RateLimited {
                retry_after: Some(Duration::from_secs(12))
            }
        );
        assert_eq!(
            refusal(429, None, Some(&body)),
            Error::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        let body =
            json!({"error": {"code": "license_suspended", "message": "suspended", "details": {}}});
        assert!(
            matches!(refusal(403, None, Some(&body)), Error::Forbidden { code, .. } if code == "license_suspended")
        );
        assert!(refusal(503, None, None).is_transient());
        assert!(!refusal(403, None, Some(&body)).is_transient());
        assert_eq!(refusal(502, None, None).code(), "http_502");
    }

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "https://licenses.example.com",
            "http://127.0.0.1:3000",
            "http://localhost:1",
            "http://[::1]:3",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://licenses.example.com",
            "ftp://127.0.0.1",
            "127.0.0.1:3000",
            "https://",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_server_cannot_ask_for_waits_longer_than_a_day() {
        let g = grant(
            json!({"session_id": "s", "license_token": "t", "heartbeat_interval_s": u64::MAX}),
        )
        .unwrap();
        assert_eq!(g.heartbeat_interval, Duration::from_secs(MAX_WAIT_SECS));
        let body =
            json!({"error": {"code": "rate_limited", "details": {"retry_after_s": u64::MAX}}});
        assert_eq!(
            refusal(429, None, Some(&body)),
            Error::RateLimited {
                retry_after: Some(Duration::from_secs(MAX_WAIT_SECS))
            }
        );
    }

    #[test]
    fn session_ids_are_not_paths() {
        assert!(path_segment("ses_0123abcd").is_ok());
        for bad in ["", "../admin", "a/b", "ses?x", "ses%2f"] {
            assert!(path_segment(bad).is_err(), "{bad}");
        }
    }
}
