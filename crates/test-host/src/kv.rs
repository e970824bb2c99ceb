//! Key-value backends: an in-memory store for Spin's `spin` type and a real Redis.
//!
//! Each guest call is one Redis command, and opening a store sends `PING`, as Spin's Redis store
//! does (shared/SPIN-FACTS.md), so that a request costs the same round trips here as on Spin.
//!
//! Real Spin hangs when Redis is down (see shared/SPIN-FACTS.md). A test cannot hang, so every
//! Redis call here is bounded by a timeout that surfaces as a key-value `other` error; the app's
//! error paths are tested with that, and README says what real Spin does.

use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one Redis operation may take before it fails.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// A store backend, shared by every request of a host.
#[derive(Clone)]
pub enum Backend {
    /// In memory, for the `spin` type.
    Memory(Arc<Mutex<HashMap<String, Vec<u8>>>>),
    /// A Redis server.
    Redis(Arc<RedisStore>),
}

/// A Redis-backed store with a lazily made, self-reconnecting, multiplexed connection that
/// every request shares (a clone per call; no lock is held across a round trip).
pub struct RedisStore {
    client: redis::Client,
    conn: Mutex<Option<ConnectionManager>>,
}

impl Backend {
    /// A fresh in-memory store.
    pub fn memory() -> Self {
        Backend::Memory(Arc::default())
    }

    /// A Redis store at `url`. Nothing connects until the first call.
    pub fn redis(url: &str) -> anyhow::Result<Self> {
        Ok(Backend::Redis(Arc::new(RedisStore {
            client: redis::Client::open(url)?,
            conn: Mutex::new(None),
        })))
    }

    /// What Spin does when a guest opens the store: a Redis store sends `PING` (one round
    /// trip on the shared connection) and ignores the answer; an in-memory one does nothing.
    pub async fn after_open(&self) {
        if let Backend::Redis(r) = self {
            let _ = r
                .run(|mut c| async move { redis::cmd("PING").query_async::<()>(&mut c).await })
                .await;
        }
    }

    /// The value at `key`, if any.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        match self {
            Backend::Memory(m) => Ok(lock(m).get(key).cloned()),
            Backend::Redis(r) => r.run(|mut c| async move { c.get(key).await }).await,
        }
    }

    /// Stores `value` at `key`.
    pub async fn set(&self, key: &str, value: Vec<u8>) -> Result<(), String> {
        match self {
            Backend::Memory(m) => {
                lock(m).insert(key.to_owned(), value);
                Ok(())
            }
            Backend::Redis(r) => r.run(|mut c| async move { c.set(key, value).await }).await,
        }
    }

    /// Removes `key`; absent keys are not an error.
    pub async fn delete(&self, key: &str) -> Result<(), String> {
        match self {
            Backend::Memory(m) => {
                lock(m).remove(key);
                Ok(())
            }
            Backend::Redis(r) => r.run(|mut c| async move { c.del(key).await }).await,
        }
    }

    /// Whether `key` holds a value.
    pub async fn exists(&self, key: &str) -> Result<bool, String> {
        match self {
            Backend::Memory(m) => Ok(lock(m).contains_key(key)),
            Backend::Redis(r) => r.run(|mut c| async move { c.exists(key).await }).await,
        }
    }

    /// Every key in the store.
    pub async fn keys(&self) -> Result<Vec<String>, String> {
        match self {
            Backend::Memory(m) => Ok(lock(m).keys().cloned().collect()),
            Backend::Redis(r) => r.run(|mut c| async move { c.keys("*").await }).await,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the map half-updated (each operation is one
    // HashMap call), so a poisoned lock is still safe to use.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RedisStore {
    async fn connection(&self) -> Result<ConnectionManager, String> {
        if let Some(c) = lock(&self.conn).as_ref() {
            return Ok(c.clone());
        }
        // Several requests may connect at once after a start or an outage; the last one in
        // wins and the others' connections are dropped with their requests.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(REDIS_TIMEOUT)
            .set_response_timeout(REDIS_TIMEOUT)
            .set_number_of_retries(1);
        let made = tokio::time::timeout(
            REDIS_TIMEOUT,
            self.client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| "redis: connection timed out".to_owned())?
        .map_err(|e| format!("redis: {e}"))?;
        *lock(&self.conn) = Some(made.clone());
        Ok(made)
    }

    async fn run<T, F, Fut>(&self, op: F) -> Result<T, String>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.connection().await?;
        // The connection's own response timeout bounds the call.
        op(conn).await.map_err(|e| format!("redis: {e}"))
    }
}

/// The guest's handle on an open store.
pub struct StoreHandle {
    /// The backend the label resolved to.
    pub backend: Backend,
}
