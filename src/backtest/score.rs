//! Scores alert episodes against incidents as they stream out of the driver:
//! only open episodes are held, so memory follows the alerts, not the events.
//!
//! An episode (firing → resolved of one alert) counts for an incident when it
//! starts firing on one of the incident's services between `early` before the
//! incident's start and `grace` after its end; any other episode is a false page.
//! An episode that starts within `flap_window` of the same alert's last resolve
//! is a flap.

use std::collections::HashMap;

use forewarn_core::config::Severity;
use forewarn_core::lifecycle::TransitionKind;
use forewarn_core::time::Millis;
use forewarn_core::{Config, Engine, Transition};

use super::incidents::Incident;

/// How episodes are matched and which count.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    /// An episode this long before an incident's start still counts for it.
    pub early: Millis,
    /// An episode up to this long after an incident's end still counts for it.
    pub grace: Millis,
    /// A re-opening within this of the last resolve is a flap.
    pub flap_window: Millis,
    /// Severities that count (others are ignored).
    pub severities: Vec<Severity>,
}

/// What one rule did over the whole input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleTally {
    /// Rule name.
    pub name: String,
    /// Per incident (file order): the first matching episode's firing time.
    pub detections: Vec<Option<Millis>>,
    /// Episodes that started firing.
    pub episodes: u64,
    /// Episodes that matched no incident.
    pub false_pages: u64,
    /// Episodes that re-opened within the flap window.
    pub flaps: u64,
    /// Time spent firing, summed over episodes.
    pub firing_ms: i64,
}

/// One firing or resolve of one alert, as the scorer needs it.
#[derive(Debug, Clone, Copy)]
pub struct Page<'a> {
    /// The alert's fingerprint (one per rule, group and severity).
    pub fingerprint: &'a str,
    /// Index of its rule in the config.
    pub rule: usize,
    /// Its `service` label ("" when it has none).
    pub service: &'a str,
    /// Its severity.
    pub severity: Severity,
    /// Firing (an episode starts) or resolved (it ends).
    pub firing: bool,
    /// Event time of the transition.
    pub at: Millis,
}

struct Open {
    rule: usize,
    since: Millis,
}

/// Episode bookkeeping for one run (one config).
pub struct Scorer<'a> {
    incidents: &'a [Incident],
    by_service: HashMap<String, Vec<usize>>,
    opts: ScoreOptions,
    /// Firing alerts by fingerprint.
    open: HashMap<String, Open>,
    /// Last resolve per fingerprint, for flaps.
    resolved_at: HashMap<String, Millis>,
    rules: Vec<RuleTally>,
}

impl<'a> Scorer<'a> {
    /// A scorer for the rules of `cfg` against `incidents`.
    pub fn new(cfg: &Config, incidents: &'a [Incident], opts: ScoreOptions) -> Self {
        let mut by_service: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, inc) in incidents.iter().enumerate() {
            for s in &inc.services {
                by_service.entry(s.clone()).or_default().push(i);
            }
        }
        let rules = cfg
            .rules
            .iter()
            .map(|r| RuleTally {
                name: r.name.clone(),
                detections: vec![None; incidents.len()],
                ..RuleTally::default()
            })
            .collect();
        Scorer {
            incidents,
            by_service,
            opts,
            open: HashMap::new(),
            resolved_at: HashMap::new(),
            rules,
        }
    }

    /// Takes one transition from the driver.
    pub fn transition(&mut self, engine: &Engine, t: &Transition) {
        let firing = match t.kind {
            TransitionKind::Firing => true,
            TransitionKind::Resolved => false,
            _ => return,
        };
        if !self.opts.severities.contains(&t.severity) {
            return;
        }
        let alert = engine.render(t);
        let service = alert.labels.get("service").map_or("", String::as_str);
        self.page(&Page {
            fingerprint: &alert.fingerprint,
            rule: t.rule as usize,
            service,
            severity: t.severity,
            firing,
            at: t.at,
        });
    }

    /// Takes one firing or resolved transition, from the driver or recorded.
    /// Idempotent: a repeated firing of an open alert or resolve of a closed
    /// one (an at-least-once alerts topic repeats them after a crash) changes
    /// nothing.
    pub fn page(&mut self, p: &Page<'_>) {
        if !self.opts.severities.contains(&p.severity) {
            return;
        }
        if !p.firing {
            if let Some(o) = self.open.remove(p.fingerprint) {
                self.rules[o.rule].firing_ms += p.at - o.since;
                self.resolved_at.insert(p.fingerprint.to_string(), p.at);
            }
            return;
        }
        if self.open.contains_key(p.fingerprint) {
            return;
        }
        let tally = &mut self.rules[p.rule];
        tally.episodes += 1;
        let mut matched = false;
        for &i in self.by_service.get(p.service).into_iter().flatten() {
            let inc = &self.incidents[i];
            if p.at >= inc.start - self.opts.early && p.at < inc.end + self.opts.grace {
                matched = true;
                let d = &mut tally.detections[i];
                *d = Some(d.map_or(p.at, |d| d.min(p.at)));
            }
        }
        if !matched {
            tally.false_pages += 1;
        }
        if let Some(&r) = self.resolved_at.get(p.fingerprint) {
            if p.at - r <= self.opts.flap_window {
                tally.flaps += 1;
            }
        }
        self.open.insert(
            p.fingerprint.to_string(),
            Open {
                rule: p.rule,
                since: p.at,
            },
        );
    }

    /// End of input at event time `end`: episodes still firing count up to it.
    pub fn finish(mut self, end: Millis) -> Vec<RuleTally> {
        for o in self.open.values() {
            self.rules[o.rule].firing_ms += end - o.since;
        }
        std::mem::take(&mut self.rules)
    }
}
