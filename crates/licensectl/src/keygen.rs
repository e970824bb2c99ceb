//! `licensectl keygen`: a new signing key from OS randomness.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use license_edge_token::SigningKey;

use crate::io;

/// Arguments of `licensectl keygen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Key id put in every token's header (letters, digits, '.', '_', '-'; at most 64).
    #[arg(long)]
    kid: String,
    /// Where to write the private key [default: KID.key, after --kid].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replace the file if it exists.
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let key = SigningKey::from_seed(&args.kid, io::random_bytes()?)
        .with_context(|| format!("cannot make a key with kid `{}`", args.kid))?;
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("{}.key", args.kid)));
    io::write_secret_file(&out, &format!("{}\n", key.to_secret_text()), args.force)?;
    eprintln!(
        "licensectl: wrote private key {} (kid {})",
        out.display(),
        key.kid()
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&key.verifying_key().to_jwk())?
    );
    Ok(ExitCode::SUCCESS)
}
