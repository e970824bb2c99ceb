//! The server's rules of license-edge, over the token crate ([`license_edge_token`]): what the
//! Spin components and the CLI share, as pure Rust with no I/O.
//!
//! This crate does not read the clock, draw randomness, open sockets or touch Spin: callers pass
//! `now` and random bytes in, so every rule is testable. It compiles for the host and for
//! `wasm32-wasip2` with the same features. Tokens themselves (keys, claims, issue and verify)
//! are the token crate's; a vendor's program depends on that crate alone.
//!
//! - [`api`]: the HTTP API's shared vocabulary: [`api::ApiError`] and the error envelope,
//!   request bodies and bearer credentials, query strings, cursors and pagination, the public
//!   route table;
//! - [`read_model`]: the key-value entries validation answers from, how writers converge on
//!   the database's version, and the verified-token cache ([`read_model::verify_cache`]);
//! - [`identity`]: who asks for a seat: license key, signed-in user, the two request shapes;
//! - [`outcome`]: the outcomes the database's seat and admin functions answer, as enums;
//! - [`seats`]: acquire, heartbeat, release and borrow: requests, refusals, claims, answers;
//! - [`validate`]: the validate request and its answers;
//! - [`key_validation`]: the validate route's license-key shape: request, rate limit, answers;
//! - [`admin`]: the admin API's routes, request checks, database rows and answers;
//! - [`time`]: RFC 3339 timestamps to and from epoch milliseconds.

#![deny(missing_docs)]

pub mod admin;
pub mod api;
pub mod identity;
pub mod key_validation;
pub mod outcome;
pub mod read_model;
pub mod seats;
pub mod settings;
pub mod time;
pub mod validate;
