//! The admin API without I/O: who may call it, its route table, parsing and checking every
//! request, and shaping every answer. The admin component reads the request, calls one SQL
//! function of `migrations/0002_admin.sql` (which answers one row: an outcome and a JSON body),
//! writes the edge read model, and hands the rest to this module.
//!
//! Nothing here reads the clock or draws randomness: `now` and random bytes are arguments.
//! Times are Unix epoch milliseconds inside and RFC 3339 strings on the wire.

//!
//! - [`access`]: who is calling (the operator token or an organization key) and what they may do;
//! - [`routes`](mod@routes): the route table and request routing;
//! - [`input`]: request bodies, checked field by field;
//! - [`rows`]: what the SQL functions answer, and their outcomes as errors;
//! - [`answers`]: the JSON the API sends back;
//! - [`usage`]: the usage figures' range, what the database answers and the answer.
//!
//! Query strings, cursors and pagination are the API layer's ([`crate::api::query`]).

pub mod access;
pub mod answers;
pub mod input;
pub mod routes;
pub mod rows;
pub mod usage;

pub use access::*;
pub use answers::*;
pub use input::*;
pub use routes::*;
pub use rows::*;

/// Where the admin API lives; every path under it needs the admin token.
pub const ADMIN_PREFIX: &str = "/api/v1/admin";
/// The largest admin request body.
pub const MAX_ADMIN_BODY: usize = 16 * 1024;
/// A configured admin token shorter than this is refused outright (every request gets 401).
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;
/// The most live sessions embedded in a license's detail (the sessions route lists them all).
pub const MAX_EMBEDDED_SESSIONS: u32 = 100;
/// The longest organization or product name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest code, plan or feature name, in characters (ASCII only).
pub const MAX_CODE_LEN: usize = 64;
/// The most features a license may list.
pub const MAX_FEATURES: usize = 64;
/// The longest `reason` of a suspension, reinstatement or revocation, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// The largest seat limit.
pub const MAX_SEATS: i64 = 1_000_000;
/// Lease length bounds, seconds (as the schema's CHECK).
pub const LEASE_SECONDS: (i64, i64) = (30, 86_400);
/// The longest offline grace a license may give its tokens, seconds (7 days).
pub const MAX_OFFLINE_GRACE_SECONDS: i64 = 604_800;
/// Default offline grace, seconds (24 hours).
pub const DEFAULT_OFFLINE_GRACE_SECONDS: i64 = 86_400;
/// The highest acquire rate limit, per minute.
pub const MAX_RATE_LIMIT: i64 = 1_000_000;
/// Defaults of a new license.
pub const DEFAULT_PLAN: &str = "standard";
/// Default lease, seconds (six minutes: clients beat every three).
pub const DEFAULT_LEASE_SECONDS: i64 = 360;
/// Default acquire attempts per minute.
pub const DEFAULT_RATE_LIMIT: i64 = 20;

// --- Ids and keys --------------------------------------------------------------------------

/// A new license key from 32 random bytes: `LE-` and 52 characters of RFC 4648 base32
/// (256 bits). It is shown once, at creation; only its hash is stored.
pub fn new_license_key(random: [u8; 32]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut key = String::with_capacity(55);
    key.push_str("LE-");
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in random {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            key.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        key.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::request::{is_id, new_id};

    #[test]
    fn ids_and_keys_have_their_shapes() {
        let id = new_id("lic", [0xab; 16]);
        assert_eq!(id, format!("lic_{}", "ab".repeat(16)));
        assert!(is_id("lic", &id));
        for bad in [
            "lic_",
            "lic",
            "org_ab",
            "lic_a-b",
            "lic_a b",
            &format!("lic_{}", "a".repeat(65)),
        ] {
            assert!(!is_id("lic", bad), "{bad}");
        }
        let key = new_license_key([0; 32]);
        assert_eq!(key, format!("LE-{}", "A".repeat(52)));
        let key = new_license_key([0xff; 32]);
        assert_eq!(key.len(), 55);
        assert!(key[3..]
            .bytes()
            .all(|b| b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".contains(&b)));
        // RFC 4648 test vector: "foobar" -> MZXW6YTBOI; check the encoder's first bytes.
        let mut bytes = [0u8; 32];
        bytes[..6].copy_from_slice(b"foobar");
        assert!(new_license_key(bytes)[3..].starts_with("MZXW6YTBOI"));
    }
}
