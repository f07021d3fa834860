//! Which state carries over from one config to another: a signal's windows
//! when its name, definition and ring are unchanged; a rule's alert instances
//! and kind state when its name and definition (watched signal included) are,
//! and its signal's windows carried over too. Used by config reloads and by
//! checkpoints restored under an edited config alike.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Engine;
use crate::alert::{self, Alert};
use crate::config::Config;
use crate::lifecycle::TransitionKind;
use crate::time::{format_rfc3339, Millis};

/// The signals and rules of a config, as a snapshot remembers them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Lineage {
    signals: Vec<SignalPart>,
    rules: Vec<RulePart>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SignalPart {
    name: String,
    identity: String,
    /// Ring slots per group (from the window and the allowed lateness).
    ring: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RulePart {
    name: String,
    identity: String,
    /// The watched signal, if the rule watches one.
    signal: Option<usize>,
}

/// For each signal and rule of a new config, the one of the old config whose
/// state it takes over, and the same told by name.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Carry {
    pub(crate) signal_from: Vec<Option<usize>>,
    pub(crate) rule_from: Vec<Option<usize>>,
    pub(crate) carried: Carried,
}

/// What a restore or a reconfiguration kept and what restarted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carried {
    /// Signals by name.
    pub signals: Changes,
    /// Rules by name.
    pub rules: Changes,
}

/// How the signals (or rules) of one config relate to those of another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Same name and definition: state kept.
    pub kept: Vec<String>,
    /// Same name, state restarted: its definition changed (for a rule, maybe
    /// only the signal it watches).
    pub restarted: Vec<String>,
    /// New names: fresh state.
    pub added: Vec<String>,
    /// Names no longer present: state dropped.
    pub removed: Vec<String>,
}

impl Changes {
    /// Whether anything is not kept.
    pub fn any(&self) -> bool {
        !(self.restarted.is_empty() && self.added.is_empty() && self.removed.is_empty())
    }

    fn of<'a>(
        old: impl Iterator<Item = &'a str> + Clone,
        new: impl Iterator<Item = &'a str>,
        from: &[Option<usize>],
    ) -> Changes {
        let mut c = Changes::default();
        let mut present = Vec::new();
        for (name, from) in new.zip(from) {
            let list = match (from, old.clone().position(|n| n == name)) {
                (Some(_), _) => &mut c.kept,
                (None, Some(_)) => &mut c.restarted,
                (None, None) => &mut c.added,
            };
            list.push(name.to_string());
            present.push(name);
        }
        c.removed = old
            .filter(|n| !present.contains(n))
            .map(str::to_string)
            .collect();
        c
    }
}

impl Lineage {
    pub(crate) fn of(cfg: &Config) -> Lineage {
        let lateness = cfg.time.allowed_lateness;
        Lineage {
            signals: cfg
                .signals
                .iter()
                .map(|s| SignalPart {
                    name: s.name.clone(),
                    identity: s.identity(),
                    ring: crate::window::ring_len(s, lateness),
                })
                .collect(),
            rules: cfg
                .rules
                .iter()
                .zip(cfg.rule_identities())
                .map(|(r, identity)| RulePart {
                    name: r.name.clone(),
                    identity,
                    signal: r.signal(),
                })
                .collect(),
        }
    }

    /// What of `self` (the old config) carries over to `new`.
    pub(crate) fn carry(&self, new: &Lineage) -> Carry {
        let signal_from: Vec<Option<usize>> = new
            .signals
            .iter()
            .map(|s| {
                self.signals
                    .iter()
                    .position(|o| o.name == s.name && o.identity == s.identity && o.ring == s.ring)
            })
            .collect();
        let rule_from: Vec<Option<usize>> = new
            .rules
            .iter()
            .map(|r| {
                let from = self
                    .rules
                    .iter()
                    .position(|o| o.name == r.name && o.identity == r.identity)?;
                // Its windows must have come along, or its state describes data
                // the new engine does not hold.
                match r.signal {
                    Some(s) if signal_from[s].is_none() => None,
                    _ => Some(from),
                }
            })
            .collect();
        let carried = Carried {
            signals: Changes::of(
                self.signals.iter().map(|s| s.name.as_str()),
                new.signals.iter().map(|s| s.name.as_str()),
                &signal_from,
            ),
            rules: Changes::of(
                self.rules.iter().map(|r| r.name.as_str()),
                new.rules.iter().map(|r| r.name.as_str()),
                &rule_from,
            ),
        };
        Carry {
            signal_from,
            rule_from,
            carried,
        }
    }
}

