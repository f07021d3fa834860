//! `forewarn train`: fits the failure-probability model a `model` rule reads.
//!
//! Features per (service, evaluation) come from the config's service-level
//! signals through the offline driver (so they are what `run` would compute);
//! the label is "an incident on this service breaches within the horizon".
//! Rows are split by time, the first 70% to fit and the rest to validate, with
//! the horizon's worth of rows before the split left out so no training label
//! looks into the validation period. Each regularisation strength is fitted
//! and the one with the best validation AUC kept. The paging level is chosen
//! on validation as a rule would page: the lowest level whose alert episodes
//! outside any incident stay within `--max-false-pages-per-day` (a row-level
//! precision says little about pages: thousands of quiet rows at 1% false
//! positives are dozens of pages a day). The final model is refitted on every
//! row.
//!
//! - `dataset.rs`: the feature rows and their labels;
//! - `fit.rs`: fitting, AUC, precision/recall;
//! - `pages.rs`: the alert episodes a level would give, and the level.

mod dataset;
mod fit;
mod pages;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use forewarn_core::model::file::{FORMAT, VERSION};
use forewarn_core::model::ModelFile;
use forewarn_core::time::{format_duration, parse_duration, Millis};
use forewarn_core::Config;
use serde_json::json;

use dataset::Dataset;

/// Regularisation strengths tried.
const ALPHAS: [f64; 4] = [0.01, 0.1, 1.0, 10.0];
/// Share of rows (by time) fitted on while validating.
const TRAIN_SHARE: f64 = 0.7;

/// `forewarn train` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The TOML config whose signals the model reads.
    #[arg(long, short)]
    pub config: PathBuf,
    /// The incidents (as for `backtest`; repeat to combine files).
    #[arg(long, required = true)]
    pub incidents: Vec<PathBuf>,
    /// NDJSON event files, plain or gzip'd, in time order ("-": stdin).
    #[arg(required = true)]
    pub events: Vec<PathBuf>,
    /// Where to write the model (JSON).
    #[arg(long)]
    pub out: PathBuf,
    /// Predict a breach this far ahead.
    #[arg(long, default_value = "30m", value_parser = duration)]
    pub horizon: Millis,
    /// Evaluate (and so predict) this often.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub interval: Millis,
    /// The paging level is the lowest whose validation episodes outside any
    /// incident (two evaluations or more above it) stay within this rate.
    #[arg(long, default_value_t = 1.0)]
    pub max_false_pages_per_day: f64,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub split: crate::replay::Split,
}

fn duration(s: &str) -> Result<Millis, String> {
    parse_duration(s).and_then(|d| {
        if d > 0 {
            Ok(d)
        } else {
            Err("must be positive".into())
        }
    })
}

/// Trains, reports and writes the model.
pub fn run(cfg: Config, args: &Args) -> anyhow::Result<()> {
    let usage = |e: anyhow::Error| crate::Usage(format!("{e:#}"));
    let incidents = crate::backtest::incidents::load_all(&args.incidents).map_err(usage)?;
    let (data, recorder, rejected) = dataset::collect(
        &cfg,
        args.interval,
        &args.events,
        args.split.options(None),
        !args.no_progress,
    )?;
    if recorder.signals.is_empty() {
        return Err(usage(anyhow::anyhow!(
            "the config has no service-level signal (one without group_by) to learn from"
        ))
        .into());
    }
    let labels = dataset::labels(&data, &incidents, args.horizon);
    let (train, valid) = split(&data, &labels, args.horizon);
    let y =
        |rows: &[usize]| -> Vec<bool> { rows.iter().map(|&i| labels[i] == Some(true)).collect() };
    let (y_train, y_valid) = (y(&train), y(&valid));
    let mut best: Option<(f64, f64, Vec<f64>)> = None;
    let mut tried = Vec::new();
    for alpha in ALPHAS {
        let fitted = fit::logistic(&data, &train, &y_train, alpha)?;
        let scores: Vec<f64> = valid
            .iter()
            .map(|&i| fitted.probability(data.row(i)))
            .collect();
        let auc = fit::auc(&scores, &y_valid);
        tried.push(json!({"classifier": "logistic", "alpha": alpha, "validation_auc": auc}));
        if best.as_ref().is_none_or(|b| auc > b.1 || b.1.is_nan()) {
            best = Some((alpha, auc, scores));
        }
    }
    let (alpha, auc, scores) = best.expect("ALPHAS is not empty");
    let pages = pages::Episodes::new(&data, &valid, &incidents, args.horizon);
    let (level, at_level) = pages.choose_level(&scores, args.max_false_pages_per_day);
    let (precision, recall) = fit::precision_recall(&scores, &y_valid, level);
    let leads = leads(&data, &valid, &scores, &incidents, level, args.horizon);
    let all: Vec<usize> = (0..data.len()).filter(|&i| labels[i].is_some()).collect();
    let final_fit = fit::logistic(&data, &all, &y(&all), alpha)?;
    let validation = json!({
        "rows": {"train": train.len(), "validation": valid.len(), "all": all.len(),
                  "positives": y(&all).iter().filter(|p| **p).count()},
        "tried": tried,
        "chosen": {"classifier": "logistic", "alpha": alpha},
        "auc": auc,
        "level": level,
        "precision": precision,
        "recall": recall,
        "breaches": {"in_validation": leads.0, "warned": leads.1.len()},
        "episodes_at_level": at_level,
        "lead_minutes": lead_summary(&leads.1),
    });
    let model = ModelFile {
        format: FORMAT.into(),
        version: VERSION,
        horizon_ms: args.horizon,
        schema: recorder.schema(&cfg.signals),
        prior_shift: final_fit.prior_shift,
        level,
        classifier: final_fit.classifier,
        validation: validation.clone(),
    };
    let text = serde_json::to_string_pretty(&model)?;
    std::fs::write(&args.out, text + "\n")
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    report(args, &data, rejected, &validation)
}

