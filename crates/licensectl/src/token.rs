//! `licensectl token issue` and `licensectl token verify`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use license_edge_token::{
    machine_id_hash, strict_json as json, Claims, TokenError, ValidationOptions,
};
use serde_json::Value;

use crate::{duration, io, EXIT_REFUSED};

/// `licensectl token ...`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Sign a token valid from now for --ttl; prints it on stdout.
    Issue(IssueArgs),
    /// Verify a token; prints its claims as JSON (exit 0) or its error code (exit 1).
    Verify(VerifyArgs),
}

/// Arguments of `licensectl token issue`.
#[derive(Debug, clap::Args)]
pub struct IssueArgs {
    /// Private key file written by `licensectl keygen`.
    #[arg(long, value_name = "KEYFILE")]
    key: PathBuf,
    /// Claims as a JSON object, `@FILE` to read them from a file, or `@-` from stdin. Needs
    /// iss, sub, aud; `sid` defaults to a random session id; iat, nbf and exp come from --ttl.
    #[arg(long, value_name = "JSON|@FILE")]
    claims: String,
    /// How long the token is valid: 90s, 10m, 12h, 30d.
    #[arg(long, default_value = "10m", value_parser = duration::parse_ttl)]
    ttl: u32,
    /// Bind the token to this machine id (sets `mid` to its SHA-256).
    #[arg(long, value_name = "ID")]
    machine_id: Option<String>,
}

/// Arguments of `licensectl token verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Public key set: a JWKS JSON file, or `ed25519:<kid>:<x>` entries.
    #[arg(long, value_name = "FILE")]
    jwks: PathBuf,
    /// Require this audience (product).
    #[arg(long)]
    aud: Option<String>,
    /// Require this issuer.
    #[arg(long)]
    iss: Option<String>,
    /// Require the token to be bound to this machine id.
    #[arg(long, value_name = "ID")]
    machine_id: Option<String>,
    /// Clock skew tolerated on exp, nbf and iat.
    #[arg(long, default_value = "60s", value_parser = duration::parse_secs)]
    leeway: u32,
    /// The token, or `-` to read it from stdin.
    #[arg(value_name = "TOKEN|-")]
    token: String,
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Issue(args) => issue(args),
        Command::Verify(args) => verify(args),
    }
}

/// Claims the command line sets itself; `--claims` may not.
const TIME_CLAIMS: [&str; 3] = ["iat", "nbf", "exp"];

fn issue(args: IssueArgs) -> anyhow::Result<ExitCode> {
    let key = io::read_signing_key(&args.key)?;
    let text = match args.claims.strip_prefix('@') {
        Some("-") => io::read_stdin()?,
        Some(path) => io::read_text_file(path.as_ref())?,
        None => args.claims.clone(),
    };
    let Some(mut map) = json::parse_object(text.as_bytes()) else {
        bail!("--claims is not a JSON object (or has a duplicate key)");
    };
    for claim in TIME_CLAIMS {
        if map.contains_key(claim) {
            bail!("--claims sets `{claim}`; iat, nbf and exp come from the clock and --ttl");
        }
    }
    let now = io::now()?;
    map.insert("iat".into(), now.into());
    map.insert("nbf".into(), now.into());
    map.insert("exp".into(), now.saturating_add(i64::from(args.ttl)).into());
    if !map.contains_key("sid") {
        let sid = match map.get("jti") {
            Some(jti) => jti.clone(),
            None => Value::String(format!("ses_{}", hex(&io::random_bytes::<16>()?))),
        };
        map.insert("sid".into(), sid);
    }
    if let Some(machine_id) = &args.machine_id {
        if map.contains_key("mid") {
            bail!("--claims sets `mid` and --machine-id is given; use one");
        }
        map.insert("mid".into(), machine_id_hash(machine_id).into());
    }
    let claims = Claims::from_json_object(map).map_err(claims_error)?;
    let token = license_edge_token::issue(&key, &claims).map_err(claims_error)?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

/// Words for an error in the caller's claims (not in a token).
fn claims_error(err: TokenError) -> anyhow::Error {
    match err {
        TokenError::MissingClaim { claim } => anyhow::anyhow!("--claims lacks `{claim}`"),
        TokenError::InvalidClaim { claim } => {
            anyhow::anyhow!("--claims: `{claim}` has the wrong type or value")
        }
        other => anyhow::anyhow!("cannot issue the token: {other}"),
    }
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let keys = io::read_key_set(&args.jwks)?;
    let token = if args.token == "-" {
        io::read_stdin()?
    } else {
        args.token.clone()
    };
    let mut policy = ValidationOptions::new().with_leeway_secs(args.leeway);
    if let Some(aud) = args.aud {
        policy = policy.with_audience(aud);
    }
    if let Some(iss) = args.iss {
        policy = policy.with_issuer(iss);
    }
    let now = io::now()?;
    // Surrounding whitespace (a newline from a file or a pipe) is not part of the token.
    match license_edge_token::verify(
        token.trim(),
        &keys,
        &policy,
        now,
        args.machine_id.as_deref(),
    ) {
        Ok(verified) => {
            let claims = serde_json::to_string_pretty(verified.claims())
                .context("cannot print the claims")?;
            println!("{claims}");
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("licensectl: token refused: {}: {err}", err.code());
            Ok(ExitCode::from(EXIT_REFUSED))
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