/// What reloading `new` over `old` keeps and restarts (the same answer every
/// shard's [`super::Engine::reconfigure`] gives).
pub fn changes(old: &Config, new: &Config) -> Carried {
    Lineage::of(old).carry(&Lineage::of(new)).carried
}

/// How an active alert would end, kept in snapshots: a restore under a config
/// that changed or dropped its rule still ends the episode, although the
/// config that rendered the alert is gone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Ending {
    rule: String,
    firing: bool,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: String,
    generator_url: String,
    fingerprint: String,
    episode: String,
}

/// Equal when they end the same episode the same way. The annotations are left
/// out: they show the latest reading, which a snapshot does not keep, so a
/// restored engine renders them differently until its next evaluation.
impl PartialEq for Ending {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.rule,
            self.firing,
            &self.labels,
            &self.starts_at,
            &self.episode,
        ) == (
            &other.rule,
            other.firing,
            &other.labels,
            &other.starts_at,
            &other.episode,
        )
    }
}

impl Ending {
    /// The alert that ends this one's episode at `at`: resolved if it fired,
    /// cancelled if it was pending.
    fn at(self, at: Millis) -> Alert {
        let kind = if self.firing {
            TransitionKind::Resolved
        } else {
            TransitionKind::Cancelled
        };
        Alert {
            status: kind.status(),
            transition: kind,
            labels: self.labels,
            annotations: self.annotations,
            starts_at: self.starts_at,
            ends_at: alert::ends_at(kind, at),
            generator_url: self.generator_url,
            fingerprint: self.fingerprint,
            episode: self.episode,
            evaluated_at: format_rfc3339(at),
        }
    }
}

/// The ends, at `at`, of the alerts among `endings` whose rule is not `kept`.
pub(super) fn retire(endings: Vec<Ending>, kept: &[String], at: Millis) -> Vec<Alert> {
    endings
        .into_iter()
        .filter(|e| !kept.contains(&e.rule))
        .map(|e| e.at(at))
        .collect()
}

/// The outcome of [`Engine::reconfigure`] and [`Engine::restore`].
#[derive(Debug, Clone)]
pub struct Reconfigured {
    /// What kept its state.
    pub carried: Carried,
    /// The end of every alert of a removed or changed rule that was pending
    /// or firing: resolved (or cancelled) at the watermark, rendered under the
    /// old config, so each episode that began under the old definition also
    /// ends.
    pub retired: Vec<Alert>,
}

impl Engine {
    /// Switches to `cfg`, keeping the state of every signal and rule whose
    /// definition is unchanged (a config reload). A changed or removed rule's
    /// active alerts end now (see [`Reconfigured::retired`]); a changed rule
    /// restarts and fires again, under a new episode, if it still breaches.
    pub fn reconfigure(self, cfg: Config) -> (Engine, Reconfigured) {
        let trace = self.trace.is_some();
        let (snapshot, mut latest) = self.into_snapshot();
        let (mut e, carry, retired) =
            Engine::restore_carrying(cfg, snapshot).expect("a snapshot of this build restores");
        for (ri, from) in carry.rule_from.iter().enumerate() {
            if let Some(values) = from.and_then(|f| latest.get_mut(f)) {
                e.latest[ri] = std::mem::take(values);
            }
        }
        e.set_trace(trace);
        let carried = carry.carried;
        (e, Reconfigured { carried, retired })
    }

    /// How each active alert would end.
    pub(super) fn endings(&self) -> Vec<Ending> {
        self.active()
            .into_iter()
            .map(|t| {
                let a = self.render(&t);
                Ending {
                    rule: self.cfg.rules[t.rule as usize].name.clone(),
                    firing: t.kind == TransitionKind::Firing,
                    labels: a.labels,
                    annotations: a.annotations,
                    starts_at: a.starts_at,
                    generator_url: a.generator_url,
                    fingerprint: a.fingerprint,
                    episode: a.episode,
                }
            })
            .collect()
    }
}
