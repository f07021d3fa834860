//! How a config's signals and rules map onto storage and schedules: derived once
//! from the config, never part of snapshots.

use crate::config::Config;
use crate::rules::{absent::Absent, Input, RuleSpec};
use crate::time::Millis;

/// Indices linking signals, families, groupings and rules.
#[derive(Debug, Clone)]
pub(crate) struct Wiring {
    /// Grouping → its labels beyond `service`.
    pub(crate) grouping_labels: Vec<Vec<String>>,
    /// Signal → grouping.
    pub(crate) signal_grouping: Vec<usize>,
    /// Signal → (family, member).
    pub(crate) signal_family: Vec<(usize, usize)>,
    /// Family → its member signals (they share window, slide and pane).
    pub(crate) family_members: Vec<Vec<usize>>,
    /// Family → the grouping of its signals.
    pub(crate) family_grouping: Vec<usize>,
    /// Family → a member signal (its geometry).
    pub(crate) family_signal: Vec<usize>,
    /// Family → the rules it drives, in config order.
    pub(crate) family_rules: Vec<Vec<usize>>,
    /// Rule → grouping.
    pub(crate) rule_grouping: Vec<usize>,
    /// Rules with their own input (recording events, own schedule).
    pub(crate) own_rules: Vec<usize>,
    /// Timer signals (entity tables, not panes).
    pub(crate) timer_signals: Vec<usize>,
    /// Grouping → whether its idle groups may be released: not when a rule on
    /// it breaches on an empty window.
    pub(crate) reclaimable: Vec<bool>,
    /// Grouping → its absent rules, with the (family, member) of the watched
    /// signal: a group any of them watches is kept, however idle.
    pub(crate) silence_watches: Vec<Vec<(Absent, usize, usize)>>,
    /// The shortest evaluation period of any rule or signal.
    pub(crate) min_period: Millis,
}

impl Wiring {
    pub(crate) fn new(cfg: &Config) -> Wiring {
        let mut grouping_labels: Vec<Vec<String>> = Vec::new();
        let mut grouping_of =
            |labels: &[String]| match grouping_labels.iter().position(|g| g == labels) {
                Some(i) => i,
                None => {
                    grouping_labels.push(labels.to_vec());
                    grouping_labels.len() - 1
                }
            };
        let signal_grouping: Vec<usize> = cfg
            .signals
            .iter()
            .map(|s| grouping_of(&s.group_by))
            .collect();
        let rule_grouping: Vec<usize> = cfg
            .rules
            .iter()
            .map(|r| grouping_of(r.spec.group_by(&cfg.signals)))
            .collect();
        let (signal_family, family_members, family_grouping) = families(cfg, &signal_grouping);
        let mut family_rules = vec![Vec::new(); family_members.len()];
        let mut own_rules = Vec::new();
        for (i, r) in cfg.rules.iter().enumerate() {
            match r.spec.input() {
                Input::Signal(s) => family_rules[signal_family[s].0].push(i),
                Input::Own { .. } => own_rules.push(i),
            }
        }
        let mut reclaimable = vec![true; grouping_labels.len()];
        let mut silence_watches = vec![Vec::new(); grouping_labels.len()];
        for (ri, r) in cfg.rules.iter().enumerate() {
            if let RuleSpec::Absent(a) = &r.spec {
                let (f, m) = signal_family[a.signal];
                silence_watches[rule_grouping[ri]].push((a.clone(), f, m));
            } else if r.spec.pages_on_silence() || r.spec.breaches_when_empty(&cfg.signals) {
                reclaimable[rule_grouping[ri]] = false;
            }
        }
        let min_period = cfg
            .signals
            .iter()
            .map(|s| s.slide)
            .chain(cfg.rules.iter().map(|r| r.period))
            .min()
            .unwrap_or(1);
        Wiring {
            grouping_labels,
            signal_grouping,
            family_signal: family_members.iter().map(|m| m[0]).collect(),
            signal_family,
            family_members,
            family_grouping,
            family_rules,
            rule_grouping,
            own_rules,
            timer_signals: (0..cfg.signals.len())
                .filter(|&s| cfg.signals[s].timer.is_some())
                .collect(),
            reclaimable,
            silence_watches,
            min_period,
        }
    }
}

/// Signals with the same grouping and geometry form a family: returns signal →
/// (family, member), family → members, family → grouping.
#[allow(clippy::type_complexity)]
fn families(
    cfg: &Config,
    signal_grouping: &[usize],
) -> (Vec<(usize, usize)>, Vec<Vec<usize>>, Vec<usize>) {
    // Timer signals share a family (one entity table) only with timer signals
    // over the same entities: same filter and timer parameters.
    type Key<'a> = (
        usize,
        Millis,
        Millis,
        Millis,
        Option<(&'a crate::config::Filter, crate::timers::TimerDef)>,
    );
    let mut keys: Vec<Key> = Vec::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    let signal_family = cfg
        .signals
        .iter()
        .enumerate()
        .map(|(si, s)| {
            let timer = s.timer.map(|t| (&s.filter, t));
            let key = (signal_grouping[si], s.window, s.slide, s.pane, timer);
            let f = keys.iter().position(|k| *k == key).unwrap_or_else(|| {
                keys.push(key);
                members.push(Vec::new());
                keys.len() - 1
            });
            members[f].push(si);
            (f, members[f].len() - 1)
        })
        .collect();
    let grouping = keys.iter().map(|k| k.0).collect();
    (signal_family, members, grouping)
}
