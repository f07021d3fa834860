//! The `forewarn` binary: command-line entry points around the core engine.
#![forbid(unsafe_code)]

mod demo;
mod http;
mod logging;
mod replay;
mod run;
mod simulate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use forewarn_core::Config;

/// Real-time service-failure early warning.
#[derive(Parser)]
#[command(name = "forewarn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config file and print the signals and rules it defines.
    Check {
        /// The TOML config file.
        config: PathBuf,
    },
    /// Run the engine over an NDJSON file of events, in the order given, printing
    /// every alert transition as a JSON line on stdout and a summary on stderr.
    Replay {
        /// The TOML config file.
        #[arg(long, short)]
        config: PathBuf,
        /// NDJSON events, one per line ("-" for stdin).
        events: PathBuf,
        /// Wall-clock time for the future-skew check (RFC 3339 or epoch ms;
        /// default: now).
        #[arg(long)]
        now: Option<String>,
        /// Do not close the windows still open at the end of the input.
        #[arg(long)]
        no_flush: bool,
        /// Output: one Alertmanager-shaped JSON object per line, or readable text.
        #[arg(long, value_enum, default_value_t = replay::Format::Json)]
        format: replay::Format,
    },
    /// See forewarn work in one command: simulated retail traffic with injected
    /// incidents through an in-process Kafka and the full pipeline, alerts live,
    /// and a scorecard against the ground truth at the end.
    Demo(demo::Args),
    /// Consume service events from Kafka as a consumer-group member, publish alert
    /// transitions and dead letters, until SIGTERM or SIGINT.
    Run(run::Args),
    /// Generate retail service-estate events with ground-truth incidents, as NDJSON.
    Simulate(simulate::Args),
}

/// Reads and validates a config file; the error already names file, line and fix.
pub fn load_config(path: &std::path::Path) -> anyhow::Result<Config> {
    let name = path.display().to_string();
    let src = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{name}: cannot read config: {e}"))?;
    Ok(Config::parse(&src, &name)?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config } => load_config(&config).map(|cfg| {
            print!("{}", cfg.summary());
            println!("{}: OK", config.display());
        }),
        Command::Replay {
            config,
            events,
            now,
            no_flush,
            format,
        } => load_config(&config)
            .and_then(|cfg| replay::run(cfg, &events, now.as_deref(), !no_flush, format)),
        Command::Run(args) => run::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Simulate(args) => simulate::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
