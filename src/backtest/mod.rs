//! `forewarn backtest`: runs a config over history through the offline driver
//! (as `run` would see it, partitions and idle advancement included) and scores
//! its alerts against an incident file: incidents caught and missed, detection
//! delay and lead time, false pages, flaps and time firing, overall and per rule.
//! With `--sweep`, one pass scores every value of one rule parameter.
//!
//! - `incidents.rs`: the incident file;
//! - `score.rs`: matching episodes to incidents as they stream;
//! - `recorded.rs`: `--recorded`, scoring published alerts instead of events;
//! - `report.rs`: the figures and their table;
//! - `sweep.rs`: the config variants.

pub mod incidents;
mod recorded;
mod report;
mod score;
mod sweep;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use forewarn_core::config::Severity;
use forewarn_core::time::{parse_duration, Millis};
use forewarn_core::{Config, Driver, Engine, Transition};

use crate::lines::Lines;
use crate::replay::Split;
use incidents::Incident;
use report::{short, Report};
use score::{ScoreOptions, Scorer};
use sweep::Sweep;

/// `forewarn backtest` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The TOML config file.
    #[arg(long, short)]
    pub config: PathBuf,
    /// The incidents to score against: a JSON array of
    /// `{id, service|services, start, end, breach?, category?}` (see docs/BACKTEST.md).
    /// Repeat to combine several files (one per replayed event file, say).
    #[arg(long, required = true)]
    pub incidents: Vec<PathBuf>,
    /// NDJSON event files, plain or gzip'd, fed in the order given ("-": stdin).
    #[arg(required = true)]
    pub events: Vec<PathBuf>,
    /// Output: a readable table, or one JSON document on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// An alert this long before an incident's start still counts for it.
    #[arg(long, default_value = "0s", value_parser = duration)]
    pub early: Millis,
    /// An alert up to this long after an incident's end still counts for it.
    #[arg(long, default_value = "10m", value_parser = duration)]
    pub grace: Millis,
    /// An episode re-opening within this of its last resolve is a flap.
    #[arg(long, default_value = "10m", value_parser = duration)]
    pub flap_window: Millis,
    /// Severities that count as pages.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "warning,critical"
    )]
    pub severity: Vec<SeverityArg>,
    /// Rerun with each value of one rule parameter: `RULE.PARAM=a,b,c`
    /// (e.g. `ServiceErrorRateHigh.critical.value=0.05,0.1,0.2` or `LatencyHigh.for=1m,5m`).
    #[arg(long)]
    pub sweep: Option<String>,
    /// The input files are recorded alert transitions (the alerts topic's
    /// messages as NDJSON, or `forewarn replay` output), scored as they are
    /// instead of running the rules: what production paged, measured against
    /// the incidents. The config names the rules; the span is from the first
    /// to the last transition.
    #[arg(long, conflicts_with_all = ["sweep", "partitions"])]
    pub recorded: bool,
    /// No progress bar (it is drawn only on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub split: Split,
}

/// `--format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Tables and one line per incident.
    Text,
    /// One JSON document.
    Json,
}

/// `--severity` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SeverityArg {
    /// Warning alerts.
    Warning,
    /// Critical alerts.
    Critical,
}

fn duration(s: &str) -> Result<Millis, String> {
    parse_duration(s)
}

/// Some incident was missed or some alert was a false page (exit code 4).
#[derive(Debug, thiserror::Error)]
#[error("backtest: {0}")]
pub struct Failed(pub String);

/// Runs the backtest; `cfg` is the config as loaded (used when not sweeping).
pub fn run(cfg: Config, args: &Args) -> anyhow::Result<()> {
    // A bad incident file or sweep is the invocation to fix, like a bad config.
    let usage = |e: anyhow::Error| crate::Usage(format!("{e:#}"));
    let incidents = incidents::load_all(&args.incidents).map_err(usage)?;
    let sweep = args
        .sweep
        .as_deref()
        .map(Sweep::parse)
        .transpose()
        .map_err(usage)?;
    let configs = match &sweep {
        None => vec![cfg],
        Some(s) => {
            let file = args.config.display().to_string();
            let src = std::fs::read_to_string(&args.config)
                .with_context(|| format!("{file}: cannot read config"))?;
            s.configs(&src, &file).map_err(usage)?
        }
    };
    let opts = ScoreOptions {
        early: args.early,
        grace: args.grace,
        flap_window: args.flap_window,
        severities: args
            .severity
            .iter()
            .map(|s| match s {
                SeverityArg::Warning => Severity::Warning,
                SeverityArg::Critical => Severity::Critical,
            })
            .collect(),
    };
    let reports = if args.recorded {
        vec![score_recorded(&configs[0], &incidents, &opts, args)?]
    } else {
        replay_all(&configs, &incidents, &opts, args)?
    };
    let mut out = std::io::stdout().lock();
    match (&sweep, args.format) {
        (None, Format::Text) => write!(out, "{}", reports[0].table())?,
        (None, Format::Json) => writeln!(out, "{}", serde_json::to_string_pretty(&reports[0])?)?,
        (Some(s), Format::Text) => write!(out, "{}", sweep_table(s, &reports))?,
        (Some(s), Format::Json) => {
            let runs: Vec<_> = s
                .values
                .iter()
                .zip(&reports)
                .map(|(v, r)| serde_json::json!({"value": v, "report": r}))
                .collect();
            let doc = serde_json::json!({"sweep": s.target(), "runs": runs});
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        }
    }
    out.flush()?;
    if reports.iter().any(|r| r.passed) {
        Ok(())
    } else {
        let o = &reports[0].overall;
        Err(Failed(match &sweep {
            None => format!("{} missed, {} false pages", o.missed, o.false_pages),
            Some(_) => "no swept value caught every incident without a false page".into(),
        })
        .into())
    }
}

