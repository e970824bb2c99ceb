//! `licensectl migrate`: applies the embedded migrations that have not run yet.

use anyhow::Context;
use std::process::ExitCode;

/// Arguments of `licensectl migrate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// PostgreSQL connection URL; defaults to $DATABASE_URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Only list the applied and pending migrations.
    #[arg(long)]
    status: bool,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (client, connection) =
            tokio_postgres::connect(&args.database_url, tokio_postgres::NoTls)
                .await
                .context("connecting to the database")?;
        tokio::spawn(connection);
        if args.status {
            let applied = le_migrate::applied(&client).await?;
            for (version, _) in le_migrate::MIGRATIONS {
                let state = if applied.iter().any(|a| a == version) {
                    "applied"
                } else {
                    "pending"
                };
                println!("{version}\t{state}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        let ran = le_migrate::apply(&client)
            .await
            .context("applying migrations")?;
        if ran.is_empty() {
            println!(
                "database is up to date ({} migrations)",
                le_migrate::MIGRATIONS.len()
            );
        }
        for version in ran {
            println!("applied {version}");
        }
        Ok(ExitCode::SUCCESS)
    })
}
