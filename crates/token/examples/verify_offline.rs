//! A vendor's program checking its license token offline, for as long as the server allows.
//!
//! The program saved the server's `/.well-known/jwks.json` (and its last token) while online.
//! Offline, it verifies the token against that saved key set. A token that expired a while ago
//! still counts for the offline grace the server wrote into it (its `offline_grace` claim, set
//! per license: 24 hours by default, at most 7 days), and not a second longer: the program
//! does not choose its own grace. Online, it should ask `POST /api/v1/licenses/validate`
//! instead: only the server knows about suspensions, revocations and released sessions.
//!
//! The product is named as the server writes it into `aud`: `{organization_id}/{product_code}`
//! (a product code alone is unique only inside its organization, so a token for another
//! vendor's `cad-pro` does not pass).
//!
//! Run: `cargo run -p license-edge-token --example verify_offline -- jwks.json TOKEN MACHINE_ID org_…/cad-pro`

use license_edge_token::{verify, KeySet, ValidationOptions};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [jwks_path, token, machine_id, product] = args.as_slice() else {
        eprintln!("usage: verify_offline JWKS_FILE TOKEN MACHINE_ID ORGANIZATION_ID/PRODUCT_CODE");
        return ExitCode::from(2);
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
    let policy = ValidationOptions::new()
        .with_issuer("license-edge")
        .with_audience(product.as_str())
        .honouring_offline_grace();
    match verify(token, &keys, &policy, now, Some(machine_id)) {
        Ok(verified) => {
            let c = verified.claims();
            let until = c.exp + i64::from(c.offline_grace.unwrap_or(0));
            println!(
                "licensed: {} (plan {:?}, features {:?}); offline until {until} at the latest",
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
