//! Config reload while running (`SIGHUP`, `POST /-/reload`), as Prometheus
//! does it: the new config is checked in full first; a refused one changes
//! nothing. An accepted one goes to every worker through its inbox, after
//! whatever it was doing, and each shard keeps the state of the signals and
//! rules whose definition did not change ([`forewarn_core::Engine::reconfigure`]).
//!
//! What a reload cannot change: the `[kafka]` section (topics, group and
//! clients are set up once) and the set of `group_by` labels the per-group
//! gauges carry (a Prometheus metric's label names are fixed once registered).
//! Those need a restart, and a reload that changes them is refused saying so.

use std::sync::mpsc::Sender;
use std::sync::{Arc, RwLock};

use forewarn_core::engine::{changes, Carried};
use forewarn_core::Config;

use crate::metrics::{group_label_names, Metrics};
use crate::worker::{Inbox, MessageQueue};

/// Why a reload was refused; the running config stays.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReloadError {
    /// The file could not be read or is not a valid config.
    #[error("{0}")]
    Invalid(String),
    /// The `[kafka]` section differs from the running one.
    #[error("the [kafka] section changed; it takes effect only at a restart (the running config is kept)")]
    Kafka,
    /// `group_by` labels that the per-group gauges do not carry.
    #[error("new group_by labels {0:?}: the per-group gauges' label names are fixed at start; restart to add them (the running config is kept)")]
    GroupLabels(Vec<String>),
    /// The pipeline has stopped.
    #[error("the pipeline has stopped")]
    Stopped,
}

/// The running config, readable by the HTTP endpoint while reloads replace it.
pub type CurrentConfig = Arc<RwLock<Arc<Config>>>;

/// Replaces the running config of a pipeline.
pub struct Reloader<Q: MessageQueue> {
    current: CurrentConfig,
    workers: Vec<Sender<Inbox<Q>>>,
    metrics: Metrics,
}

impl<Q: MessageQueue> Reloader<Q> {
    /// A reloader for the workers behind `workers`, running `current`.
    pub fn new(current: CurrentConfig, workers: Vec<Sender<Inbox<Q>>>, metrics: Metrics) -> Self {
        Reloader {
            current,
            workers,
            metrics,
        }
    }

    /// Loads the config `load` returns and applies it, or refuses it; logs
    /// either way and sets the reload metrics.
    pub fn reload(
        &self,
        load: impl FnOnce() -> Result<Config, String>,
    ) -> Result<Carried, ReloadError> {
        let result = load()
            .map_err(ReloadError::Invalid)
            .and_then(|cfg| self.apply(cfg));
        match &result {
            Ok(carried) => {
                self.metrics.config_reload_successful.set(1);
                self.metrics.config_reload_time.set(unix_now());
                tracing::info!(
                    kept_rules = ?carried.rules.kept,
                    restarted_rules = ?carried.rules.restarted,
                    added_rules = ?carried.rules.added,
                    removed_rules = ?carried.rules.removed,
                    restarted_signals = ?carried.signals.restarted,
                    added_signals = ?carried.signals.added,
                    removed_signals = ?carried.signals.removed,
                    "config reloaded: unchanged signals and rules keep their state"
                );
            }
            Err(e) => {
                self.metrics.config_reload_successful.set(0);
                tracing::error!(error = %e, "config reload refused; the running config is kept");
            }
        }
        result
    }

    fn apply(&self, cfg: Config) -> Result<Carried, ReloadError> {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if cfg.kafka != current.kafka {
            return Err(ReloadError::Kafka);
        }
        let carried_labels = self.metrics.group_labels();
        let new_labels: Vec<String> = group_label_names(&cfg)
            .into_iter()
            .filter(|l| !carried_labels.contains(l))
            .collect();
        if !new_labels.is_empty() {
            return Err(ReloadError::GroupLabels(new_labels));
        }
        let carried = changes(&current, &cfg);
        let cfg = Arc::new(cfg);
        let mut delivered = 0;
        for w in &self.workers {
            if w.send(Inbox::Reload(Arc::clone(&cfg))).is_ok() {
                delivered += 1;
            }
        }
        if delivered == 0 && !self.workers.is_empty() {
            return Err(ReloadError::Stopped);
        }
        self.metrics.set_rule_levels(&cfg);
        *current = cfg;
        Ok(carried)
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
