//! The model file `forewarn train` writes and a `model` rule reads: versioned
//! JSON carrying the classifier, the feature schema it was trained on and the
//! fingerprint of those signals' definitions, so a config whose signals
//! changed is refused instead of fed features the model never saw.

use serde::{Deserialize, Serialize};

use super::classifier::Classifier;
use super::features;
use crate::config::SignalDef;
use crate::time::Millis;

/// `format` of every model file.
pub const FORMAT: &str = "forewarn-model";
/// The version this build writes: 2 added forest classifiers.
pub const VERSION: u32 = 2;
/// The oldest version this build reads (version 1 files hold a logistic
/// classifier, which version 2 reads unchanged).
pub const OLDEST_READ: u32 = 1;

/// What the features were computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSchema {
    /// The signals, by name, in feature order.
    pub signals: Vec<String>,
    /// FNV-1a 64 (hex) of those signals' definitions.
    pub fingerprint: String,
    /// Feature names, in vector order.
    pub features: Vec<String>,
    /// Evaluation interval (ms).
    pub interval_ms: Millis,
}

impl FeatureSchema {
    /// The schema of `chosen` signals (indices into `signals`) every `interval`.
    pub fn new(signals: &[SignalDef], chosen: &[usize], interval: Millis) -> FeatureSchema {
        let names: Vec<String> = chosen.iter().map(|&s| signals[s].name.clone()).collect();
        FeatureSchema {
            features: features::names(&names),
            signals: names,
            fingerprint: fingerprint(signals, chosen),
            interval_ms: interval,
        }
    }

    /// The signals of `signals` this schema reads, in feature order; an error
    /// says which is missing or that their definitions changed.
    pub fn resolve(&self, signals: &[SignalDef]) -> Result<Vec<usize>, String> {
        let mut chosen = Vec::with_capacity(self.signals.len());
        for name in &self.signals {
            let Some(i) = signals.iter().position(|s| &s.name == name) else {
                return Err(format!(
                    "the model reads signal `{name}`, which this config does not define"
                ));
            };
            if !signals[i].group_by.is_empty() {
                return Err(format!(
                    "the model reads signal `{name}` per service, but it now has group_by"
                ));
            }
            chosen.push(i);
        }
        let now = fingerprint(signals, &chosen);
        if now != self.fingerprint {
            return Err(format!(
                "the definitions of its signals changed since it was trained (fingerprint {} there, {now} here)",
                self.fingerprint
            ));
        }
        if self.features.len() != features::count(chosen.len()) {
            return Err(format!(
                "it lists {} features where {} signals give {}",
                self.features.len(),
                chosen.len(),
                features::count(chosen.len())
            ));
        }
        Ok(chosen)
    }
}

/// FNV-1a 64 over the chosen signals' identities, in order.
fn fingerprint(signals: &[SignalDef], chosen: &[usize]) -> String {
    let text: Vec<String> = chosen.iter().map(|&s| signals[s].identity()).collect();
    format!(
        "{:016x}",
        crate::alert::fnv1a_bytes(text.join("\u{1f}").as_bytes())
    )
}

/// A trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`] of the writer.
    pub version: u32,
    /// What it predicts: an SLA breach within this (ms).
    pub horizon_ms: Millis,
    /// The features.
    pub schema: FeatureSchema,
    /// Added to the classifier's log-odds: undoes the class balancing of
    /// training (−ln of the positives' oversampling factor).
    pub prior_shift: f64,
    /// The probability level chosen on validation (a rule's default level).
    pub level: f64,
    /// The classifier.
    pub classifier: Classifier,
    /// What training measured (free-form, shown by `forewarn check`).
    #[serde(default)]
    pub validation: serde_json::Value,
}

impl ModelFile {
    /// Parses and checks a model file's text.
    pub fn parse(text: &str) -> Result<ModelFile, String> {
        let head: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        if head.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(format!(
                "not a forewarn model (no \"format\": \"{FORMAT}\")"
            ));
        }
        let version = head.get("version").and_then(|v| v.as_u64());
        if !version.is_some_and(|v| (u64::from(OLDEST_READ)..=u64::from(VERSION)).contains(&v)) {
            return Err(format!(
                "model file version {version:?}; this forewarn reads versions {OLDEST_READ} to {VERSION}: retrain with `forewarn train`"
            ));
        }
        let m: ModelFile =
            serde_json::from_value(head).map_err(|e| format!("malformed model: {e}"))?;
        m.classifier.check()?;
        if m.classifier.features() != m.schema.features.len() {
            return Err(format!(
                "the classifier takes {} features, the schema lists {}",
                m.classifier.features(),
                m.schema.features.len()
            ));
        }
        if !(m.level > 0.0 && m.level < 1.0) || m.horizon_ms <= 0 || m.schema.interval_ms <= 0 {
            return Err("level must be in (0, 1), horizon and interval positive".into());
        }
        Ok(m)
    }
}
