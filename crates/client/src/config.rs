//! What a program tells the client: where the server is, which license, which machine, and
//! how patient to be.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use license_edge_token::KeySet;
use serde_json::Value;

/// The settings of a [`crate::Seat`]. [`Config::new`] takes what is required; the `with_*`
/// methods change the rest from their defaults.
#[derive(Clone)]
pub struct Config {
    pub(crate) server: String,
    pub(crate) license_key: String,
    pub(crate) product: String,
    pub(crate) machine_id: String,
    pub(crate) issuer: String,
    pub(crate) cache_dir: Option<PathBuf>,
    pub(crate) failures_before_offline: u32,
    pub(crate) leeway: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) timeout: Duration,
    pub(crate) metadata: Option<Value>,
    pub(crate) pinned_keys: Option<KeySet>,
}

impl Config {
    /// A seat of the license with `license_key` for `product` (the token's audience:
    /// `{organization_id}/{product_code}`, e.g. `org_4f2c…/cad-pro`) on the machine `machine_id` (e.g. [`crate::machine::fingerprint`]), from
    /// the server at `server` (its origin, `https://...`; plain `http://` only to loopback).
    pub fn new(
        server: impl Into<String>,
        license_key: impl Into<String>,
        product: impl Into<String>,
        machine_id: impl Into<String>,
    ) -> Config {
        Config {
            server: server.into(),
            license_key: license_key.into(),
            product: product.into(),
            machine_id: machine_id.into(),
            issuer: "license-edge".into(),
            cache_dir: None,
            failures_before_offline: 3,
            leeway: Duration::from_secs(60),
            max_backoff: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
            metadata: None,
            pinned_keys: None,
        }
    }

    /// The `iss` tokens must carry (the server's `token_issuer`; default `license-edge`).
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Config {
        self.issuer = issuer.into();
        self
    }

    /// Keeps the server's key set and the last good token in `dir` (created if missing;
    /// files mode 0600, written atomically), so that a program started while the server is
    /// unreachable goes on with its last token for the rest of its offline grace. Without it
    /// nothing is written to disk.
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Config {
        self.cache_dir = Some(dir.into());
        self
    }

    /// How many heartbeats in a row may fail before the seat counts as offline (default 3,
    /// as the old client did).
    pub fn with_failures_before_offline(mut self, n: u32) -> Config {
        self.failures_before_offline = n.max(1);
        self
    }

    /// The clock difference tolerated between this machine and the server (default 60 s, the
    /// token crate's). Offline, a token is accepted until `exp` plus the larger of this and
    /// the token's `offline_grace`.
    pub fn with_clock_leeway(mut self, leeway: Duration) -> Config {
        self.leeway = leeway;
        self
    }

    /// The longest wait between two attempts while the server fails (default 300 s). Waits
    /// start at the heartbeat interval and double with each failure up to this (at most a
    /// day).
    pub fn with_max_backoff(mut self, max: Duration) -> Config {
        self.max_backoff = max.clamp(Duration::from_millis(100), Duration::from_secs(86_400));
        self
    }

    /// The time one request may take, connection included (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Config {
        self.timeout = timeout;
        self
    }

    /// Facts about the client the server keeps with the session (a JSON object of at most
    /// 4 KiB, e.g. the hostname and the program's version).
    pub fn with_metadata(mut self, metadata: Value) -> Config {
        self.metadata = Some(metadata);
        self
    }

    /// Trusts only these keys (e.g. the JWKS shipped inside the program) and never fetches
    /// the server's key set. Without it the key set comes from the server over TLS, and a
    /// token under an unknown `kid` makes the client fetch it again once (key rotation).
    pub fn with_pinned_keys(mut self, keys: KeySet) -> Config {
        self.pinned_keys = Some(keys);
        self
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the license key: a Debug print ends up in logs.
        f.debug_struct("Config")
            .field("server", &self.server)
            .field("license_key", &"<hidden>")
            .field("product", &self.product)
            .field("machine_id", &self.machine_id)
            .field("issuer", &self.issuer)
            .field("cache_dir", &self.cache_dir)
            .field("failures_before_offline", &self.failures_before_offline)
            .field("leeway", &self.leeway)
            .field("max_backoff", &self.max_backoff)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
