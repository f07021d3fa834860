//! Capturing the whole state of a shard and restoring it exactly.

use serde::{Deserialize, Serialize};

use super::{Clock, Engine, FamilyState, RuleState, Stats};
use crate::config::Config;
use crate::groups::{GroupKey, Grouping};
use crate::time::Millis;

/// Serialisable engine state; restore it with [`Engine::restore`] under the same config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    /// Format version.
    pub version: u32,
    signal_names: Vec<String>,
    rule_names: Vec<String>,
    clock: Clock,
    stats: Stats,
    groupings: Vec<Vec<GroupKey>>,
    families: Vec<FamilyState>,
    rules: Vec<RuleState>,
    /// Pending reclaim pass and the watermark of the last one.
    reclaim_wanted: bool,
    last_reclaim: Millis,
}

/// Version 2: rule states typed by kind, own-input rule schedules.
const SNAPSHOT_VERSION: u32 = 2;

/// Why a snapshot cannot be restored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RestoreError {
    /// Written by another format version.
    #[error("snapshot version {0} is not supported (expected {SNAPSHOT_VERSION})")]
    Version(u32),
    /// Taken under a config with other signals, rules or windows.
    #[error("snapshot does not match the config: {0}")]
    ConfigMismatch(String),
}

impl Engine {
    /// Captures the whole state.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            signal_names: self.cfg.signals.iter().map(|s| s.name.clone()).collect(),
            rule_names: self.cfg.rules.iter().map(|r| r.name.clone()).collect(),
            clock: self.clock,
            stats: self.stats,
            groupings: self.groupings.iter().map(|g| g.keys().to_vec()).collect(),
            families: self.families.clone(),
            rules: self.rules.clone(),
            reclaim_wanted: self.reclaim_wanted,
            last_reclaim: self.last_reclaim,
        }
    }

    /// Rebuilds an engine from a snapshot taken under the same config.
    pub fn restore(cfg: Config, snap: Snapshot) -> Result<Engine, RestoreError> {
        if snap.version != SNAPSHOT_VERSION {
            return Err(RestoreError::Version(snap.version));
        }
        let mut e = Engine::new(cfg);
        let names: Vec<&str> = e.cfg.signals.iter().map(|s| s.name.as_str()).collect();
        let rules: Vec<&str> = e.cfg.rules.iter().map(|r| r.name.as_str()).collect();
        if names != snap.signal_names || rules != snap.rule_names {
            return Err(RestoreError::ConfigMismatch(
                "signals or rules differ".into(),
            ));
        }
        if snap.groupings.len() != e.groupings.len()
            || snap.families.len() != e.families.len()
            || snap.rules.len() != e.rules.len()
        {
            return Err(RestoreError::ConfigMismatch("groupings differ".into()));
        }
        for (fresh, saved) in e.families.iter().zip(&snap.families) {
            if fresh.store.ring() != saved.store.ring() {
                return Err(RestoreError::ConfigMismatch(
                    "a window, slide or allowed_lateness changed".into(),
                ));
            }
        }
        for (rule, saved) in e.cfg.rules.iter().zip(&snap.rules) {
            if !saved.states.is_for(&rule.spec) {
                return Err(RestoreError::ConfigMismatch(format!(
                    "rule `{}` changed kind",
                    rule.name
                )));
            }
        }
        e.groupings = e
            .groupings
            .iter()
            .zip(snap.groupings)
            .map(|(g, keys)| Grouping::from_keys(g.labels.clone(), keys))
            .collect();
        e.families = snap.families;
        e.rules = snap.rules;
        e.clock = snap.clock;
        e.stats = snap.stats;
        e.reclaim_wanted = snap.reclaim_wanted;
        e.last_reclaim = snap.last_reclaim;
        Ok(e)
    }
}
