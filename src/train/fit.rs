//! Fitting and measuring: smartcore's logistic regression on standardised
//! features with the positives oversampled to balance the classes (the
//! oversampling is undone by a prior shift on the log-odds), ROC AUC, and the
//! precision and recall at a level.

use anyhow::anyhow;
use forewarn_core::model::{sigmoid, Classifier, Logistic};
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::logistic_regression::{LogisticRegression, LogisticRegressionParameters};

use super::dataset::Dataset;

/// Most copies of each positive row used to balance the classes.
const MAX_OVERSAMPLE: usize = 50;

/// A fitted classifier with the prior shift that undoes its class balancing.
pub struct Fitted {
    /// The classifier.
    pub classifier: Classifier,
    /// Added to its log-odds.
    pub prior_shift: f64,
}

impl Fitted {
    /// P(positive) of features `x`.
    pub fn probability(&self, x: &[f32]) -> f64 {
        sigmoid(self.classifier.logit(x) + self.prior_shift)
    }
}

/// Fits L2-regularised logistic regression (strength `alpha`) on `rows`.
pub fn logistic(
    data: &Dataset,
    rows: &[usize],
    labels: &[bool],
    alpha: f64,
) -> anyhow::Result<Fitted> {
    let w = data.width;
    let (mean, scale) = standardisation(data, rows);
    let positives = labels.iter().filter(|l| **l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return Err(anyhow!(
            "training needs both classes: {positives} rows precede a breach, {negatives} do not"
        ));
    }
    let copies = (negatives / positives).clamp(1, MAX_OVERSAMPLE);
    let n = negatives + positives * copies;
    // Column-major, as DenseMatrix stores it without a copy.
    let mut values = vec![0f64; n * w];
    let mut y = Vec::with_capacity(n);
    let mut r = 0;
    for (&i, &label) in rows.iter().zip(labels) {
        for _ in 0..if label { copies } else { 1 } {
            for (j, x) in data.row(i).iter().enumerate() {
                values[j * n + r] = (f64::from(*x) - mean[j]) / scale[j];
            }
            y.push(u32::from(label));
            r += 1;
        }
    }
    let x = DenseMatrix::new(n, w, values, true).map_err(|e| anyhow!("{e}"))?;
    let params = LogisticRegressionParameters::default().with_alpha(alpha);
    let lr = LogisticRegression::fit(&x, &y, params).map_err(|e| anyhow!("fit: {e}"))?;
    let weights: Vec<f64> = (0..w).map(|j| *lr.coefficients().get((0, j))).collect();
    let intercept = *lr.intercept().get((0, 0));
    Ok(Fitted {
        classifier: Classifier::Logistic(Logistic {
            mean,
            scale,
            weights,
            intercept,
        }),
        prior_shift: -(copies as f64).ln(),
    })
}

/// Per feature: mean and standard deviation over `rows` (1 where constant).
fn standardisation(data: &Dataset, rows: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let w = data.width;
    let (mut sum, mut sq) = (vec![0f64; w], vec![0f64; w]);
    for &i in rows {
        for (j, x) in data.row(i).iter().enumerate() {
            let x = f64::from(*x);
            sum[j] += x;
            sq[j] += x * x;
        }
    }
    let n = rows.len().max(1) as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let scale = sq
        .iter()
        .zip(&mean)
        .map(|(q, m)| {
            let sd = (q / n - m * m).max(0.0).sqrt();
            if sd > 1e-9 {
                sd
            } else {
                1.0
            }
        })
        .collect();
    (mean, scale)
}

/// ROC AUC of `scores` against `labels` (ties count half): the chance a
/// random positive scores above a random negative.
pub fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut positives) = (0.0, 0usize);
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            j += 1;
        }
        let mid_rank = (i + j + 1) as f64 / 2.0;
        for &k in &order[i..j] {
            if labels[k] {
                rank_sum += mid_rank;
                positives += 1;
            }
        }
        i = j;
    }
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return f64::NAN;
    }
    let p = positives as f64;
    (rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64)
}

/// Precision and recall of paging at `level`.
pub fn precision_recall(scores: &[f64], labels: &[bool], level: f64) -> (f64, f64) {
    let (mut tp, mut fp, mut fneg) = (0usize, 0usize, 0usize);
    for (s, l) in scores.iter().zip(labels) {
        match (*s >= level, *l) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fneg += 1,
            _ => {}
        }
    }
    let ratio = |a: usize, b: usize| {
        if a + b == 0 {
            0.0
        } else {
            a as f64 / (a + b) as f64
        }
    };
    (ratio(tp, fp), ratio(tp, fneg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ordered_pairs_and_ties_half() {
        assert_eq!(auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]), 1.0);
        assert_eq!(auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]), 0.0);
        assert_eq!(auc(&[0.5, 0.5], &[false, true]), 0.5);
        assert!(auc(&[0.5], &[true]).is_nan());
    }

    #[test]
    fn a_separable_feature_is_learned_with_its_sign() {
        let mut data = Dataset {
            width: 2,
            ..Dataset::default()
        };
        let mut labels = Vec::new();
        for i in 0..400 {
            let positive = i % 10 == 0;
            let noise = ((i * 37) % 11) as f32 / 11.0;
            data.x
                .extend([if positive { 3.0 } else { 0.0 } + noise, noise]);
            data.at.push(i as i64);
            data.service.push(0);
            labels.push(positive);
        }
        let rows: Vec<usize> = (0..400).collect();
        let fitted = logistic(&data, &rows, &labels, 1.0).unwrap();
        let scores: Vec<f64> = rows
            .iter()
            .map(|&i| fitted.probability(data.row(i)))
            .collect();
        assert!(auc(&scores, &labels) > 0.99);
        let Classifier::Logistic(l) = &fitted.classifier else {
            panic!("logistic() fits a logistic classifier")
        };
        assert!(l.weights[0] > 0.0, "{:?}", l.weights);
        // The prior shift undoes the 9x oversampling: a positive row's
        // probability sits near the true rate of such rows, not near 1.
        assert!(fitted.prior_shift < 0.0);
        let (p, r) = precision_recall(&scores, &labels, 0.5);
        assert!(p > 0.9 && r > 0.9, "p {p} r {r}");
    }
}
