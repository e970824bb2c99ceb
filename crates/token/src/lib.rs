//! License tokens for license-edge, on their own: what a vendor's program needs to verify a
//! license offline, and what the server needs to issue one. Nothing server-side lives here
//! (no HTTP API, no read model, no seats), and there is no I/O: callers pass `now` and random
//! bytes in, so every rule is testable. It compiles for the host and for `wasm32-wasip2` with
//! the same features.
//!
//! - [`issue`] and [`verify`]: Ed25519 JWS (`alg: EdDSA`), checked against
//!   [`ValidationOptions`] (what JOSE libraries call validation options), giving the proof type
//!   [`VerifiedToken`] (see [`jwt`] for every check, in order);
//! - [`keys`]: the signing key, the public [`KeySet`], JWKS and the text forms kept in Spin
//!   variables;
//! - [`claims`]: what a token says, and [`machine_id_hash`];
//! - [`VerifiedCache`]: verified tokens by digest for a long-lived verifier, never served past
//!   `exp`;
//! - [`TokenError`]: every way a token or key fails, with stable codes;
//! - [`strict_json`]: a JSON object parser that refuses duplicate keys;
//! - [`encoding`]: strict base64url, hex and constant-time comparison.
//!
//! ```
//! use license_edge_token::{issue, verify, Claims, KeySet, SigningKey, ValidationOptions};
//!
//! let key = SigningKey::from_seed("k1", [7; 32]).unwrap();
//! let claims = Claims::new("https://licenses.example", "lic_1", "cad-pro", "ses_1", 1_000, 900);
//! let token = issue(&key, &claims).unwrap();
//! let mut keys = KeySet::new();
//! keys.insert(key.verifying_key()).unwrap();
//! let options = ValidationOptions::new().with_audience("cad-pro");
//! let verified = verify(&token, &keys, &options, 1_500, None).unwrap();
//! assert_eq!(verified.claims().sub, "lic_1");
//! ```

#![deny(missing_docs)]

pub mod cache;
pub mod claims;
pub mod encoding;
pub mod error;
pub mod jwt;
pub mod keys;
pub mod strict_json;

#[doc(hidden)]
pub mod fuzzing;

pub use cache::VerifiedCache;
pub use claims::{machine_id_hash, Claims};
pub use error::TokenError;
pub use jwt::{assemble, issue, signing_input, verify, ValidationOptions, VerifiedToken};
pub use keys::{KeySet, SigningKey, VerifyingKey};
