//! The core of license-edge: everything the Spin components, the CLI and a vendor's client
//! share, as pure Rust with no I/O.
//!
//! This crate does not read the clock, draw randomness, open sockets or touch Spin: callers pass
//! `now` and random bytes in, so every rule is testable. It compiles for the host and for
//! `wasm32-wasip2` with the same features.

pub mod api;
pub mod time;
