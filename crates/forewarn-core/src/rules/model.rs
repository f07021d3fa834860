//! `kind = "model"`: a learned probability that a service breaches its SLA
//! within the model's horizon, from every service-level signal at once (see
//! [`crate::model`]). It is evaluated once per interval for every service, never
//! per event: the features are read from the signals' windows, a classifier
//! file trained by `forewarn train` gives the probability, and it pages with the
//! shared lifecycle when the probability reaches `level`. Its annotations name
//! the signals that pushed the probability up the most.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{alerting_score, EvalCx, Input, LevelInfo, RuleCx, RuleKind, Series, Verdict};
use crate::alert::format_value;
use crate::config::{ConfigError, Severity, SignalDef};
use crate::event::Event;
use crate::lifecycle::{Instance, Reading, State};
use crate::model::features::{self, Baseline, Weights, PER_SIGNAL};
use crate::model::{sigmoid, FeatureSchema, ModelFile};
use crate::time::{format_duration, Millis};
use crate::window::WindowValue;

/// Signals named in the contributors annotation.
const TOP: usize = 3;

/// The fields of a model rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// The model file `forewarn train` wrote, relative to the config file.
    pub model: String,
    /// Probability, 0–1, at which it pages (default: the level chosen on
    /// validation when the model was trained).
    pub level: Option<f64>,
    /// Severity of its alert (default "warning").
    pub severity: Option<Severity>,
}

/// A validated model rule.
#[derive(Clone, PartialEq)]
pub struct Model {
    /// The file as given.
    pub path: String,
    /// The trained model; `None` only records features (`forewarn train`).
    pub file: Option<Arc<ModelFile>>,
    /// FNV-1a 64 of the model file's text (0 for a recorder).
    pub digest: u64,
    /// The signals read, in feature order.
    pub signals: Vec<usize>,
    /// Evaluation interval.
    pub interval: Millis,
    /// Horizon of the prediction.
    pub horizon: Millis,
    /// Paging level.
    pub level: f64,
    /// Severity of its alert.
    pub severity: Severity,
    weights: Weights,
}

// Rule identities are built from Debug: the file's digest stands for the
// model, so a retrained file is a new rule without printing every coefficient.
impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.path)
            .field("digest", &format_args!("{:016x}", self.digest))
            .field("interval", &self.interval)
            .field("horizon", &self.horizon)
            .field("level", &self.level)
            .field("severity", &self.severity)
            .finish()
    }
}

impl Model {
    /// A rule that only computes features of `chosen` signals every
    /// `interval`, for training.
    pub fn recorder(chosen: Vec<usize>, interval: Millis) -> Model {
        Model {
            path: String::new(),
            file: None,
            digest: 0,
            signals: chosen,
            interval,
            horizon: interval,
            level: 1.0,
            severity: Severity::Warning,
            weights: Weights::new(interval),
        }
    }

    /// The service-level signals of a config, which a model reads.
    pub fn readable_signals(signals: &[SignalDef]) -> Vec<usize> {
        (0..signals.len())
            .filter(|&s| signals[s].group_by.is_empty())
            .collect()
    }

    /// The feature schema of this rule's signals.
    pub fn schema(&self, signals: &[SignalDef]) -> FeatureSchema {
        FeatureSchema::new(signals, &self.signals, self.interval)
    }
}

/// Per-service state: each signal's baseline and the latest features.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelState {
    /// Per signal, in feature order.
    pub baselines: Vec<Baseline>,
    /// The latest feature vector (empty before the first evaluation).
    pub features: Vec<f32>,
    /// The latest probability.
    pub probability: Option<f64>,
}

