//! The training table: one row per (service, evaluation) with the features a
//! `model` rule would compute there, read through the offline driver exactly
//! as `run` would compute them, and its label from the incident file.

use std::path::PathBuf;

use anyhow::Context;
use forewarn_core::config::RuleDef;
use forewarn_core::lifecycle::Lifecycle;
use forewarn_core::rules::model::Model;
use forewarn_core::rules::RuleSpec;
use forewarn_core::time::Millis;
use forewarn_core::{Config, DriveOptions, Driver, FeatureLog};

use crate::backtest::incidents::Incident;
use crate::lines::Lines;

/// Feature rows in evaluation-time order.
#[derive(Debug, Default)]
pub struct Dataset {
    /// Features per row.
    pub width: usize,
    /// Row-major features.
    pub x: Vec<f32>,
    /// Per row: evaluation time.
    pub at: Vec<Millis>,
    /// Per row: the service's index in `services`.
    pub service: Vec<u32>,
    /// Service names.
    pub services: Vec<String>,
    /// Service name → index in `services` (one lookup per row).
    pub service_ids: std::collections::HashMap<String, usize>,
}

impl Dataset {
    /// Rows held.
    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// Row `i`'s features.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.width..(i + 1) * self.width]
    }
}

/// Computes the features of `cfg`'s service-level signals every `interval`
/// over the event files; returns them with the recorder that defines them.
pub fn collect(
    cfg: &Config,
    interval: Millis,
    events: &[PathBuf],
    opts: DriveOptions,
    progress: bool,
) -> anyhow::Result<(Dataset, Model, u64)> {
    let recorder = Model::recorder(Model::readable_signals(&cfg.signals), interval);
    let mut cfg = cfg.clone();
    // Only the signals matter here; other rules would only cost time.
    cfg.rules = vec![RuleDef {
        name: "forewarn_train_features".into(),
        spec: RuleSpec::Model(recorder.clone()),
        lifecycle: Lifecycle::IMMEDIATE,
        period: interval,
        category: None,
        labels: Default::default(),
        summary: String::new(),
        annotations: Default::default(),
    }];
    let mut driver = Driver::new(cfg, opts);
    for shard in driver.shards_mut() {
        shard.set_feature_log(true);
    }
    let mut data = Dataset {
        width: forewarn_core::model::features::count(recorder.signals.len()),
        ..Dataset::default()
    };
    let mut log = FeatureLog::default();
    let mut rejected = 0u64;
    let bar = crate::input::progress(events, progress);
    for path in events {
        let mut lines = Lines::new(crate::input::open(path, &bar)?);
        while let Some(line) = lines
            .next_line()
            .with_context(|| format!("cannot read {}", path.display()))?
        {
            match line.decode() {
                Ok(ev) => {
                    driver.feed(&ev, &mut |_, _| {});
                    drain(&mut driver, &mut log, &mut data);
                }
                Err(_) => rejected += 1,
            }
        }
    }
    driver.finish(&mut |_, _| {});
    drain(&mut driver, &mut log, &mut data);
    bar.finish_and_clear();
    Ok((data, recorder, rejected))
}

/// Moves every shard's new feature rows into `data`.
fn drain(driver: &mut Driver, log: &mut FeatureLog, data: &mut Dataset) {
    for shard in driver.shards_mut() {
        shard.take_features(log);
        for (k, &(rule, group, at)) in log.rows.iter().enumerate() {
            let name = &shard.rule_group_key(rule as usize, group).service;
            let next = data.services.len();
            let id = *data.service_ids.entry(name.clone()).or_insert(next);
            if id == next {
                data.services.push(name.clone());
            }
            data.service.push(id as u32);
            data.at.push(at);
            data.x
                .extend_from_slice(&log.values[k * data.width..(k + 1) * data.width]);
        }
        log.rows.clear();
        log.values.clear();
    }
}

/// The label of each row: `Some(true)` when an incident on its service
/// breaches within `(at, at + horizon]` and has begun, `None` while one is
/// already breached (not a prediction any more) or is due within the horizon
/// but has not begun (left out), else `Some(false)`. An incident without a
/// breach time counts from its start.
///
/// A row before its incident began holds nothing the incident caused; as a
/// positive it would teach the model to page on the noise of the services
/// that often fail (measured: most of a forest's false pages on held-out
/// seeds came 5 to 20 minutes before an incident's start, BENCHMARKS.md).
pub fn labels(data: &Dataset, incidents: &[Incident], horizon: Millis) -> Vec<Option<bool>> {
    (0..data.len())
        .map(|i| {
            let (at, service) = (data.at[i], &data.services[data.service[i] as usize]);
            let mut label = Some(false);
            for inc in incidents.iter().filter(|c| c.services.contains(service)) {
                let breach = inc.breach.unwrap_or(inc.start);
                if breach <= at && at <= inc.end {
                    return None;
                }
                if at < breach && breach <= at + horizon {
                    if at < inc.start {
                        return None;
                    }
                    label = Some(true);
                }
            }
            label
        })
        .collect()
}