/// One pass over the events, every config's driver fed each decoded event.
fn replay_all(
    configs: &[Config],
    incidents: &[Incident],
    opts: &ScoreOptions,
    args: &Args,
) -> anyhow::Result<Vec<Report>> {
    let mut runs: Vec<(Driver, Scorer)> = configs
        .iter()
        .map(|c| {
            (
                Driver::new(c.clone(), args.split.options(None)),
                Scorer::new(c, incidents, opts.clone()),
            )
        })
        .collect();
    let bar = crate::input::progress(&args.events, !args.no_progress);
    let mut books = Books::default();
    for path in &args.events {
        let mut lines = Lines::new(crate::input::open(path, &bar)?);
        while let Some(line) = lines
            .next_line()
            .with_context(|| format!("cannot read {}", path.display()))?
        {
            books.lines += 1;
            let decoded = line.decode();
            match decoded {
                Ok(ev) => {
                    books.span(ev.ts);
                    for (driver, scorer) in &mut runs {
                        let mut sink = |e: &Engine, t: &Transition| scorer.transition(e, t);
                        // No skew reference offline: every event is applied, late or refused.
                        driver.feed(&ev, &mut sink);
                    }
                }
                Err(e) => books.reject(e.reason()),
            }
        }
    }
    bar.finish_and_clear();
    if let Some((driver, _)) = runs.first() {
        books.summarize(driver);
    }
    let reports = runs
        .into_iter()
        .map(|(mut driver, mut scorer)| {
            driver.finish(&mut |e: &Engine, t: &Transition| scorer.transition(e, t));
            Report::new(
                incidents,
                &scorer.finish(driver.wall()),
                books.first,
                books.last,
            )
        })
        .collect();
    Ok(reports)
}

/// Scores the recorded alert transitions of every input file.
fn score_recorded(
    cfg: &Config,
    incidents: &[Incident],
    opts: &ScoreOptions,
    args: &Args,
) -> anyhow::Result<Report> {
    let mut scorer = Scorer::new(cfg, incidents, opts.clone());
    let mut span = recorded::Span::default();
    let bar = crate::input::progress(&args.events, !args.no_progress);
    for path in &args.events {
        let mut lines = Lines::new(crate::input::open(path, &bar)?);
        let file = path.display().to_string();
        recorded::score(cfg, &file, &mut lines, &mut scorer, &mut span)
            .map_err(|e| crate::Usage(format!("{e:#}")))?;
    }
    bar.finish_and_clear();
    note!(
        "backtest: {} recorded lines: {} firing or resolved transitions scored",
        span.lines,
        span.scored
    );
    Ok(Report::new(
        incidents,
        &scorer.finish(span.last),
        span.first,
        span.last,
    ))
}

/// Input accounting: every line is applied, late, refused or rejected.
#[derive(Default)]
struct Books {
    lines: u64,
    rejected: BTreeMap<&'static str, u64>,
    first: Millis,
    last: Millis,
    seen: bool,
}

impl Books {
    fn span(&mut self, ts: Millis) {
        if !self.seen {
            (self.first, self.last, self.seen) = (ts, ts, true);
        }
        self.first = self.first.min(ts);
        self.last = self.last.max(ts);
    }

    fn reject(&mut self, reason: &'static str) {
        *self.rejected.entry(reason).or_default() += 1;
    }

    fn summarize(&self, driver: &Driver) {
        let s = driver.stats();
        let rejected: u64 = self.rejected.values().sum();
        let reasons: Vec<String> = self
            .rejected
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        note!(
            "backtest: {} events: {} applied, {} late, {} refused, {} rejected{}",
            self.lines,
            s.applied,
            s.late,
            s.refused,
            rejected,
            if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", reasons.join(", "))
            },
        );
    }
}

/// The sweep's trade-off table: one row per value.
fn sweep_table(s: &Sweep, reports: &[Report]) -> String {
    let mut t = format!(
        "sweep {}: {} incidents\n\n{:<14} {:>7} {:>6} {:>6} {:>8} {:>12} {:>12} {:>5} | {:>10} {:>9}\n",
        s.target(),
        reports.first().map_or(0, |r| r.incidents.len()),
        "value", "caught", "missed", "false", "false/d", "lead median", "delay median", "flaps", "all caught", "all false"
    );
    for (v, r) in s.values.iter().zip(reports) {
        let rule = r
            .rules
            .iter()
            .find(|x| x.rule == s.rule)
            .expect("the swept rule exists");
        t.push_str(&format!(
            "{:<14} {:>7} {:>6} {:>6} {:>8.2} {:>12} {:>12} {:>5} | {:>10} {:>9}\n",
            v,
            rule.caught,
            rule.missed,
            rule.false_pages,
            rule.false_pages_per_day,
            short(rule.lead_seconds.median),
            short(rule.delay_seconds.median),
            rule.flaps,
            r.overall.caught,
            r.overall.false_pages,
        ));
    }
    t
}
