//! Holds a license-edge seat for a program: the client side of the seat API.
//!
//! A program makes one [`Seat`] at start and keeps it for its run:
//!
//! ```no_run
//! use license_edge_client::{machine, Config, Seat};
//!
//! # fn main() -> Result<(), license_edge_client::Error> {
//! let config = Config::new("https://licenses.example.com", "LE-...", "org_4f2c.../cad-pro", machine::fingerprint()?)
//!     .with_cache_dir("/home/me/.cache/cad-pro/license");
//! let seat = Seat::acquire(config)?;          // 409, 403, 429 come back as typed errors
//! println!("plan {:?}, features {:?}", seat.claims().plan, seat.claims().features);
//! if seat.is_licensed() { /* run */ }
//! seat.release()?;                            // or just drop it
//! # Ok(()) }
//! ```
//!
//! What it does:
//! - **acquires** with the license key as bearer and the machine id, and **verifies the token
//!   offline** against the server's key set (`/.well-known/jwks.json`) before trusting it:
//!   signature, issuer, audience (the product), times and machine, with the token crate
//!   (`license-edge-token`) the server itself uses. An unknown `kid` makes it fetch the key
//!   set again, once (key rotation); [`Config::with_pinned_keys`] trusts only keys the program
//!   ships;
//! - **renews** in one background thread at the server's `heartbeat_interval_s`, with jitter,
//!   backing off (doubling, bounded) while the server fails; a session the server has ended
//!   (410) is acquired again;
//! - after [`Config::with_failures_before_offline`] failures in a row (default 3) it is
//!   [`Status::Offline`]: still licensed until the token's `exp` plus its `offline_grace`
//!   claim (the server's policy per license, through
//!   `ValidationOptions::honouring_offline_grace`; never longer, save the clock leeway when
//!   that is larger), then [`Status::Lapsed`]. It goes back online by itself;
//! - **releases** on [`Seat::release`] and on drop;
//! - **caches** the key set and the last good token in a folder the program chooses (atomic
//!   writes, mode 0600), so a program started offline goes on within its grace;
//! - [`machine::fingerprint`]: a machine id stable across reboots, documented per OS.
//!
//! What it does not do: borrow a seat for long offline use (call `POST .../borrow/`
//! yourself), talk to the admin API, or run an async runtime.
//!
//! **Why blocking, on `ureq`.** A seat makes one small request every few minutes. A blocking
//! client on one thread of its own costs a program nothing it does not already have, works
//! the same from a plain `main`, a GUI or inside an async program (the thread never blocks
//! the program's executor), and keeps the dependency tree small: `ureq` with rustls and
//! ring (the same build licensectl uses) and no async runtime. An async program calls
//! [`Seat::acquire`] and [`Seat::release`] (or the drop) through its runtime's
//! `spawn_blocking`; everything in between is non-blocking reads of shared state.

#![deny(missing_docs)]

mod cache;
mod config;
mod error;
mod http;
pub mod machine;
mod seat;

pub use config::Config;
pub use error::Error;
pub use license_edge_token::{Claims, KeySet, TokenError};
pub use seat::{Seat, Status};
