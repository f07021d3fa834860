//! `forewarn detect`: the `anomaly` rule's detector on one series, as a
//! filter: `timestamp,value` lines in, one anomaly score per line out, written
//! and flushed as each line arrives (the protocol of NAB's runner).

use std::io::{BufRead, Write};

use anyhow::Context;
use forewarn_core::detector::{Detector, DetectorParams, DetectorState, Direction};
use forewarn_core::time::{parse_duration, parse_rfc3339, Millis};

/// `forewarn detect` options.
#[derive(clap::Args)]
pub struct Args {
    /// Which deviations count.
    #[arg(long, value_enum, default_value_t = Side::Both)]
    direction: Side,
    /// Observations scored 0 while the baseline forms.
    #[arg(long, default_value_t = DetectorParams::default().warmup)]
    warmup: u32,
    /// Consecutive outliers after which a shift is accepted as normal.
    #[arg(long, default_value_t = DetectorParams::default().accept_after)]
    accept_after: u32,
    /// The sampling interval (e.g. "5m"); estimated from the data if absent.
    #[arg(long)]
    interval: Option<String>,
    /// Learn no daily or weekly profile.
    #[arg(long)]
    no_seasonality: bool,
    /// Also print what was expected: `score,expected,lower,upper`, the band
    /// being where about 95% of normal values fall.
    #[arg(long)]
    explain: bool,
    /// Skip a first line that is not data (a CSV header).
    #[arg(long)]
    header: bool,
}

/// `--direction` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Side {
    Above,
    Below,
    Both,
}

/// A line that is not `timestamp,value` (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error(
    "stdin line {line}: {reason} (expected `timestamp,value`, e.g. `2014-04-10 07:15:00,12.5`)"
)]
pub struct BadLine {
    /// 1-based line number.
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// Scores stdin to stdout until end of input.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let detector = Detector::new(params(args)?);
    let mut st = DetectorState::default();
    let stdin = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    let mut previous = Millis::MIN;
    for (i, line) in stdin.lines().enumerate() {
        let line = line.context("cannot read stdin")?;
        let number = i as u64 + 1;
        if number == 1 && args.header {
            continue;
        }
        let (t, x) = parse_line(&line).map_err(|reason| BadLine {
            line: number,
            reason,
        })?;
        if t < previous {
            return Err(BadLine {
                line: number,
                reason: "timestamp earlier than the line before".into(),
            }
            .into());
        }
        previous = t;
        let v = detector.observe(&mut st, t, x);
        if args.explain {
            let (lo, hi) = v.band();
            writeln!(out, "{:.6},{},{},{}", v.score, v.expected, lo, hi)?;
        } else {
            writeln!(out, "{:.6}", v.score)?;
        }
        out.flush()?;
    }
    Ok(())
}

fn params(args: &Args) -> anyhow::Result<DetectorParams> {
    let interval = match &args.interval {
        Some(s) => Some(parse_duration(s).map_err(|e| crate::Usage(format!("--interval: {e}")))?),
        None => None,
    };
    Ok(DetectorParams {
        direction: match args.direction {
            Side::Above => Direction::Above,
            Side::Below => Direction::Below,
            Side::Both => Direction::Both,
        },
        warmup: args.warmup,
        accept_after: args.accept_after,
        interval,
        daily: !args.no_seasonality,
        weekly: !args.no_seasonality,
        ..DetectorParams::default()
    })
}

/// `timestamp,value`: the timestamp RFC 3339, `YYYY-MM-DD HH:MM:SS[.fff]`
/// (UTC), or epoch seconds (below 10^11) or milliseconds.
pub fn parse_line(line: &str) -> Result<(Millis, f64), String> {
    let (ts, value) = line
        .trim_end_matches('\r')
        .rsplit_once(',')
        .ok_or("no comma")?;
    let t = parse_time(ts.trim()).ok_or_else(|| format!("bad timestamp {ts:?}"))?;
    let x: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("bad value {value:?}"))?;
    if !x.is_finite() {
        return Err(format!("value {value:?} is not a finite number"));
    }
    Ok((t, x))
}

fn parse_time(s: &str) -> Option<Millis> {
    if let Ok(n) = s.parse::<f64>() {
        let ms = if n.abs() < 1e11 { n * 1000.0 } else { n };
        return ms.is_finite().then_some(ms as Millis);
    }
    if let Some(t) = parse_rfc3339(s) {
        return Some(t);
    }
    // NAB's `2014-04-10 07:15:00`: a naive time, read as UTC.
    let b = s.as_bytes();
    if b.len() >= 19 && (b[10] == b' ' || b[10] == b'T') {
        let mut iso = String::with_capacity(s.len() + 1);
        iso.push_str(&s[..10]);
        iso.push('T');
        iso.push_str(&s[11..]);
        iso.push('Z');
        return parse_rfc3339(&iso);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nab_rfc3339_and_epoch_timestamps() {
        let t = 1_397_114_100_000;
        assert_eq!(parse_line("2014-04-10 07:15:00,12.5"), Ok((t, 12.5)));
        assert_eq!(parse_line("2014-04-10T07:15:00Z,1"), Ok((t, 1.0)));
        assert_eq!(parse_line("1397114100,-3e2"), Ok((t, -300.0)));
        assert_eq!(parse_line("1397114100000,0\r"), Ok((t, 0.0)));
    }

    #[test]
    fn names_what_is_wrong() {
        assert_eq!(parse_line("12.5"), Err("no comma".into()));
        assert!(parse_line("2014-13-10 07:15:00,1")
            .unwrap_err()
            .contains("timestamp"));
        assert!(parse_line("2014-04-10 07:15:00,abc")
            .unwrap_err()
            .contains("value"));
        assert!(parse_line("2014-04-10 07:15:00,NaN")
            .unwrap_err()
            .contains("finite"));
    }
}
