//! A Spin-compatible test host for license-edge.
//!
//! It reads `spin.toml`, loads each component's `.wasm` and serves HTTP requests to them the way
//! Spin does: routing, the `spin-*` request headers, key-value stores (in memory or Redis),
//! outbound PostgreSQL (`spin:postgres@4.0.0`, pooled), variables, and the manifest's
//! allow-lists. Tests use it in-process ([`Host::request`]) or over a loopback listener
//! ([`Host::listen`]); `spin-test-host` is the same thing as a command.
//!
//! It is a test fixture, not a runtime for users: users run `spin up` and SpinKube. Where it
//! knowingly differs from Spin (Redis calls time out instead of hanging; the `spin` key-value
//! type is in memory), the module docs say so. It counts the host calls each component makes
//! ([`Host::host_calls`], [`calls`]), the figure that decides a request's cost on Spin.

pub mod calls;
mod host;
pub mod kv;
pub mod manifest;
pub mod outbound;
pub mod pg;
pub mod routes;
pub mod runtime_config;
mod spin_impl;
pub mod stderr;
pub mod variables;

pub use calls::HostCalls;
pub use host::{Host, HostBuilder, TestResponse};
pub use stderr::ComponentLog;

/// Bindings generated from the WIT inside the `spin-sdk` crate (see build.rs).
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "spin-imports",
        imports: { default: async | trappable },
        with: {
            "fermyon:spin/key-value.store": crate::kv::StoreHandle,
            "spin:postgres/postgres.connection": crate::pg::Connection,
        },
    });
}
