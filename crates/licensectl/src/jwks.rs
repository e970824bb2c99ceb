//! `licensectl jwks`: the public key set of some private key files.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use license_edge_token::KeySet;

use crate::io;

/// Arguments of `licensectl jwks`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Private key files written by `licensectl keygen`.
    #[arg(required = true, value_name = "KEYFILE")]
    keys: Vec<PathBuf>,
    /// Print the one-line `ed25519:<kid>:<x>,...` form (for a Spin variable) instead of JWKS.
    #[arg(long)]
    text: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut set = KeySet::new();
    for path in &args.keys {
        let key = io::read_signing_key(path)?;
        set.insert(key.verifying_key())
            .with_context(|| format!("cannot add {}", path.display()))?;
    }
    if args.text {
        println!("{}", set.to_text());
    } else {
        println!("{}", serde_json::to_string_pretty(&set.to_jwks())?);
    }
    Ok(ExitCode::SUCCESS)
}
