//! The alert state machine: inactive → pending → firing → resolved, per
//! (rule, group, severity). Pure functions of the previous state and one evaluation,
//! so the engine, snapshots and property tests all drive the same code.

use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// When a breach becomes an alert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trigger {
    /// The breach holds continuously for this long (0: at once).
    For(Millis),
    /// At least `m` of the last `n` evaluations breach.
    MOfN {
        /// Breaching evaluations needed.
        m: u32,
        /// Evaluations considered.
        n: u32,
    },
}

/// The lifecycle settings every rule kind shares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lifecycle {
    /// Debounce: `for` or `m_of_n`.
    pub trigger: Trigger,
    /// Stay firing this long after recovery.
    pub keep_firing_for: Millis,
}

impl Lifecycle {
    /// Fire at the first breach, resolve at the first recovery.
    pub const IMMEDIATE: Lifecycle = Lifecycle {
        trigger: Trigger::For(0),
        keep_firing_for: 0,
    };
}

/// Lifecycle state of one alert instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum State {
    /// Not breaching.
    #[default]
    Inactive,
    /// Breaching, waiting for `for` or `m_of_n`.
    Pending,
    /// Alerting.
    Firing,
}

/// What changed at an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransitionKind {
    /// Inactive → pending.
    Pending,
    /// → firing.
    Firing,
    /// Firing → inactive.
    Resolved,
    /// Pending → inactive without having fired.
    Cancelled,
}

/// One alert instance's memory.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// Current state.
    pub state: State,
    /// Evaluation time of the first breach of this episode (startsAt).
    pub active_since: Millis,
    /// When it started firing.
    pub fired_at: Millis,
    /// Since when the value has been on the healthy side of the clear level.
    pub clear_since: Millis,
    /// Breach bits of recent evaluations, newest in bit 0 (for `m_of_n`).
    pub history: u64,
    /// Time of the last evaluation recorded in `history`.
    pub last_eval: Millis,
}

impl Default for Instance {
    fn default() -> Self {
        Instance {
            state: State::Inactive,
            active_since: Millis::MIN,
            fired_at: Millis::MIN,
            clear_since: Millis::MIN,
            history: 0,
            last_eval: Millis::MIN,
        }
    }
}

/// How an evaluation reads against one level (each rule kind produces these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Beyond the breach level with enough events.
    Breach,
    /// Between the clear and breach levels: neither breaching nor recovered.
    Elevated,
    /// On the healthy side of the clear level, or no events at all.
    Clear,
    /// Too few events to judge (holds the current state).
    Insufficient,
}

fn mask(n: u32) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// Advances one alert instance by an evaluation at time `at` (evaluations
/// `slide` apart). Returns the transition, if any.
pub fn step(
    inst: &mut Instance,
    spec: &Lifecycle,
    slide: Millis,
    at: Millis,
    reading: Reading,
) -> Option<TransitionKind> {
    let breach = reading == Reading::Breach;
    if let Trigger::MOfN { .. } = spec.trigger {
        let gap = if inst.last_eval == Millis::MIN {
            64
        } else {
            (at - inst.last_eval) / slide.max(1)
        };
        inst.history = if gap >= 64 { 0 } else { inst.history << gap };
        inst.history |= u64::from(breach);
        inst.last_eval = at;
    }
    let ready = |inst: &Instance| match spec.trigger {
        Trigger::For(d) => at - inst.active_since >= d,
        Trigger::MOfN { m, n } => (inst.history & mask(n)).count_ones() >= m,
    };
    match inst.state {
        State::Inactive => {
            if !breach {
                return None;
            }
            inst.active_since = at;
            inst.clear_since = Millis::MIN;
            if ready(inst) {
                inst.state = State::Firing;
                inst.fired_at = at;
                Some(TransitionKind::Firing)
            } else {
                inst.state = State::Pending;
                Some(TransitionKind::Pending)
            }
        }
        State::Pending => {
            let still = match spec.trigger {
                Trigger::For(_) => breach,
                // One healthy evaluation does not reset a flapping condition: pending
                // lasts while any of the last n evaluations breached.
                Trigger::MOfN { n, .. } => inst.history & mask(n) != 0,
            };
            if !still {
                *inst = Instance {
                    last_eval: inst.last_eval,
                    ..Instance::default()
                };
                return Some(TransitionKind::Cancelled);
            }
            if (breach || matches!(spec.trigger, Trigger::MOfN { .. })) && ready(inst) {
                inst.state = State::Firing;
                inst.fired_at = at;
                return Some(TransitionKind::Firing);
            }
            None
        }
        State::Firing => {
            match reading {
                Reading::Clear => {
                    if inst.clear_since == Millis::MIN {
                        inst.clear_since = at;
                    }
                    if at - inst.clear_since >= spec.keep_firing_for {
                        *inst = Instance {
                            last_eval: inst.last_eval,
                            ..Instance::default()
                        };
                        return Some(TransitionKind::Resolved);
                    }
                }
                Reading::Breach | Reading::Elevated => inst.clear_since = Millis::MIN,
                Reading::Insufficient => {}
            }
            None
        }
    }
}

#[cfg(test)]
mod tests;
