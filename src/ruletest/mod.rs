//! `forewarn test FILE…`: rule unit tests, as `promtool test rules` is for
//! Prometheus. A test file names a config, and each of its tests gives input
//! (compact series or NDJSON) and the alerts expected to be firing at given
//! times, with labels and annotations; a mismatch prints what was missing and
//! what was there instead (docs/RULE_TESTS.md).
//!
//! - `series.rs`: the compact notation and the events it expands to;
//! - `expect.rs`: the alert state over time and the comparison.

mod expect;
mod series;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use forewarn_core::time::{parse_duration, parse_rfc3339, Millis};
use forewarn_core::{decode, Config, DriveOptions, Driver};
use serde::Deserialize;

use expect::{Expect, Timeline};
use series::Series;

/// `forewarn test` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Rule test files (TOML).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Some expectation did not hold (exit code 4).
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} expectations failed")]
pub struct Failed {
    /// Expectations that failed.
    pub failed: usize,
    /// All expectations.
    pub total: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    /// The config's path, relative to the test file.
    config: Option<String>,
    /// Or the config itself.
    config_toml: Option<String>,
    /// Where time offsets count from (RFC 3339).
    #[serde(default = "default_start")]
    start: String,
    #[serde(rename = "test", default)]
    tests: Vec<TestCase>,
}

fn default_start() -> String {
    "2026-01-05T00:00:00Z".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCase {
    name: String,
    #[serde(default)]
    series: Vec<Series>,
    /// NDJSON events (absolute times), inline.
    #[serde(default)]
    ndjson: String,
    /// NDJSON event files, relative to the test file.
    #[serde(default)]
    ndjson_files: Vec<String>,
    #[serde(default)]
    expect: Vec<Expect>,
}

/// Runs every test of every file and prints a line per failure and a summary.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let (mut total, mut failed, mut tests) = (0, 0, 0);
    for path in &args.files {
        let file = load(path)?;
        let cfg = config(path, &file)?;
        let start = parse_rfc3339(&file.start)
            .ok_or_else(|| anyhow!("{}: `start` is not RFC 3339", path.display()))?;
        for case in &file.tests {
            tests += 1;
            let where_ = format!("{} › {}", path.display(), case.name);
            // A test that cannot run is the test file to fix (exit 2), like a bad config.
            let usage = |e: anyhow::Error| crate::Usage(format!("{where_}: {e:#}"));
            let timeline = play(path, &cfg, case, start).map_err(usage)?;
            for exp in &case.expect {
                total += 1;
                if let Some(diff) = exp.check(&timeline, start).map_err(usage)? {
                    failed += 1;
                    note!("FAIL {where_}: {diff}");
                }
            }
        }
    }
    note!(
        "forewarn test: {} files, {tests} tests, {total} expectations: {} passed, {failed} failed",
        args.files.len(),
        total - failed
    );
    if failed > 0 {
        return Err(Failed { failed, total }.into());
    }
    Ok(())
}

fn load(path: &Path) -> anyhow::Result<TestFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow!(crate::Usage(format!("{}: {e}", path.display()))))
}

fn config(path: &Path, file: &TestFile) -> anyhow::Result<Config> {
    match (&file.config, &file.config_toml) {
        (Some(rel), None) => crate::load_config(&beside(path, rel)),
        (None, Some(text)) => Ok(Config::parse(
            text,
            &format!("{} (config_toml)", path.display()),
        )?),
        _ => Err(crate::Usage(format!(
            "{}: give `config` (a path) or `config_toml` (the config itself), not both",
            path.display()
        ))
        .into()),
    }
}

/// `rel` resolved against the directory of `file`.
fn beside(file: &Path, rel: &str) -> PathBuf {
    file.parent().unwrap_or(Path::new(".")).join(rel)
}

/// Feeds the case's events through the offline driver and records every alert.
fn play(path: &Path, cfg: &Config, case: &TestCase, start: Millis) -> anyhow::Result<Timeline> {
    let mut events: Vec<(Millis, String)> = Vec::new();
    for (i, s) in case.series.iter().enumerate() {
        events.extend(
            s.events(start)
                .with_context(|| format!("series {} ({})", i + 1, s.service))?,
        );
    }
    let mut ndjson = vec![("ndjson".to_string(), case.ndjson.clone())];
    for f in &case.ndjson_files {
        let p = beside(path, f);
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
        ndjson.push((p.display().to_string(), text));
    }
    for (name, text) in ndjson {
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let e = decode(line.as_bytes()).map_err(|e| anyhow!("{name}: line {}: {e}", n + 1))?;
            events.push((e.ts, line.to_string()));
        }
    }
    if events.is_empty() {
        bail!("no input: give `series`, `ndjson` or `ndjson_files`");
    }
    // Stable: events of one time keep the order they were given in.
    events.sort_by_key(|(ts, _)| *ts);
    let mut driver = Driver::new(cfg.clone(), DriveOptions::default());
    let mut timeline = Timeline::default();
    let mut sink = |e: &forewarn_core::Engine, t: &forewarn_core::Transition| timeline.record(e, t);
    for (_, line) in &events {
        let e = decode(line.as_bytes()).expect("decoded once already");
        driver.feed(&e, &mut sink);
    }
    driver.finish(&mut sink);
    timeline.end = events.last().map_or(start, |(ts, _)| *ts);
    Ok(timeline)
}

/// `at`: an offset from `start` (`20m`) or an RFC 3339 time.
fn time_of(at: &str, start: Millis) -> anyhow::Result<Millis> {
    if let Some(t) = parse_rfc3339(at) {
        return Ok(t);
    }
    parse_duration(at)
        .map(|d| start + d)
        .map_err(|e| anyhow!("`at = \"{at}\"`: neither an offset like \"20m\" nor RFC 3339 ({e})"))
}
