//! The backtest's figures, overall and per rule, as a readable table or JSON.

use std::fmt::Write as _;

use forewarn_core::time::{format_rfc3339, Millis};
use serde::Serialize;

use super::incidents::Incident;
use super::score::RuleTally;

const DAY_MS: f64 = 86_400_000.0;

/// Median, 90th percentile and worst of one figure, in seconds. For delays the
/// worst is the largest; for leads the smallest, and `p90` is the lead that 90%
/// of the caught incidents had at least.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spread {
    /// Median.
    pub median: Option<f64>,
    /// 90% of the values are at least this good.
    pub p90: Option<f64>,
    /// The worst value.
    pub worst: Option<f64>,
}

impl Spread {
    /// `values` in seconds; `lower_is_better` for delays.
    fn of(mut values: Vec<f64>, lower_is_better: bool) -> Spread {
        if values.is_empty() {
            return Spread::default();
        }
        values.sort_by(f64::total_cmp);
        if !lower_is_better {
            values.reverse();
        }
        // Nearest rank: the smallest value with at least q of the values at or before it.
        let rank =
            |q: f64| values[((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
        Spread {
            median: Some(rank(0.5)),
            p90: Some(rank(0.9)),
            worst: values.last().copied(),
        }
    }
}

/// One rule's figures (or every rule's together).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleSummary {
    /// Rule name, or `(any rule)`.
    pub rule: String,
    /// Incidents with a matching episode.
    pub caught: usize,
    /// Incidents without one.
    pub missed: usize,
    /// Caught incidents whose first alert came before their breach.
    pub caught_before_breach: usize,
    /// First alert minus incident start.
    pub delay_seconds: Spread,
    /// Breach minus first alert (incidents with a breach time).
    pub lead_seconds: Spread,
    /// Episodes that started firing.
    pub episodes: u64,
    /// Episodes that matched no incident.
    pub false_pages: u64,
    /// False pages per day of input.
    pub false_pages_per_day: f64,
    /// Episodes re-opening within the flap window.
    pub flaps: u64,
    /// Hours spent firing, summed over episodes.
    pub firing_hours: f64,
}

/// How one incident was caught.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentOutcome {
    /// Incident id.
    pub id: String,
    /// Its services.
    pub services: Vec<String>,
    /// The rule that alerted first (none: missed).
    pub caught_by: Option<String>,
    /// When it did (RFC 3339).
    pub first_alert: Option<String>,
    /// First alert minus start.
    pub delay_seconds: Option<f64>,
    /// Breach minus first alert.
    pub lead_seconds: Option<f64>,
}

/// The whole backtest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Event time of the first and last event, and the days between.
    pub from: String,
    /// See `from`.
    pub to: String,
    /// Days of input.
    pub days: f64,
    /// Every rule together: an incident is caught when any rule caught it.
    pub overall: RuleSummary,
    /// Per rule, in config order.
    pub rules: Vec<RuleSummary>,
    /// Per incident, in file order.
    pub incidents: Vec<IncidentOutcome>,
    /// Every incident caught and no false page.
    pub passed: bool,
}

impl Report {
    /// Figures from the scorer's tallies over input spanning `from..=to`.
    pub fn new(incidents: &[Incident], tallies: &[RuleTally], from: Millis, to: Millis) -> Report {
        let days = ((to - from).max(0) as f64 / DAY_MS).max(1.0 / 24.0);
        let rules: Vec<RuleSummary> = tallies
            .iter()
            .map(|t| summary(&t.name, incidents, &t.detections, t, days))
            .collect();
        let mut all = RuleTally::default();
        let mut first: Vec<Option<(Millis, usize)>> = vec![None; incidents.len()];
        for (ri, t) in tallies.iter().enumerate() {
            all.episodes += t.episodes;
            all.false_pages += t.false_pages;
            all.flaps += t.flaps;
            all.firing_ms += t.firing_ms;
            for (f, d) in first.iter_mut().zip(&t.detections) {
                if let Some(at) = *d {
                    if f.is_none_or(|(best, _)| at < best) {
                        *f = Some((at, ri));
                    }
                }
            }
        }
        let detections: Vec<Option<Millis>> = first.iter().map(|f| f.map(|(at, _)| at)).collect();
        let overall = summary("(any rule)", incidents, &detections, &all, days);
        let outcomes = incidents
            .iter()
            .zip(&first)
            .map(|(inc, f)| IncidentOutcome {
                id: inc.id.clone(),
                services: inc.services.clone(),
                caught_by: f.map(|(_, ri)| tallies[ri].name.clone()),
                first_alert: f.map(|(at, _)| format_rfc3339(at)),
                delay_seconds: f.map(|(at, _)| secs(at - inc.start)),
                lead_seconds: f.and_then(|(at, _)| inc.breach.map(|b| secs(b - at))),
            })
            .collect();
        Report {
            from: format_rfc3339(from),
            to: format_rfc3339(to),
            days,
            passed: overall.missed == 0 && overall.false_pages == 0,
            overall,
            rules,
            incidents: outcomes,
        }
    }