impl RuleKind for Model {
    const NAME: &'static str = "model";
    const LIFECYCLE: bool = true;
    const VARS: &'static [&'static str] = &["probability", "contributors", "horizon"];
    type Raw = Raw;
    type State = ModelState;

    fn validate(raw: Raw, cx: &RuleCx) -> Result<Model, ConfigError> {
        let text = cx.read_beside("model", &raw.model)?;
        let refuse = |m: String| {
            cx.err_at(
                "model",
                format!("model file `{}`: {m}", raw.model),
                "train one for this config: forewarn train --config CONFIG --incidents I.json EVENTS... --out MODEL.json",
            )
        };
        let file = ModelFile::parse(&text).map_err(refuse)?;
        let signals = file.schema.resolve(cx.signals).map_err(refuse)?;
        let level = raw.level.unwrap_or(file.level);
        if !(level > 0.0 && level < 1.0) {
            return Err(cx.err_at(
                "level",
                format!("level {level} must be a probability between 0 and 1"),
                format!(
                    "e.g. level = {} (the level chosen on validation)",
                    file.level
                ),
            ));
        }
        let interval = file.schema.interval_ms;
        Ok(Model {
            path: raw.model,
            digest: crate::alert::fnv1a_bytes(text.as_bytes()),
            horizon: file.horizon_ms,
            file: Some(Arc::new(file)),
            signals,
            interval,
            level,
            severity: raw.severity.unwrap_or(Severity::Warning),
            weights: Weights::new(interval),
        })
    }

    fn input(&self) -> Input {
        Input::Own {
            interval: self.interval,
        }
    }

    fn signal_mut(&mut self) -> Option<&mut usize> {
        None
    }

    fn levels(&self) -> usize {
        1
    }

    fn level(&self, _i: usize) -> LevelInfo {
        LevelInfo {
            severity: self.severity,
            threshold: self.level,
        }
    }

    fn default_summary(&self) -> &'static str {
        "{service}: {probability} chance of an SLA breach within {horizon} ({contributors})"
    }

    // Every event of a service starts its evaluations; what it reads is the
    // signals' windows, so it records nothing itself.
    fn matches(&self, _e: &Event) -> bool {
        true
    }

    fn evaluate(
        &self,
        cx: &mut EvalCx<'_>,
        st: &mut ModelState,
        insts: &[Instance],
    ) -> Option<Verdict> {
        let idle = !self.signals.iter().any(|&s| cx.has_data(s));
        if idle && insts.iter().all(|i| i.state == State::Inactive) {
            return None;
        }
        let n = self.signals.len();
        st.baselines.resize(n, Baseline::default());
        st.features.resize(features::count(n), 0.0);
        let width = PER_SIGNAL.len();
        for (i, &s) in self.signals.iter().enumerate() {
            let w: WindowValue = cx.window(s);
            let out = &mut st.features[i * width..(i + 1) * width];
            st.baselines[i].features(w, self.weights, out);
        }
        features::clock(cx.at, &mut st.features[n * width..]);
        st.probability = self
            .file
            .as_ref()
            .map(|m| sigmoid(m.classifier.logit(&st.features) + m.prior_shift));
        let mut readings = [Reading::Clear; super::MAX_LEVELS];
        if st.probability.is_some_and(|p| p >= self.level) {
            readings[0] = Reading::Breach;
        }
        Some(Verdict {
            value: st.probability,
            readings,
            wake_inactive: Millis::MIN,
            wake_active: Millis::MIN,
            window: None,
            settled: None,
        })
    }

    fn risk(&self, value: f64, states: &[State]) -> f64 {
        let p = if value.is_finite() { value } else { 0.0 };
        alerting_score(self, states).max(p.clamp(0.0, 1.0))
    }

    fn window_text(&self, _signals: &[SignalDef]) -> String {
        format_duration(self.horizon)
    }

    fn features<'a>(&self, st: &'a ModelState) -> Option<&'a [f32]> {
        (!st.features.is_empty()).then_some(&st.features[..])
    }

    fn annotate(&self, st: &ModelState, out: &mut BTreeMap<String, String>) {
        out.insert("horizon".into(), format_duration(self.horizon));
        if let Some(p) = st.probability {
            out.insert("probability".into(), format!("{:.0}%", p * 100.0));
        }
        if let Some(text) = self.contributors(st) {
            out.insert("contributors".into(), text);
        }
    }

    fn series(&self, st: &ModelState, out: &mut Vec<Series>) {
        if let Some(p) = st.probability {
            out.push(Series {
                name: "failure_probability",
                window: None,
                value: p,
            });
        }
    }

    fn describe(&self, signals: &[SignalDef]) -> String {
        let names: Vec<&str> = self
            .signals
            .iter()
            .map(|&s| signals[s].name.as_str())
            .collect();
        format!(
            "model {}: P(SLA breach within {}) >= {}, every {}, from {} signals ({})",
            self.path,
            format_duration(self.horizon),
            self.level,
            format_duration(self.interval),
            names.len(),
            names.join(", ")
        )
    }

    fn state_bytes(st: &ModelState) -> usize {
        st.baselines.capacity() * std::mem::size_of::<Baseline>()
            + st.features.capacity() * std::mem::size_of::<f32>()
    }
}

