//! `licensectl kms-jwk`: a Cloud KMS key version's public key as the JWKS entry (or the
//! `public_keys` text form) that verifies the tokens it signs, under the `kid` the acquire
//! component puts in them (`le_kms::KeyVersion::kid`, derived from the key version's name, so
//! it is the same on every replica and after every restart).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use le_kms::KeyVersion;

use crate::io;

/// Arguments of `licensectl kms-jwk`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The key version's resource name:
    /// projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N.
    #[arg(long, value_name = "NAME")]
    key_version: String,
    /// The public key: the PEM that `gcloud kms keys versions get-public-key` writes, or the
    /// JSON `cryptoKeyVersions.getPublicKey` answers; `-` for standard input.
    #[arg(value_name = "PEMFILE")]
    public_key: PathBuf,
    /// Print the one-line `ed25519:<kid>:<x>` form (to join to `public_keys` with a comma)
    /// instead of the JWK.
    #[arg(long)]
    text: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let version = KeyVersion::parse(args.key_version.trim()).context("--key-version")?;
    let text = if args.public_key.as_os_str() == "-" {
        io::read_stdin()?
    } else {
        io::read_text_file(&args.public_key)?
    };
    let key = le_kms::verifying_key(&version, &text).with_context(|| {
        format!(
            "{} is not this key version's Ed25519 public key",
            args.public_key.display()
        )
    })?;
    if args.text {
        println!("{}", key.to_text());
    } else {
        println!("{}", serde_json::to_string_pretty(&key.to_jwk())?);
    }
    Ok(ExitCode::SUCCESS)
}