    /// The readable form: one row per rule, the overall row, then the incidents.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "backtest: {} incidents, {} to {} ({:.2} days)\n",
            self.incidents.len(),
            self.from,
            self.to,
            self.days
        );
        let _ = writeln!(s, "{}", header());
        for r in self.rules.iter().chain([&self.overall]) {
            let _ = writeln!(s, "{}", row(r));
        }
        let _ = writeln!(s);
        for i in &self.incidents {
            let _ = writeln!(s, "{}", incident_line(i));
        }
        let o = &self.overall;
        let _ = writeln!(
            s,
            "\n{}: {} of {} incidents caught ({} before breach), {} false pages ({:.2}/day), {} flaps",
            if self.passed { "PASS" } else { "FAIL" },
            o.caught,
            o.caught + o.missed,
            o.caught_before_breach,
            o.false_pages,
            o.false_pages_per_day,
            o.flaps
        );
        s
    }
}

fn summary(
    name: &str,
    incidents: &[Incident],
    detections: &[Option<Millis>],
    t: &RuleTally,
    days: f64,
) -> RuleSummary {
    let caught: Vec<(&Incident, Millis)> = incidents
        .iter()
        .zip(detections)
        .filter_map(|(i, d)| d.map(|d| (i, d)))
        .collect();
    let leads: Vec<f64> = caught
        .iter()
        .filter_map(|(i, d)| i.breach.map(|b| secs(b - d)))
        .collect();
    RuleSummary {
        rule: name.to_string(),
        caught: caught.len(),
        missed: incidents.len() - caught.len(),
        caught_before_breach: leads.iter().filter(|l| **l > 0.0).count(),
        delay_seconds: Spread::of(
            caught.iter().map(|(i, d)| secs(d - i.start)).collect(),
            true,
        ),
        lead_seconds: Spread::of(leads, false),
        episodes: t.episodes,
        false_pages: t.false_pages,
        false_pages_per_day: t.false_pages as f64 / days,
        flaps: t.flaps,
        firing_hours: t.firing_ms as f64 / 3_600_000.0,
    }
}

fn secs(ms: Millis) -> f64 {
    ms as f64 / 1000.0
}

/// Seconds as a short duration: `-2m30s`, `45s`, `1h05m`; `-` for none.
pub fn short(s: Option<f64>) -> String {
    let Some(s) = s else { return "-".into() };
    let sign = if s < 0.0 { "-" } else { "" };
    let t = s.abs().round() as i64;
    let (h, m, sec) = (t / 3600, t / 60 % 60, t % 60);
    match (h, m) {
        (0, 0) => format!("{sign}{sec}s"),
        (0, _) if sec == 0 => format!("{sign}{m}m"),
        (0, _) => format!("{sign}{m}m{sec:02}s"),
        _ => format!("{sign}{h}h{m:02}m"),
    }
}

fn header() -> String {
    format!(
        "{:<28} {:>7} {:>6} {:>22} {:>22} {:>6} {:>7} {:>5} {:>8}",
        "rule",
        "caught",
        "missed",
        "delay med/p90/worst",
        "lead med/p90/worst",
        "false",
        "false/d",
        "flaps",
        "firing h"
    )
}

fn spread(s: &Spread) -> String {
    format!("{}/{}/{}", short(s.median), short(s.p90), short(s.worst))
}

fn row(r: &RuleSummary) -> String {
    format!(
        "{:<28} {:>7} {:>6} {:>22} {:>22} {:>6} {:>7.2} {:>5} {:>8.2}",
        r.rule,
        r.caught,
        r.missed,
        spread(&r.delay_seconds),
        spread(&r.lead_seconds),
        r.false_pages,
        r.false_pages_per_day,
        r.flaps,
        r.firing_hours
    )
}

fn incident_line(i: &IncidentOutcome) -> String {
    match (&i.caught_by, &i.first_alert) {
        (Some(rule), Some(at)) => format!(
            "  {:<16} {:<24} caught by {rule} at {at}: {} after start, {} before breach",
            i.id,
            i.services.join(","),
            short(i.delay_seconds),
            short(i.lead_seconds),
        ),
        _ => format!("  {:<16} {:<24} MISSED", i.id, i.services.join(",")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_use_nearest_rank_and_worst_depends_on_direction() {
        let d = Spread::of(vec![30.0, 10.0, 20.0, 40.0, 50.0], true);
        assert_eq!(
            (d.median, d.p90, d.worst),
            (Some(30.0), Some(50.0), Some(50.0))
        );
        let l = Spread::of(vec![30.0, 10.0, 20.0, 40.0, 50.0], false);
        assert_eq!(
            (l.median, l.p90, l.worst),
            (Some(30.0), Some(10.0), Some(10.0))
        );
        assert_eq!(Spread::of(vec![], true), Spread::default());
    }

    #[test]
    fn durations_read_short() {
        assert_eq!(short(Some(45.0)), "45s");
        assert_eq!(short(Some(-150.0)), "-2m30s");
        assert_eq!(short(Some(3900.0)), "1h05m");
        assert_eq!(short(Some(120.0)), "2m");
        assert_eq!(short(None), "-");
    }
}