impl Model {
    /// "p99 1.9k (+140% vs baseline, rising), …": the signals that raised the
    /// probability most, with their value against their baseline.
    fn contributors(&self, st: &ModelState) -> Option<String> {
        let m = self.file.as_ref()?;
        if st.features.len() != m.schema.features.len() {
            return None;
        }
        let mut each = vec![0.0; st.features.len()];
        m.classifier.contributions(&st.features, &mut each);
        let width = PER_SIGNAL.len();
        let mut by_signal: Vec<(usize, f64)> = (0..self.signals.len())
            .map(|i| (i, each[i * width..(i + 1) * width].iter().sum()))
            .filter(|(_, c)| *c > 0.0)
            .collect();
        by_signal.sort_by(|a, b| b.1.total_cmp(&a.1));
        let parts: Vec<String> = by_signal
            .iter()
            .take(TOP)
            .map(|&(i, _)| {
                let rising = st.features[i * width + 2] > 1.0;
                let b = &st.baselines[i];
                let mut text = format!("{} {}", m.schema.signals[i], format_value(b.last));
                if b.mean.abs() > 1e-12 {
                    let pct = (b.last - b.mean) / b.mean.abs() * 100.0;
                    text.push_str(&format!(" ({pct:+.0}% vs baseline"));
                    text.push_str(if rising { ", rising)" } else { ")" });
                }
                text
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::event::decode;
    use crate::lifecycle::TransitionKind;
    use crate::model::file::{FORMAT, VERSION};
    use crate::model::{Classifier, FeatureSchema, Logistic, ModelFile};
    use crate::Engine;

    const SIGNALS: &str = "[time]\nallowed_lateness = \"0s\"\n[[signals]]\nname = \"errors\"\naggregate = \"rate\"\nfilter = { outcome = \"error\" }\nwindow = \"1m\"\nslide = \"10s\"\n";

    /// A model file paging on the error rate's deviation alone: P = σ(−5 + z).
    fn model_file(dir: &std::path::Path, signals: &str) -> std::path::PathBuf {
        model_file_of(dir, signals, false)
    }

    /// A single-tree forest saying much the same: P = 0.99 above 2 spreads.
    fn forest(features: usize) -> Classifier {
        use crate::model::forest::{Node, Tree};
        let root = Node {
            feature: 0,
            threshold: 2.0,
            left: 1,
            right: 2,
            value: 0.3,
        };
        Classifier::Forest(crate::model::Forest {
            features,
            trees: vec![Tree {
                nodes: vec![root, Node::leaf(1, 0.001), Node::leaf(2, 0.99)],
            }],
        })
    }

    fn model_file_of(dir: &std::path::Path, signals: &str, trees: bool) -> std::path::PathBuf {
        let placeholder =
            "[[rules]]\nname = \"r\"\nkind = \"threshold\"\nsignal = \"errors\"\nwarning = 0.5\n";
        let cfg = Config::parse(&format!("{signals}{placeholder}"), "t.toml").unwrap();
        let schema = FeatureSchema::new(&cfg.signals, &[0], 30_000);
        let n = schema.features.len();
        let mut weights = vec![0.0; n];
        weights[0] = 1.0;
        let m = ModelFile {
            format: FORMAT.into(),
            version: VERSION,
            horizon_ms: 1_800_000,
            schema,
            prior_shift: 0.0,
            level: 0.5,
            classifier: if trees {
                forest(n)
            } else {
                Classifier::Logistic(Logistic {
                    mean: vec![0.0; n],
                    scale: vec![1.0; n],
                    weights,
                    intercept: -5.0,
                })
            },
            validation: serde_json::Value::Null,
        };
        let path = dir.join("m.json");
        std::fs::write(&path, serde_json::to_string(&m).unwrap()).unwrap();
        path
    }

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("forewarn-model-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn rule() -> &'static str {
        "[[rules]]\nname = \"BreachLikely\"\nkind = \"model\"\nmodel = \"m.json\"\n"
    }

    #[test]
    fn pages_when_the_probability_reaches_the_level_and_names_the_contributor() {
        pages_and_names(false);
    }

    #[test]
    fn a_forest_pages_and_names_the_contributor_alike() {
        pages_and_names(true);
    }

    fn pages_and_names(trees: bool) {
        let d = dir(if trees { "page-forest" } else { "page" });
        model_file_of(&d, SIGNALS, trees);
        let file = d.join("forewarn.toml");
        let src = format!("{SIGNALS}{}", rule());
        let cfg = Config::parse(&src, file.to_str().unwrap()).unwrap_or_else(|e| panic!("{e}"));
        let mut engine = Engine::new(cfg);
        let mut out = Vec::new();
        let t0: i64 = 1_795_168_800_000;
        // Forty minutes healthy (the baselines' warm-up is thirty), then
        // every request failing.
        for s in 0..3000i64 {
            let outcome = if s < 2400 { "ok" } else { "error" };
            let line = format!(
                r#"{{"ts":{},"service":"pay","kind":"request","outcome":"{outcome}"}}"#,
                t0 + s * 1000
            );
            engine.ingest(&decode(line.as_bytes()).unwrap(), i64::MAX / 2, &mut out);
        }
        let firing: Vec<_> = out
            .iter()
            .filter(|t| t.kind == TransitionKind::Firing)
            .collect();
        assert_eq!(firing.len(), 1, "{out:?}");
        let t = firing[0];
        assert!(
            t.at > t0 + 2_400_000 && t.at <= t0 + 2_460_000,
            "fired at {}",
            t.at - t0
        );
        assert!(t.value.unwrap() >= 0.5);
        let alert = engine.render(t);
        let contributors = &alert.annotations["contributors"];
        assert!(contributors.starts_with("errors "), "{contributors}");
        assert!(alert.annotations["summary"].contains("chance of an SLA breach within 30m"));
        let series = engine.series(t.rule, t.group);
        // Ten minutes on, the slow baseline has begun to accept the new level.
        assert!(series
            .iter()
            .any(|s| s.name == "failure_probability" && s.value > 0.0 && s.value < 1.0));
        std::fs::remove_dir_all(d).ok();
    }

    #[test]
    fn a_model_of_other_signals_is_refused_with_where_and_why() {
        let d = dir("mismatch");
        model_file(&d, SIGNALS);
        let file = d.join("forewarn.toml");
        let changed = SIGNALS.replace("window = \"1m\"", "window = \"5m\"");
        let src = format!("{changed}{}", rule());
        let err = Config::parse(&src, file.to_str().unwrap()).unwrap_err();
        assert!(
            err.message.contains("definitions of its signals changed"),
            "{err}"
        );
        assert_eq!(err.line, 12, "the `model` field: {err}");
        let renamed = SIGNALS.replace("\"errors\"", "\"failures\"");
        let err =
            Config::parse(&format!("{renamed}{}", rule()), file.to_str().unwrap()).unwrap_err();
        assert!(err.message.contains("reads signal `errors`"), "{err}");
        std::fs::write(
            d.join("m.json"),
            "{\"format\": \"forewarn-model\", \"version\": 99}",
        )
        .unwrap();
        let err =
            Config::parse(&format!("{SIGNALS}{}", rule()), file.to_str().unwrap()).unwrap_err();
        assert!(err.message.contains("version"), "{err}");
        std::fs::remove_dir_all(d).ok();
    }
}
