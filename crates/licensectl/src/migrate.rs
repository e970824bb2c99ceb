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
    /// Create the database named in the URL first when it does not exist (connecting to the
    /// server's `postgres` database to do so).
    #[arg(long, conflicts_with = "status")]
    create_database: bool,
    /// Drop the database named in the URL (closing its connections) and create it empty
    /// before applying the migrations. Everything in it is lost.
    #[arg(long, conflicts_with_all = ["status", "create_database"])]
    recreate_database: bool,
}

/// Creates (or with `recreate`, drops and creates) the database `url` names, through the
/// server's `postgres` database. Without `recreate`, an existing database is left alone.
async fn create_database(url: &str, recreate: bool) -> anyhow::Result<()> {
    let config: tokio_postgres::Config = url.parse().context("parsing the database URL")?;
    let name = config
        .get_dbname()
        .context("the database URL names no database")?
        .to_owned();
    let mut server = config.clone();
    server.dbname("postgres");
    let (client, connection) = server
        .connect(tokio_postgres::NoTls)
        .await
        .context("connecting to the server's postgres database")?;
    tokio::spawn(connection);
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    if recreate {
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
            .await
            .with_context(|| format!("dropping database {name}"))?;
    }
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        client
            .batch_execute(&format!("CREATE DATABASE {quoted}"))
            .await
            .with_context(|| format!("creating database {name}"))?;
        println!("created database {name}");
    }
    Ok(())
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        if args.create_database || args.recreate_database {
            create_database(&args.database_url, args.recreate_database).await?;
        }
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
