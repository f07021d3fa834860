//! The `forewarn` binary: command-line entry points around the core engine.
#![forbid(unsafe_code)]

/// `eprintln!` that never panics: a full or closed stderr loses the message,
/// not the run (the summary is the last thing replay does; losing it must not
/// turn a good exit into a crash).
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod backtest;
mod demo;
mod detect;
mod http;
mod input;
mod lines;
mod logging;
mod replay;
mod risk_api;
mod ruletest;
mod run;
mod simulate;
mod train;

use std::io::Write;
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
        /// The TOML config file ("-" for stdin).
        config: PathBuf,
        /// Output: readable text, or one JSON document (errors included).
        #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
        format: CheckFormat,
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
        /// Exit with code 3 if any event was rejected or late.
        #[arg(long)]
        strict: bool,
        #[command(flatten)]
        split: replay::Split,
    },
    /// See forewarn work in one command: simulated retail traffic with injected
    /// incidents through an in-process Kafka and the full pipeline, alerts live,
    /// and a scorecard against the ground truth at the end.
    Demo(demo::Args),
    /// Consume service events from Kafka as a consumer-group member, publish alert
    /// transitions and dead letters, until SIGTERM or SIGINT.
    Run(run::Args),
    /// Score one series for anomalies with the `anomaly` rule's detector:
    /// `timestamp,value` lines on stdin, one score in [0, 1] per line on stdout.
    Detect(detect::Args),
    /// Score a config on history: its alerts over NDJSON events against an
    /// incident file (caught, missed, delay, lead, false pages, flaps), overall and
    /// per rule; `--sweep` compares the values of one rule parameter.
    Backtest(backtest::Args),
    /// Fit a failure-probability model for a `model` rule: features of the
    /// config's signals over NDJSON events, labelled by an incident file.
    Train(train::Args),
    /// Rule unit tests: feed each test's series or NDJSON through the config and
    /// compare the alerts firing at given times with the expected ones.
    Test(ruletest::Args),
    /// Generate retail service-estate events with ground-truth incidents, as NDJSON.
    Simulate(simulate::Args),
}

/// How `check` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CheckFormat {
    /// What was understood, one line per signal and rule.
    Text,
    /// One JSON document: `{"file", "ok", "signals", "rules"}` or `{"file", "ok": false, "error"}`.
    Json,
}

/// Exit codes: distinct, so scripts can tell what went wrong.
mod exit {
    /// A config refused at start-up, or a bad flag value.
    pub const CONFIG: u8 = 2;
    /// `--strict` and input was rejected; a line `detect` cannot read.
    pub const INPUT_REJECTED: u8 = 3;
    /// Anything else: I/O, Kafka, runtime failures.
    pub const RUNTIME: u8 = 1;
    /// `backtest` missed an incident or saw a false page; a `test` expectation failed.
    pub const BACKTEST_FAILED: u8 = 4;
}

/// Reads and validates a config file ("-": stdin); the error already names
/// file, line and fix.
pub fn load_config(path: &std::path::Path) -> anyhow::Result<Config> {
    let (name, src) = if path == std::path::Path::new("-") {
        let mut src = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut src)
            .map_err(|e| anyhow::anyhow!("<stdin>: cannot read config: {e}"))?;
        ("<stdin>".to_string(), src)
    } else {
        let name = path.display().to_string();
        let src = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{name}: cannot read config: {e}"))?;
        (name, src)
    };
    Ok(Config::parse(&src, &name)?)
}

fn check(path: &std::path::Path, format: CheckFormat) -> anyhow::Result<()> {
    let loaded = load_config(path);
    match (format, loaded) {
        (CheckFormat::Text, Ok(cfg)) => {
            // write!, not print!: a closed pipe (`check … | head`) is an error
            // main ends quietly on, where print! panics.
            let mut out = std::io::stdout().lock();
            write!(out, "{}", cfg.summary())?;
            writeln!(out, "{}: OK", path.display())?;
            Ok(())
        }
        (CheckFormat::Text, Err(e)) => Err(e),
        (CheckFormat::Json, loaded) => {
            let file = path.display().to_string();
            let doc = match &loaded {
                Ok(cfg) => check_json(&file, cfg),
                Err(e) => match e.downcast_ref::<forewarn_core::ConfigError>() {
                    Some(c) => serde_json::json!({"file": file, "ok": false, "error": {
                        "file": c.file, "line": c.line, "column": c.column,
                        "message": c.message, "help": c.help }}),
                    None => serde_json::json!({"file": file, "ok": false,
                        "error": { "message": format!("{e:#}") }}),
                },
            };
            writeln!(std::io::stdout().lock(), "{doc}")?;
            // The document says it all; the exit code still tells failure.
            loaded.map(drop).map_err(|e| Quiet(e).into())
        }
    }
}

fn check_json(file: &str, cfg: &Config) -> serde_json::Value {
    use forewarn_core::time::format_duration;
    let signals: Vec<_> = cfg
        .signals
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": s.name, "aggregate": s.aggregate.to_string(),
                "window": format_duration(s.window), "slide": format_duration(s.slide),
                "group_by": s.group_by,
            })
        })
        .collect();
    let rules: Vec<_> = cfg
        .rules
        .iter()
        .map(|r| {
            serde_json::json!({
                "name": r.name, "signal": r.signal_name(&cfg.signals),
                "description": r.spec.describe(&cfg.signals),
                "category": r.category.map(|c| c.as_str()),
            })
        })
        .collect();
    serde_json::json!({"file": file, "ok": true, "signals": signals, "rules": rules})
}

/// A command line that cannot run (a bad flag value): exit code 2, like a bad
/// config — the invocation is what needs fixing.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// An error already reported on stdout: exit non-zero without repeating it.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
struct Quiet(anyhow::Error);

/// Whether `e` is a write to a closed pipe (`forewarn replay … | head`).
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn exit_code(e: &anyhow::Error) -> u8 {
    let inner = e.downcast_ref::<Quiet>().map_or(e, |q| &q.0);
    if inner.downcast_ref::<forewarn_core::ConfigError>().is_some()
        || inner.downcast_ref::<Usage>().is_some()
    {
        exit::CONFIG
    } else if inner.downcast_ref::<replay::InputRejected>().is_some()
        || inner.downcast_ref::<detect::BadLine>().is_some()
    {
        exit::INPUT_REJECTED
    } else if inner.downcast_ref::<backtest::Failed>().is_some()
        || inner.downcast_ref::<ruletest::Failed>().is_some()
    {
        exit::BACKTEST_FAILED
    } else {
        exit::RUNTIME
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config, format } => check(&config, format),
        Command::Replay {
            config,
            events,
            now,
            no_flush,
            format,
            strict,
            split,
        } => load_config(&config).and_then(|cfg| {
            let opts = replay::Options {
                now: now.as_deref(),
                flush: !no_flush,
                format,
                strict,
                split,
            };
            replay::run(cfg, &events, &opts)
        }),
        Command::Run(args) => run::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Train(args) => load_config(&args.config).and_then(|cfg| train::run(cfg, &args)),
        Command::Backtest(args) => {
            load_config(&args.config).and_then(|cfg| backtest::run(cfg, &args))
        }
        Command::Test(args) => ruletest::run(&args),
        Command::Simulate(args) => simulate::run(&args),
        Command::Detect(args) => detect::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away: stop quietly, as other Unix tools do.
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            if e.downcast_ref::<Quiet>().is_none() {
                note!("error: {e:#}");
            }
            ExitCode::from(exit_code(&e))
        }
    }
}
