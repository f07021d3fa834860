//! `forewarn train`: fits the failure-probability model a `model` rule reads.
//!
//! Features per (service, evaluation) come from the config's service-level
//! signals through the offline driver (so they are what `run` would compute);
//! the label is "an incident on this service breaches within the horizon".
//! Every candidate (logistic regression at four strengths, two forests) is
//! cross-validated on time blocks (`folds.rs`): each labelled row is scored
//! by a model that never saw its block, and the candidate's paging level is
//! chosen on those out-of-fold scores over the whole history, as a rule
//! would page: the lowest level whose alert episodes outside any incident
//! stay within `--max-false-pages-per-day` (a row-level precision says
//! little about pages: thousands of quiet rows at 1% false positives are
//! dozens of pages a day). The candidate that warns of the most breaches at
//! its level is kept (then the higher AUC). A forest written is the union of
//! its fold forests, the very models the level was chosen on (a refit on
//! every row would be a new draw of trees whose probabilities the level was
//! not chosen for); a logistic model is refitted on every row (its
//! coefficients barely move).
//!
//! - `dataset.rs`: the feature rows and their labels;
//! - `folds.rs`: the time blocks of cross-validation;
//! - `fit.rs`: logistic fitting, AUC, precision/recall;
//! - `forest.rs`: balanced random forests of smartcore trees;
//! - `pages.rs`: the alert episodes a level would give, and the level.

mod dataset;
mod fit;
mod folds;
mod forest;
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

/// Regularisation strengths tried for logistic regression.
const ALPHAS: [f64; 4] = [0.01, 0.1, 1.0, 10.0];
/// Forests tried: shallow trees (few, broad rules) and deeper ones
/// (interactions of three or four signals).
const FORESTS: [forest::Params; 2] = [
    forest::Params {
        trees: 60,
        max_depth: 5,
        min_leaf: 20,
    },
    forest::Params {
        trees: 60,
        max_depth: 9,
        min_leaf: 20,
    },
];

/// One candidate as validation measured it.
struct Trial {
    candidate: Candidate,
    /// One model per fold; the winner's become the model written
    /// ([`Candidate::finish`]).
    fits: Vec<fit::Fitted>,
    scores: Vec<f64>,
    auc: f64,
    /// The level within the false-page budget, and what it gives.
    level: f64,
    at_level: serde_json::Value,
    /// (breaches in the scored rows, the lead of each one warned at `level`).
    leads: (usize, Vec<Millis>),
}

impl Trial {
    /// Whether this trial should be kept over `other`: more breaches warned
    /// at the level the false-page budget allows (what the model is for: a
    /// row-level AUC rewards ranking quiet rows too, which pages nobody),
    /// then the higher AUC.
    fn beats(&self, other: &Trial) -> bool {
        let (a, b) = (self.leads.1.len(), other.leads.1.len());
        a > b || (a == b && (self.auc > other.auc || other.auc.is_nan()))
    }
}

/// `--classifier`: the classifier families tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Family {
    /// Every candidate; the one that warns of the most breaches at its level
    /// wins (then the higher AUC).
    Any,
    /// Logistic regression only.
    Logistic,
    /// Forests only.
    Forest,
}

/// A classifier to fit and validate.
#[derive(Debug, Clone, Copy)]
enum Candidate {
    Logistic(f64),
    Forest(forest::Params),
}

/// The candidates of `family`, in the order they are tried (ties keep the
/// first).
fn candidates(family: Family) -> impl Iterator<Item = Candidate> {
    let logistic = ALPHAS
        .into_iter()
        .map(Candidate::Logistic)
        .filter(move |_| family != Family::Forest);
    let forests = FORESTS
        .into_iter()
        .map(Candidate::Forest)
        .filter(move |_| family != Family::Logistic);
    logistic.chain(forests)
}

impl Candidate {
    fn fit(self, data: &Dataset, rows: &[usize], labels: &[bool]) -> anyhow::Result<fit::Fitted> {
        match self {
            Candidate::Logistic(alpha) => fit::logistic(data, rows, labels, alpha),
            Candidate::Forest(p) => forest::fit(data, rows, labels, p),
        }
    }

    /// The model to write from the fold fits: the union of a forest's fold
    /// forests, or a logistic model refitted on every row.
    fn finish(
        self,
        fits: Vec<fit::Fitted>,
        data: &Dataset,
        rows: &[usize],
        labels: &[bool],
    ) -> anyhow::Result<fit::Fitted> {
        match self {
            Candidate::Logistic(alpha) => fit::logistic(data, rows, labels, alpha),
            Candidate::Forest(_) => forest::union(fits),
        }
    }

    fn describe(self) -> serde_json::Value {
        match self {
            Candidate::Logistic(alpha) => json!({"classifier": "logistic", "alpha": alpha}),
            Candidate::Forest(p) => json!({"classifier": "forest", "trees": p.trees,
                "max_depth": p.max_depth, "min_leaf": p.min_leaf}),
        }
    }

