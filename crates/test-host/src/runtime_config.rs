//! The runtime configuration file (`--runtime-config-file` in Spin): which backend serves each
//! key-value store label. Only the key-value section is read; other sections are ignored.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// A key-value backend as the runtime config names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// Spin's own store. Spin keeps it in SQLite; the test host keeps it in memory.
    Spin,
    /// A Redis server at `url`.
    Redis {
        /// `redis://[user:password@]host:port[/db]`.
        url: String,
    },
}

/// The parsed runtime configuration.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Stores by label. `default` is always present after [`RuntimeConfig::with_default`].
    pub key_value_stores: BTreeMap<String, StoreConfig>,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    key_value_store: BTreeMap<String, RawStore>,
}

#[derive(Deserialize)]
struct RawStore {
    #[serde(rename = "type")]
    kind: String,
    url: Option<String>,
    #[allow(dead_code)]
    path: Option<String>,
}

impl RuntimeConfig {
    /// Reads a runtime config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading runtime config {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in runtime config {}", path.display()))
    }

    /// Parses runtime config text.
    pub fn parse(text: &str) -> Result<Self> {
        let raw: Raw = toml::from_str(text)?;
        let mut key_value_stores = BTreeMap::new();
        for (label, store) in raw.key_value_store {
            let config = match store.kind.as_str() {
                "spin" => StoreConfig::Spin,
                "redis" => {
                    let url = store
                        .url
                        .with_context(|| format!("key_value_store.{label}: redis needs a url"))?;
                    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                        bail!("key_value_store.{label}: url must start with redis:// or rediss://");
                    }
                    StoreConfig::Redis { url }
                }
                other => bail!("key_value_store.{label}: unsupported type {other:?}"),
            };
            key_value_stores.insert(label, config);
        }
        Ok(RuntimeConfig { key_value_stores }.with_default())
    }

    /// Adds Spin's built-in `default` store when the file does not configure one.
    pub fn with_default(mut self) -> Self {
        self.key_value_stores
            .entry("default".to_owned())
            .or_insert(StoreConfig::Spin);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_store_is_spin_unless_configured() {
        let rc = RuntimeConfig::parse("").unwrap();
        assert_eq!(rc.key_value_stores["default"], StoreConfig::Spin);
        let rc = RuntimeConfig::parse(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:1\"\n",
        )
        .unwrap();
        assert!(matches!(
            rc.key_value_stores["default"],
            StoreConfig::Redis { .. }
        ));
    }

    #[test]
    fn rejects_bad_stores() {
        assert!(RuntimeConfig::parse("[key_value_store.x]\ntype = \"redis\"\n").is_err());
        assert!(RuntimeConfig::parse("[key_value_store.x]\ntype = \"nope\"\n").is_err());
        assert!(RuntimeConfig::parse(
            "[key_value_store.x]\ntype = \"redis\"\nurl = \"http://x\"\n"
        )
        .is_err());
    }
}
