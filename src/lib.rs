//! The core of license-edge: everything the Spin components, the CLI and a vendor's client
//! share, as pure Rust with no I/O.
//!
//! This crate does not read the clock, draw randomness, open sockets or touch Spin: callers pass
//! `now` and random bytes in, so every rule is testable. It compiles for the host and for
//! `wasm32-wasip2` with the same features.
//!
//! - [`token`]: issue and verify license tokens (Ed25519 JWS), with [`token::Policy`] and the
//!   proof type [`token::VerifiedToken`];
//! - [`keys`]: the signing key, the public [`keys::KeySet`], JWKS and the text forms kept in
//!   Spin variables;
//! - [`claims`]: what a token says;
//! - [`cache`]: [`VerifiedCache`], verified tokens by digest, never served past `exp`;
//! - [`error`]: [`TokenError`], the one error type for tokens and keys, with stable codes;
//! - [`json`]: a JSON object parser that refuses duplicate keys;
//! - [`api`] and [`time`]: the HTTP API's shared vocabulary.
//! - [`admin`]: the admin API's routes, request checks and answers.

#![deny(missing_docs)]

pub mod admin;
pub mod api;
pub mod cache;
pub mod claims;
pub mod edge;
pub mod error;
pub mod json;
pub mod keys;
pub mod seats;
pub mod time;
pub mod token;
pub mod validate;

#[doc(hidden)]
pub mod fuzzing;

mod b64;

pub use cache::VerifiedCache;
pub use claims::{machine_id_hash, Claims};
pub use error::TokenError;
pub use keys::{KeySet, SigningKey, VerifyingKey};
pub use token::{issue, verify, Policy, VerifiedToken};