    /// One line for the report, from [`Candidate::describe`]'s fields.
    fn text(v: &serde_json::Value) -> String {
        match v["classifier"].as_str() {
            Some("forest") => format!(
                "forest trees={} depth={} min_leaf={}",
                v["trees"], v["max_depth"], v["min_leaf"]
            ),
            _ => format!("logistic alpha={}", v["alpha"]),
        }
    }
}
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
    /// Time blocks of cross-validation (at least 2).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(2..=20))]
    pub folds: u16,
    /// Which classifiers compete, each cross-validated.
    #[arg(long, value_enum, default_value_t = Family::Any)]
    pub classifier: Family,
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
    let labelled: Vec<usize> = (0..data.len()).filter(|&i| labels[i].is_some()).collect();
    let y: Vec<bool> = labelled.iter().map(|&i| labels[i] == Some(true)).collect();
    let positives = y.iter().filter(|p| **p).count();
    if positives == 0 || positives == y.len() {
        return Err(usage(anyhow::anyhow!(
            "training needs both classes: {positives} rows precede a breach, {} do not \
             ({} rows in all, {rejected} lines rejected); give events that cover the incidents and quiet time",
            y.len() - positives,
            data.len()
        ))
        .into());
    }
    let folds = folds::blocks(&data, &labelled, args.folds.into(), args.horizon);
    let pages = pages::Episodes::new(&data, &labelled, &incidents);
    let (tried, best) = compete(&data, &labelled, &labels, &folds, &incidents, &pages, args)?;
    let Trial {
        candidate: chosen,
        fits,
        scores,
        auc,
        level,
        at_level,
        leads,
    } = best;
    let final_fit = chosen.finish(fits, &data, &labelled, &y)?;
    let (precision, recall) = fit::precision_recall(&scores, &y, level);
    let validation = json!({
        "rows": {"labelled": labelled.len(), "positives": positives, "folds": folds.len()},
        "tried": tried,
        "chosen": chosen.describe(),
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

/// Cross-validates every candidate of `args.classifier` on `folds`; returns
/// what each measured and the one to keep ([`Trial::beats`]).
fn compete(
    data: &Dataset,
    labelled: &[usize],
    labels: &[Option<bool>],
    folds: &[folds::Fold],
    incidents: &[crate::backtest::incidents::Incident],
    pages: &pages::Episodes,
    args: &Args,
) -> anyhow::Result<(Vec<serde_json::Value>, Trial)> {
    let y =
        |rows: &[usize]| -> Vec<bool> { rows.iter().map(|&i| labels[i] == Some(true)).collect() };
    let y_all = y(labelled);
    let mut tried = Vec::new();
    let mut best: Option<Trial> = None;
    for candidate in candidates(args.classifier) {
        // The blocks are consecutive runs of `labelled`, so the scores line
        // up with it.
        let mut scores = Vec::with_capacity(labelled.len());
        let mut fits = Vec::with_capacity(folds.len());
        for fold in folds {
            let fitted = candidate.fit(data, &fold.fit, &y(&fold.fit))?;
            scores.extend(fold.held.iter().map(|&i| fitted.probability(data.row(i))));
            fits.push(fitted);
        }
        let auc = fit::auc(&scores, &y_all);
        let (level, at_level) = pages.choose_level(&scores, args.max_false_pages_per_day);
        let leads = leads(data, labelled, &scores, incidents, level, args.horizon);
        let mut entry = candidate.describe();
        entry["validation_auc"] = json!(auc);
        entry["warned"] = json!(leads.1.len());
        tried.push(entry);
        let trial = Trial {
            candidate,
            fits,
            scores,
            auc,
            level,
            at_level,
            leads,
        };
        if best.as_ref().is_none_or(|b| trial.beats(b)) {
            best = Some(trial);
        }
    }
    Ok((tried, best.expect("there are candidates")))
}

/// (breaches in the scored rows' period, lead of each warned one): the lead is
/// from the first scored row of the service at or above `level` within
/// the horizon before the breach.
fn leads(
    data: &Dataset,
    rows: &[usize],
    scores: &[f64],
    incidents: &[crate::backtest::incidents::Incident],
    level: f64,
    horizon: Millis,
) -> (usize, Vec<Millis>) {
    let (Some(&first), Some(&last)) = (rows.first(), rows.last()) else {
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
            let warned = rows.iter().zip(scores).find(|(&i, &s)| {
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
            "  {:<36} out-of-fold AUC {:.3}, {} breaches warned at its level",
            Candidate::text(t),
            t["validation_auc"].as_f64().unwrap_or(f64::NAN),
            t["warned"]
        )?;
    }
    writeln!(
        out,
        "chosen: {}: AUC {:.3}; at level {:.3}: precision {:.3}, recall {:.3}; {} of {} breaches warned out of fold, lead {}",
        Candidate::text(&v["chosen"]),
        v["auc"].as_f64().unwrap_or(f64::NAN),
        v["level"].as_f64().unwrap_or(f64::NAN),
        v["precision"].as_f64().unwrap_or(f64::NAN),
        v["recall"].as_f64().unwrap_or(f64::NAN),
        v["breaches"]["warned"],
        v["breaches"]["in_validation"],
        v["lead_minutes"],
    )?;
    let per_day = v["episodes_at_level"]["false_pages_per_day"]
        .as_f64()
        .unwrap_or(f64::NAN);
    writeln!(
        out,
        "  out of fold it pages {per_day:.2} times a day outside incidents (budget {})",
        args.max_false_pages_per_day
    )?;
    if per_day > args.max_false_pages_per_day {
        writeln!(
            out,
            "  warning: no level keeps within the budget; the highest was chosen. More history, or history with more incidents, would help"
        )?;
    }
    writeln!(out, "wrote {}", args.out.display())?;
    Ok(())
}