/// Row indices to fit and to validate on: split at the 70th percentile of
/// time, the horizon before it left out, unlabelled rows dropped.
fn split(data: &Dataset, labels: &[Option<bool>], horizon: Millis) -> (Vec<usize>, Vec<usize>) {
    let mut times = data.at.clone();
    times.sort_unstable();
    let cut = times
        .get(((times.len() as f64) * TRAIN_SHARE) as usize)
        .copied()
        .unwrap_or(Millis::MAX);
    let labelled = |i: &usize| labels[*i].is_some();
    let train = (0..data.len())
        .filter(|&i| data.at[i] <= cut - horizon)
        .filter(labelled)
        .collect();
    let valid = (0..data.len())
        .filter(|&i| data.at[i] > cut)
        .filter(labelled)
        .collect();
    (train, valid)
}

/// (breaches in the validation period, lead of each warned one): the lead is
/// from the first validation row of the service at or above `level` within
/// the horizon before the breach.
fn leads(
    data: &Dataset,
    valid: &[usize],
    scores: &[f64],
    incidents: &[crate::backtest::incidents::Incident],
    level: f64,
    horizon: Millis,
) -> (usize, Vec<Millis>) {
    let (Some(&first), Some(&last)) = (valid.first(), valid.last()) else {
        return (0, Vec::new());
    };
    let (from, to) = (data.at[first], data.at[last]);
    let mut count = 0;
    let mut out = Vec::new();
    for inc in incidents {
        let breach = inc.breach.unwrap_or(inc.start);
        if breach <= from + horizon || breach > to {
            continue;
        }
        for service in &inc.services {
            count += 1;
            let warned = valid.iter().zip(scores).find(|(&i, &s)| {
                let at = data.at[i];
                s >= level
                    && data.services[data.service[i] as usize] == *service
                    && at < breach
                    && at >= breach - horizon
            });
            if let Some((&i, _)) = warned {
                out.push(breach - data.at[i]);
            }
        }
    }
    (count, out)
}

fn lead_summary(leads: &[Millis]) -> serde_json::Value {
    if leads.is_empty() {
        return serde_json::Value::Null;
    }
    let mut l = leads.to_vec();
    l.sort_unstable();
    let minutes = |v: Millis| v as f64 / 60_000.0;
    json!({"median": minutes(l[l.len() / 2]), "min": minutes(l[0]), "max": minutes(l[l.len() - 1])})
}

fn report(args: &Args, data: &Dataset, rejected: u64, v: &serde_json::Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "train: {} rows over {} services ({} lines rejected), horizon {}, every {}",
        data.len(),
        data.services.len(),
        rejected,
        format_duration(args.horizon),
        format_duration(args.interval)
    )?;
    for t in v["tried"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "  logistic alpha={:<5} validation AUC {:.3}",
            t["alpha"],
            t["validation_auc"].as_f64().unwrap_or(f64::NAN)
        )?;
    }
    writeln!(
        out,
        "chosen: logistic alpha={}: AUC {:.3}; at level {:.3}: precision {:.3}, recall {:.3}; {} of {} validation breaches warned, lead {}",
        v["chosen"]["alpha"],
        v["auc"].as_f64().unwrap_or(f64::NAN),
        v["level"].as_f64().unwrap_or(f64::NAN),
        v["precision"].as_f64().unwrap_or(f64::NAN),
        v["recall"].as_f64().unwrap_or(f64::NAN),
        v["breaches"]["warned"],
        v["breaches"]["in_validation"],
        v["lead_minutes"],
    )?;
    writeln!(out, "wrote {}", args.out.display())?;
    Ok(())
}
