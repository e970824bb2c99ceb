//! How many host calls each component makes: a request's cost on real Spin follows the number
//! of calls it makes into the host (variable reads, store opens, key-value and PostgreSQL round
//! trips) far more than the Rust inside it (BENCHMARKS.md), so the test host counts them, per
//! component, for tests and benchmarks to read.
//!
//! Counted: the Spin interfaces (`fermyon:spin/variables`, `fermyon:spin/key-value`,
//! `spin:postgres/postgres@4.0.0`) and outbound HTTP requests. Not counted: the WASI calls every
//! request makes the same way whatever the component does (the incoming body and the response,
//! clocks, random bytes).

use std::ops::Sub;
use std::sync::atomic::{AtomicU64, Ordering};

/// Totals of one component's host calls since the host was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostCalls {
    /// Requests routed to the component.
    pub requests: u64,
    /// `variables::get`.
    pub variables: u64,
    /// Key-value `open` (with a Redis store, one `PING`, as Spin sends).
    pub kv_open: u64,
    /// Key-value `get`.
    pub kv_get: u64,
    /// Key-value `set`.
    pub kv_set: u64,
    /// Key-value `delete`.
    pub kv_delete: u64,
    /// Key-value `exists` and `get-keys`.
    pub kv_other: u64,
    /// PostgreSQL `open` (a pooled connection).
    pub pg_open: u64,
    /// PostgreSQL `query`.
    pub pg_query: u64,
    /// PostgreSQL `execute`.
    pub pg_execute: u64,
    /// Outbound HTTP requests the component sent (allowed or refused).
    pub outbound_http: u64,
}

impl HostCalls {
    /// Every counted call (requests themselves are not calls).
    pub fn calls(&self) -> u64 {
        self.variables
            + self.kv_open
            + self.kv_get
            + self.kv_set
            + self.kv_delete
            + self.kv_other
            + self.pg_open
            + self.pg_query
            + self.pg_execute
            + self.outbound_http
    }

    /// Round trips to a Redis store: each key-value call is one command, an open one `PING`.
    pub fn redis_round_trips(&self) -> u64 {
        self.kv_open + self.kv_get + self.kv_set + self.kv_delete + self.kv_other
    }

    /// Round trips to PostgreSQL, as Spin makes them: each statement is prepared, then run.
    pub fn pg_round_trips(&self) -> u64 {
        2 * (self.pg_query + self.pg_execute)
    }
}

impl Sub for HostCalls {
    type Output = HostCalls;

    /// The calls made between two readings (`later - earlier`).
    fn sub(self, earlier: HostCalls) -> HostCalls {
        HostCalls {
            requests: self.requests - earlier.requests,
            variables: self.variables - earlier.variables,
            kv_open: self.kv_open - earlier.kv_open,
            kv_get: self.kv_get - earlier.kv_get,
            kv_set: self.kv_set - earlier.kv_set,
            kv_delete: self.kv_delete - earlier.kv_delete,
            kv_other: self.kv_other - earlier.kv_other,
            pg_open: self.pg_open - earlier.pg_open,
            pg_query: self.pg_query - earlier.pg_query,
            pg_execute: self.pg_execute - earlier.pg_execute,
            outbound_http: self.outbound_http - earlier.outbound_http,
        }
    }
}

/// The live counters of one component, shared by its requests.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) variables: AtomicU64,
    pub(crate) kv_open: AtomicU64,
    pub(crate) kv_get: AtomicU64,
    pub(crate) kv_set: AtomicU64,
    pub(crate) kv_delete: AtomicU64,
    pub(crate) kv_other: AtomicU64,
    pub(crate) pg_open: AtomicU64,
    pub(crate) pg_query: AtomicU64,
    pub(crate) pg_execute: AtomicU64,
    pub(crate) outbound_http: AtomicU64,
}

/// Adds one to a counter. Relaxed: the counts are read after the requests they count answered.
pub(crate) fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn read(&self) -> HostCalls {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HostCalls {
            requests: r(&self.requests),
            variables: r(&self.variables),
            kv_open: r(&self.kv_open),
            kv_get: r(&self.kv_get),
            kv_set: r(&self.kv_set),
            kv_delete: r(&self.kv_delete),
            kv_other: r(&self.kv_other),
            pg_open: r(&self.pg_open),
            pg_query: r(&self.pg_query),
            pg_execute: r(&self.pg_execute),
            outbound_http: r(&self.outbound_http),
        }
    }
}
