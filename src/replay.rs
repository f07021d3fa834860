//! `forewarn replay`: the offline path. Feeds a file of events, in the order
//! given, through one engine per partition (one by default) as `run` would, and
//! prints every transition, so rules can be tried on history before they page
//! anyone.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use forewarn_core::partition::Partitioner;
use forewarn_core::time::parse_rfc3339;
use forewarn_core::{Alert, Config, DriveOptions, Driver, Engine, Outcome, Transition};

use crate::lines::Lines;

/// How many rejected lines are described individually on stderr.
const DETAILED_REJECTIONS: u64 = 20;

fn parse_now(s: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    parse_rfc3339(s)
        .with_context(|| format!("--now `{s}` is neither RFC 3339 nor epoch milliseconds"))
}

/// How transitions are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One Alertmanager-shaped JSON object per line.
    Json,
    /// One readable line per transition.
    Text,
}

/// One readable line: time, status, severity, rule, labels, value and summary.
fn text_line(a: &Alert) -> String {
    let mut extra: Vec<String> = a
        .labels
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "alertname" | "severity" | "service"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if let Some(v) = a.annotations.get("value") {
        extra.push(format!("value={v}"));
    }
    format!(
        "{}  {:<9} {:<8} {} service={} {} | {}",
        a.evaluated_at,
        a.transition.status().to_uppercase(),
        a.labels.get("severity").map_or("", String::as_str),
        a.labels.get("alertname").map_or("", String::as_str),
        a.labels.get("service").map_or("", String::as_str),
        extra.join(" "),
        a.annotations.get("summary").map_or("", String::as_str),
    )
}

/// How `replay` splits and clocks its input (see [`forewarn_core::drive`]).
#[derive(Debug, Clone, clap::Args)]
pub struct Split {
    /// Run one engine per partition, services split by key as a keyed producer
    /// would split them across a topic of this many partitions (as `run` sees it).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub partitions: u32,
    /// The producer's key-to-partition rule.
    #[arg(long, value_enum, default_value_t = PartitionerArg::Crc32)]
    pub partitioner: PartitionerArg,
}

/// `--partitioner` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PartitionerArg {
    /// librdkafka's default (CRC-32 of the key): `forewarn simulate --kafka`, most non-Java clients.
    Crc32,
    /// The Java client's default (murmur2 of the key).
    Murmur2,
}

impl Split {
    /// Driver options for this split, refusing events beyond `now`'s skew.
    pub fn options(&self, now: Option<i64>) -> DriveOptions {
        DriveOptions {
            partitions: self.partitions,
            partitioner: match self.partitioner {
                PartitionerArg::Crc32 => Partitioner::Crc32,
                PartitionerArg::Murmur2 => Partitioner::Murmur2,
            },
            skew_reference: now,
            ..DriveOptions::default()
        }
    }
}

/// The replay's options besides the config and the input.
pub struct Options<'a> {
    /// `--now`: wall-clock time for the future-skew check.
    pub now: Option<&'a str>,
    /// Close the windows still open at the end of the input.
    pub flush: bool,
    /// How transitions are printed.
    pub format: Format,
    /// Fail when any event was rejected or late.
    pub strict: bool,
    /// Partitions and partitioner.
    pub split: Split,
}

