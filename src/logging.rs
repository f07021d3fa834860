//! Structured logs for the long-running commands: `tracing` to stderr, human or
//! JSON lines, filtered by `--log-level` or the `FOREWARN_LOG` variable (which
//! takes `tracing` directives, e.g. `info,librdkafka=warn`).

use std::io::IsTerminal;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

/// Installs the global subscriber. `level` is used unless `FOREWARN_LOG` is set.
pub fn init(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let directives = std::env::var("FOREWARN_LOG").unwrap_or_else(|_| level.to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .map_err(|e| anyhow::anyhow!("log filter `{directives}`: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    }
    .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}
