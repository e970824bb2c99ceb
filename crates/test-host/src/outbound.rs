//! `allowed_outbound_hosts`, as Spin enforces it: each entry is `scheme://host:port`, where any
//! part may be `*`, a host may be `*.suffix`, a port may be a range `a..b`, and a known scheme's
//! default port may be left out. `localhost` and `127.0.0.1` are different hosts.

use anyhow::{anyhow, bail, Context, Result};

/// A component's parsed allow-list.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    scheme: Option<String>,
    host: HostPattern,
    ports: Option<(u16, u16)>,
}

#[derive(Debug, Clone)]
enum HostPattern {
    Any,
    Suffix(String),
    Exact(String),
}

/// An address a component asked to reach, reduced to what the allow-list checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The URL scheme, e.g. `postgres`.
    pub scheme: String,
    /// The host name or IP, as written.
    pub host: String,
    /// The port, defaulted from the scheme when absent.
    pub port: u16,
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    Some(match scheme {
        "postgres" | "postgresql" => 5432,
        "redis" => 6379,
        "mysql" => 3306,
        "http" => 80,
        "https" => 443,
        _ => return None,
    })
}

impl AllowedHosts {
    /// Parses expanded entries (templates already filled in).
    pub fn parse(entries: &[String]) -> Result<Self> {
        let entries = entries
            .iter()
            .map(|e| {
                Entry::parse(e).with_context(|| format!("`allowed_outbound_hosts` entry {e:?}"))
            })
            .collect::<Result<_>>()?;
        Ok(AllowedHosts { entries })
    }

    /// Whether `addr` is allowed by any entry.
    pub fn allows(&self, addr: &Address) -> bool {
        self.entries.iter().any(|e| e.allows(addr))
    }
}

impl Entry {
    fn parse(text: &str) -> Result<Self> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| anyhow!("must be scheme://host[:port]"))?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        if host.is_empty() {
            bail!("has no host");
        }
        let ports = match port {
            Some("*") => None,
            Some(p) => Some(parse_ports(p)?),
            None if scheme == "*" => bail!("a wildcard scheme needs an explicit port"),
            None => {
                let d = default_port(scheme)
                    .ok_or_else(|| anyhow!("scheme {scheme:?} has no default port; give one"))?;
                Some((d, d))
            }
        };
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            HostPattern::Suffix(format!(".{suffix}"))
        } else {
            HostPattern::Exact(host.to_owned())
        };
        let scheme = (scheme != "*").then(|| scheme.to_owned());
        Ok(Entry {
            scheme,
            host,
            ports,
        })
    }

    fn allows(&self, addr: &Address) -> bool {
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == addr.scheme);
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Suffix(s) => addr.host.ends_with(s.as_str()),
            HostPattern::Exact(h) => *h == addr.host,
        };
        let port_ok = self
            .ports
            .is_none_or(|(lo, hi)| (lo..=hi).contains(&addr.port));
        scheme_ok && host_ok && port_ok
    }
}

fn parse_ports(p: &str) -> Result<(u16, u16)> {
    if let Some((lo, hi)) = p.split_once("..") {
        let (lo, hi): (u16, u16) = (lo.parse()?, hi.parse()?);
        if lo > hi {
            bail!("empty port range {p:?}");
        }
        Ok((lo, hi.saturating_sub(1).max(lo)))
    } else {
        let port = p.parse().with_context(|| format!("bad port {p:?}"))?;
        Ok((port, port))
    }
}

/// Reduces a PostgreSQL connection URL to the address the allow-list checks.
pub fn postgres_address(url: &str) -> Result<Address> {
    let parsed = url::Url::parse(url).context("the address is not a URL")?;
    let scheme = parsed.scheme();
    if scheme != "postgres" && scheme != "postgresql" {
        bail!("unsupported scheme {scheme:?}");
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| anyhow!("the address has no host"))?
        .to_owned();
    Ok(Address {
        scheme: "postgres".to_owned(),
        host,
        port: parsed.port().unwrap_or(5432),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(entries: &[&str], url: &str) -> bool {
        let list: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        AllowedHosts::parse(&list)
            .unwrap()
            .allows(&postgres_address(url).unwrap())
    }

    #[test]
    fn exact_host_and_default_port() {
        assert!(allows(
            &["postgres://127.0.0.1"],
            "postgres://u:p@127.0.0.1/db"
        ));
        assert!(allows(
            &["postgres://127.0.0.1:5432"],
            "postgres://127.0.0.1:5432/db"
        ));
        assert!(!allows(
            &["postgres://127.0.0.1:5432"],
            "postgres://127.0.0.1:5433/db"
        ));
        assert!(!allows(
            &["postgres://localhost:5432"],
            "postgres://127.0.0.1:5432/db"
        ));
        assert!(!allows(&[], "postgres://127.0.0.1:5432/db"));
    }

    #[test]
    fn wildcards_and_ranges() {
        assert!(allows(&["*://*:*"], "postgres://db.internal:6000/x"));
        assert!(allows(
            &["postgres://*.internal:5432"],
            "postgres://db.internal/x"
        ));
        assert!(allows(
            &["postgres://127.0.0.1:5000..6000"],
            "postgres://127.0.0.1:5999/x"
        ));
        assert!(!allows(
            &["postgres://127.0.0.1:5000..6000"],
            "postgres://127.0.0.1:6000/x"
        ));
        assert!(!allows(&["redis://127.0.0.1"], "postgres://127.0.0.1/x"));
    }

    #[test]
    fn rejects_malformed_entries() {
        for bad in [
            "127.0.0.1:5432",
            "foo://host",
            "*://host",
            "postgres://:5432",
        ] {
            assert!(AllowedHosts::parse(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn address_display_matches_spin_message() {
        let a = postgres_address("postgres://u:secret@127.0.0.1/db").unwrap();
        assert_eq!(a.to_string(), "postgres://127.0.0.1:5432");
    }
}
