//! The admin API over HTTP: a small blocking client that sends the admin token and reads the
//! API's answer or its error envelope.
//!
//! The token comes from the environment, never from a flag (flags land in shell history and in
//! `ps`). It is sent over plain `http://` only to a loopback address; anything else needs
//! `https://`.

use std::time::Duration;

use anyhow::{bail, Context as _};
use license_edge::api::query::percent_encode;
use serde_json::Value;

/// Where the admin token is read from.
pub const TOKEN_ENV: &str = "LICENSE_EDGE_ADMIN_TOKEN";
/// The most read from one answer.
const MAX_ANSWER_BYTES: u64 = 16 << 20;

/// An admin API client for one base URL.
pub struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

/// The API refused the request: its status and error envelope.
#[derive(Debug)]
pub struct Refused {
    /// HTTP status.
    pub status: u16,
    /// The envelope's `error.code` (or `http_<status>` when the answer had no envelope).
    pub code: String,
    /// The envelope's `error.message`.
    pub message: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for Refused {}

impl Client {
    /// A client for `url` (the app's origin, e.g. `https://licenses.example.com`), with the
    /// token from [`TOKEN_ENV`].
    pub fn from_env(url: &str) -> anyhow::Result<Client> {
        let token = std::env::var(TOKEN_ENV)
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .with_context(|| {
                format!("set {TOKEN_ENV} to the admin token (it is never taken as a flag)")
            })?;
        Client::new(url, token)
    }

    fn new(url: &str, token: String) -> anyhow::Result<Client> {
        let base = url.trim_end_matches('/').to_owned();
        check_url(&base)?;
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .user_agent(concat!("licensectl/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Client { base, token, agent })
    }

    /// Sends `method path` (path under the origin, with its query) and answers the JSON body
    /// of a 2xx, or [`Refused`] for any other status.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let sent = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("authorization", &auth).call(),
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("authorization", &auth)
                .call(),
            (_, body) => {
                let builder = match method {
                    "POST" => self.agent.post(&url),
                    "PATCH" => self.agent.patch(&url),
                    other => bail!("unsupported method {other}"),
                };
                let builder = builder.header("authorization", &auth);
                match body {
                    Some(b) => builder.content_type("application/json").send(b.to_string()),
                    None => builder.send_empty(),
                }
            }
        };
        let mut resp = sent.with_context(|| format!("cannot reach {}", self.base))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .with_context(|| format!("reading the answer to {method} {path}"))?;
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        if (200..300).contains(&status) {
            return parsed.with_context(|| format!("{method} {path}: the answer is not JSON"));
        }
        let error = parsed.as_ref().map(|v| &v["error"]);
        let code = error
            .and_then(|e| e["code"].as_str())
            .map_or_else(|| format!("http_{status}"), str::to_owned);
        let message = error
            .and_then(|e| e["message"].as_str())
            .map_or_else(|| text.chars().take(200).collect(), str::to_owned);
        Err(Refused {
            status,
            code,
            message,
        }
        .into())
    }
}

/// Refuses URLs that would send the token in clear text over a network.
fn check_url(url: &str) -> anyhow::Result<()> {
    let (scheme, rest) = url.split_once("://").with_context(|| {
        format!("--url {url:?} must start with https:// (or http:// for a local address)")
    })?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    if host.is_empty() {
        bail!("--url {url:?} has no host");
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if is_loopback(host) => Ok(()),
        "http" => bail!(
            "refusing to send the admin token in clear text to {host}: use https:// (plain http:// is only for 127.0.0.1, ::1 or localhost)"
        ),
        other => bail!("--url scheme {other:?} is not http or https"),
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `path?a=1&b=2` from the parameters that are set.
pub fn with_query(path: &str, params: &[(&str, Option<String>)]) -> String {
    let query: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", percent_encode(v))))
        .collect();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "https://licenses.example.com",
            "https://10.0.0.1:8443/",
            "http://127.0.0.1:3000",
            "http://localhost:3000",
            "http://[::1]:3000",
            "HTTP://127.0.0.2",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://licenses.example.com",
            "http://10.0.0.1:3000",
            "http://[2001:db8::1]:80",
            "ftp://127.0.0.1",
            "127.0.0.1:3000",
            "https://",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn queries_skip_unset_parameters_and_encode_values() {
        assert_eq!(with_query("/x", &[("a", None)]), "/x");
        assert_eq!(
            with_query(
                "/x",
                &[
                    ("a", Some("1 2".into())),
                    ("b", None),
                    ("c", Some("z".into()))
                ]
            ),
            "/x?a=1%202&c=z"
        );
    }
}
