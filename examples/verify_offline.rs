//! A vendor's program checking its license token offline, with the grace it chooses.
//!
//! The program saved the server's `/.well-known/jwks.json` (and its last token) while online.
//! Offline, it verifies the token against that saved key set; `grace` lets a token that expired
//! a little while ago still count, so a laptop on a plane keeps working until the grace runs
//! out. Online, it should ask `POST /api/v1/licenses/validate` instead: only the server knows
//! about suspensions, revocations and released sessions.
//!
//! Run: `cargo run --example verify_offline -- jwks.json TOKEN MACHINE_ID [GRACE_SECONDS]`

use license_edge::{verify, KeySet, Policy};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [jwks_path, token, machine_id, rest @ ..] = args.as_slice() else {
        eprintln!("usage: verify_offline JWKS_FILE TOKEN MACHINE_ID [GRACE_SECONDS]");
        return ExitCode::from(2);
    };
    let grace: u32 = match rest.first().map(|g| g.parse()) {
        None => 3 * 24 * 3600,
        Some(Ok(g)) => g,
        Some(Err(_)) => {
            eprintln!("GRACE_SECONDS must be a whole number");
            return ExitCode::from(2);
        }
    };
    let keys = match std::fs::read_to_string(jwks_path).map(|t| KeySet::from_jwks_json(&t)) {
        Ok(Ok(keys)) => keys,
        Ok(Err(e)) => {
            eprintln!("{jwks_path}: not a usable key set: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("{jwks_path}: {e}");
            return ExitCode::from(2);
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let policy = Policy::new()
        .with_issuer("license-edge")
        .with_audience("cad-pro")
        .with_leeway_secs(grace);
    match verify(token, &keys, &policy, now, Some(machine_id)) {
        Ok(verified) => {
            let c = verified.claims();
            println!(
                "licensed: {} (plan {:?}, features {:?})",
                c.sub, c.plan, c.features
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("not licensed: {} ({e})", e.code());
            ExitCode::from(1)
        }
    }
}
