//! `licensectl`: keys, license tokens, migrations and administration for license-edge, from
//! the command line.
//!
//! The binary is thin: it reads files, the clock and OS randomness, and hands them to the
//! `license_edge` core, which does all the checking. Each subcommand lives in its own module.
//!
//! Exit codes: 0 success; 1 a token was verified and refused, or the admin API (or the seat
//! API) refused the request (its code on stderr); 2 bad usage, bad input or an unreachable server (a one-line
//! message on stderr).

mod admin;
mod admin_http;
mod admin_table;
mod duration;
mod io;
mod jwks;
mod keygen;
mod kms_jwk;
mod migrate;
mod quickstart;
mod seat;
mod token;
mod usage_chart;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for a token that was checked and refused, or a request the admin API refused.
const EXIT_REFUSED: u8 = 1;
/// Exit code for bad usage or unusable input.
const EXIT_USAGE: u8 = 2;

/// Keys, license tokens, migrations and administration for license-edge.
#[derive(Debug, Parser)]
#[command(
    name = "licensectl",
    version,
    after_help = "Exit status: 0 success, 1 token or request refused (its code on stderr), 2 bad usage or input."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a signing key: writes the private key file (mode 0600), prints the public JWK.
    Keygen(keygen::Args),
    /// Print the public key set (JWKS) of one or more private key files.
    Jwks(jwks::Args),
    /// Print the JWKS entry of a Cloud KMS key version (signer = kms) from its public key PEM.
    KmsJwk(kms_jwk::Args),
    /// Issue or verify license tokens.
    #[command(subcommand)]
    Token(token::Command),
    /// Apply the database migrations that have not run yet.
    Migrate(migrate::Args),
    /// Administer organizations, products, licenses and sessions through the admin API
    /// (token from LICENSE_EDGE_ADMIN_TOKEN).
    Admin(admin::Args),
    /// Hold a seat from this terminal with the client library: acquire, renew, release
    /// (license key from LICENSE_EDGE_LICENSE_KEY).
    Seat(seat::Args),
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            // `{:#}` puts the whole context chain on one line.
            eprintln!("licensectl: error: {err:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Help and version go to stdout and succeed; usage errors exit 2.
            let _ = err.print();
            return Ok(if err.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            });
        }
    };
    match cli.command {
        Command::Keygen(args) => keygen::run(args),
        Command::Jwks(args) => jwks::run(args),
        Command::KmsJwk(args) => kms_jwk::run(args),
        Command::Token(command) => token::run(command),
        Command::Migrate(args) => migrate::run(args),
        Command::Admin(args) => admin::run(args),
        Command::Seat(args) => seat::run(args),
    }
}