/// Replays `path` through fresh engines for `cfg`.
pub fn run(cfg: Config, path: &Path, opts: &Options) -> anyhow::Result<()> {
    let now = match opts.now {
        Some(s) => parse_now(s)?,
        None => SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64,
    };
    let input: Box<dyn Read> = if path == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(path).with_context(|| format!("cannot open {}", path.display()))?)
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut driver = Driver::new(cfg, opts.split.options(Some(now)));
    let mut rejected: BTreeMap<&'static str, u64> = BTreeMap::new();
    let (mut lines, mut rejected_total) = (0u64, 0u64);
    let mut written: io::Result<()> = Ok(());
    let format = opts.format;
    let mut emit = |engine: &Engine, t: &Transition| {
        if written.is_ok() {
            written = write_alert(&mut out, &engine.render(t), format);
        }
    };
    let mut reader = Lines::new(input);
    while let Some(line) = reader
        .next_line()
        .with_context(|| format!("cannot read {}", path.display()))?
    {
        lines += 1;
        let decoded = line.decode();
        let reason = match decoded {
            Ok(ev) => match driver.feed(&ev, &mut emit) {
                Outcome::Applied | Outcome::Late | Outcome::Refused => None,
                Outcome::TooFarInFuture => Some((
                    "too_far_in_future",
                    "event time is more than max_future_skew ahead of now".to_string(),
                )),
            },
            Err(e) => Some((e.reason(), e.to_string())),
        };
        if let Some((code, message)) = reason {
            rejected_total += 1;
            *rejected.entry(code).or_default() += 1;
            if rejected_total <= DETAILED_REJECTIONS {
                note!("{}:{lines}: rejected ({code}): {message}", path.display());
            }
        }
    }
    if opts.flush {
        driver.finish(&mut emit);
    }
    written?;
    out.flush()?;
    let s = driver.stats();
    summarize(&s, &rejected, rejected_total);
    if s.applied + s.late + s.refused + rejected_total == 0 && lines > 0 {
        bail!("no events in {}", path.display());
    }
    if opts.strict && (rejected_total > 0 || s.late > 0) {
        return Err(InputRejected {
            rejected: rejected_total,
            late: s.late,
        }
        .into());
    }
    Ok(())
}

fn write_alert(out: &mut impl Write, alert: &Alert, format: Format) -> io::Result<()> {
    match format {
        Format::Json => serde_json::to_writer(&mut *out, alert)?,
        Format::Text => out.write_all(text_line(alert).as_bytes())?,
    }
    out.write_all(b"\n")
}

/// `--strict` and some event was rejected or late (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error("--strict: {rejected} events rejected and {late} late (see above)")]
pub struct InputRejected {
    /// Events rejected (invalid, or too far in the future).
    pub rejected: u64,
    /// Events older than the watermark.
    pub late: u64,
}

/// The summary on stderr: readable lines, then one JSON object a script can
/// parse (`forewarn replay … 2>&1 >/dev/null | tail -n 1 | jq`).
fn summarize(
    s: &forewarn_core::Stats,
    rejected: &BTreeMap<&'static str, u64>,
    rejected_total: u64,
) {
    let reasons: Vec<String> = rejected.iter().map(|(k, v)| format!("{k}={v}")).collect();
    note!(
        "replay: {} events: {} applied, {} rejected{}, {} late{}; {} transitions; {} events refused by max_groups, {} idle groups reclaimed",
        s.applied + s.late + s.refused + rejected_total,
        s.applied,
        rejected_total,
        if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) },
        s.late,
        if s.refused == 0 { String::new() } else { format!(", {} refused (counted nowhere: every grouping at its group cap)", s.refused) },
        s.transitions,
        s.refused_groups,
        s.reclaimed_groups,
    );
    let n = s.entities;
    if n != Default::default() {
        note!(
            "replay: entities: {} opened, {} closed ({} after their deadline), {} expired; {} duplicate opens, {} closes before their open, {} unknown closes, {} refused by max_entities, {} without a deadline",
            n.opened, n.closed, n.closed_late, n.expired, n.duplicate_opens, n.early_closes,
            n.unknown_closes, n.refused, n.without_deadline
        );
    }
    let entities: BTreeMap<&str, u64> = n.by_result().into_iter().collect();
    note!(
        "{}",
        serde_json::json!({
            "events": s.applied + s.late + s.refused + rejected_total,
            "applied": s.applied,
            "refused": s.refused,
            "rejected": rejected_total,
            "rejected_by_reason": rejected,
            "late": s.late,
            "transitions": s.transitions,
            "refused_groups": s.refused_groups,
            "reclaimed_groups": s.reclaimed_groups,
            "entities": entities,
        })
    );
}
