//! `spin-test-host`: serves a Spin application's components on a loopback port, the way
//! `spin up` would, for load tests, fault tests and HTTP clients on machines without Spin.

use anyhow::{Context, Result};
use clap::Parser;
use spin_test_host::runtime_config::RuntimeConfig;
use spin_test_host::HostBuilder;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Serve a Spin application for tests (a test fixture; users run `spin up`).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The application manifest.
    #[arg(long, short = 'f', default_value = "spin.toml")]
    manifest: PathBuf,
    /// The loopback address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Spin runtime configuration file (key-value stores).
    #[arg(long, alias = "runtime-config-file")]
    runtime_config: Option<PathBuf>,
    /// An application variable, `name=value`; beats SPIN_VARIABLE_<NAME> from the environment.
    #[arg(long = "variable", value_name = "NAME=VALUE")]
    variables: Vec<String>,
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut builder = HostBuilder::new(&args.manifest);
        if let Some(path) = &args.runtime_config {
            builder = builder.runtime_config(RuntimeConfig::load(path)?);
        }
        for pair in &args.variables {
            let (name, value) = pair
                .split_once('=')
                .with_context(|| format!("--variable {pair:?}: expected NAME=VALUE"))?;
            builder = builder.variable(name, value);
        }
        let host = builder.build().await?;
        let (addr, task) = host.listen(args.listen).await?;
        println!("Serving http://{addr}");
        task.await?;
        Ok(ExitCode::SUCCESS)
    })
}
