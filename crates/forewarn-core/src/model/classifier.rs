//! Inference of a trained classifier: a probability from one feature vector,
//! and each feature's share of it. Training happens elsewhere (`forewarn
//! train`, with smartcore); what is kept here is the fitted coefficients or
//! trees, so inference is a dot product or a few tree walks, with no
//! allocation.

use serde::{Deserialize, Serialize};

use super::forest::Forest;

/// Forest probabilities are kept this far from 0 and 1, so their log-odds
/// stay finite.
const PROBABILITY_FLOOR: f64 = 1e-6;

/// A fitted classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Classifier {
    /// L2-regularised logistic regression on standardised features.
    Logistic(Logistic),
    /// Decision trees whose leaf probabilities are averaged.
    Forest(Forest),
}

/// Logistic regression: P = σ(intercept + Σ wᵢ·(xᵢ − meanᵢ)/scaleᵢ + shift).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logistic {
    /// Per feature: training mean.
    pub mean: Vec<f64>,
    /// Per feature: training standard deviation (1 where constant).
    pub scale: Vec<f64>,
    /// Per feature: coefficient on the standardised value.
    pub weights: Vec<f64>,
    /// Intercept.
    pub intercept: f64,
}

impl Classifier {
    /// Features it expects.
    pub fn features(&self) -> usize {
        match self {
            Classifier::Logistic(l) => l.weights.len(),
            Classifier::Forest(f) => f.features,
        }
    }

    /// Checks its vectors agree in length and hold finite numbers.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Classifier::Logistic(l) => {
                let n = l.weights.len();
                if l.mean.len() != n || l.scale.len() != n {
                    return Err("mean, scale and weights differ in length".into());
                }
                let all = l.mean.iter().chain(&l.scale).chain(&l.weights);
                if !all.chain([&l.intercept]).all(|v| v.is_finite()) {
                    return Err("a coefficient is not a finite number".into());
                }
                if l.scale.iter().any(|s| *s <= 0.0) {
                    return Err("a scale is not positive".into());
                }
                Ok(())
            }
            Classifier::Forest(f) => f.check(),
        }
    }

    /// The log-odds of `x` (before any prior shift).
    pub fn logit(&self, x: &[f32]) -> f64 {
        match self {
            Classifier::Logistic(l) => {
                l.intercept
                    + x.iter()
                        .zip(&l.mean)
                        .zip(&l.scale)
                        .zip(&l.weights)
                        .map(|(((x, m), s), w)| w * (f64::from(*x) - m) / s)
                        .sum::<f64>()
            }
            Classifier::Forest(f) => {
                let p = f
                    .probability(x)
                    .clamp(PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR);
                (p / (1.0 - p)).ln()
            }
        }
    }

    /// Each feature's contribution to [`Classifier::logit`], in log-odds, into
    /// `out` (one per feature): positive pushes the probability up. A forest's
    /// shares of its probability are scaled to log-odds at that probability
    /// (the slope of the logit there), so they rank the same way.
    pub fn contributions(&self, x: &[f32], out: &mut [f64]) {
        match self {
            Classifier::Logistic(l) => {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = l.weights[i] * (f64::from(x[i]) - l.mean[i]) / l.scale[i];
                }
            }
            Classifier::Forest(f) => {
                f.contributions(x, out);
                let p = f
                    .probability(x)
                    .clamp(PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR);
                let slope = 1.0 / (p * (1.0 - p));
                out.iter_mut().for_each(|o| *o *= slope);
            }
        }
    }
}

/// The logistic function.
pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Classifier {
        Classifier::Logistic(Logistic {
            mean: vec![1.0, 0.0],
            scale: vec![2.0, 1.0],
            weights: vec![4.0, -1.0],
            intercept: -1.0,
        })
    }

    #[test]
    fn logit_is_the_standardised_dot_product() {
        let m = model();
        assert_eq!(m.logit(&[1.0, 0.0]), -1.0);
        assert_eq!(m.logit(&[3.0, 1.0]), -1.0 + 4.0 - 1.0);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-12);
        let mut c = [0.0; 2];
        m.contributions(&[3.0, 1.0], &mut c);
        assert_eq!(c, [4.0, -1.0]);
        assert_eq!(c.iter().sum::<f64>() + -1.0, m.logit(&[3.0, 1.0]));
    }

    #[test]
    fn inconsistent_coefficients_are_refused() {
        assert!(model().check().is_ok());
        let Classifier::Logistic(mut l) = model() else {
            unreachable!("model() is logistic")
        };
        l.scale.pop();
        assert!(Classifier::Logistic(l.clone()).check().is_err());
        l.scale = vec![0.0, 1.0];
        assert!(Classifier::Logistic(l).check().is_err());
    }
}
