//! Confidence bounds, so a rule can require the *evidence* of a breach rather than
//! a point estimate that small samples push around. A rate is a proportion
//! (Wilson score interval); a quantile's bound is the sample quantile at a
//! shifted rank (the distribution-free order-statistic interval, normal
//! approximation of the binomial rank). Both are one-sided: a rule with
//! `op = "above"` breaches only when the lower bound is above the level.

/// The one-sided standard normal quantile for `confidence` (e.g. 0.95 → 1.645).
/// Abramowitz & Stegun 26.2.23 (absolute error < 4.5e-4), which is ample for a
/// paging decision.
pub fn z_for(confidence: f64) -> f64 {
    let p = (1.0 - confidence).clamp(1e-12, 0.5);
    let t = (-2.0 * p.ln()).sqrt();
    let (c0, c1, c2) = (2.515_517, 0.802_853, 0.010_328);
    let (d1, d2, d3) = (1.432_788, 0.189_269, 0.001_308);
    (t - (c0 + c1 * t + c2 * t * t) / (1.0 + d1 * t + d2 * t * t + d3 * t * t * t)).max(0.0)
}

/// Wilson score interval of a proportion `p` observed over `n` trials: (lower,
/// upper). With no trials the interval is the whole of 0..=1.
pub fn wilson(p: f64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n = n as f64;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Ranks (as quantiles) whose sample values bound the true `q`-quantile of a
/// sample of `n`: (lower, upper), clamped to 0..=1.
pub fn quantile_ranks(q: f64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let half = z * (q * (1.0 - q) / n as f64).sqrt();
    ((q - half).max(0.0), (q + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantiles_match_tables() {
        for (c, z) in [(0.5, 0.0), (0.9, 1.2816), (0.95, 1.6449), (0.99, 2.3263)] {
            assert!((z_for(c) - z).abs() < 5e-4, "z({c}) = {} not {z}", z_for(c));
        }
    }

    #[test]
    fn wilson_matches_worked_examples_and_narrows_with_n() {
        // 6 complaints in 30 pieces of feedback at 95% (one-sided z = 1.645).
        let (lo, hi) = wilson(0.2, 30, 1.645);
        assert!((lo - 0.1071).abs() < 1e-3, "{lo}");
        assert!((hi - 0.3425).abs() < 1e-3, "{hi}");
        // The same share over 3,000 is known far more precisely.
        let (lo2, hi2) = wilson(0.2, 3000, 1.645);
        assert!(lo2 > 0.187 && hi2 < 0.213, "{lo2} {hi2}");
        assert_eq!(wilson(0.0, 0, 1.645), (0.0, 1.0));
        let (lo0, _) = wilson(0.0, 10, 1.645);
        assert_eq!(lo0, 0.0);
    }

    #[test]
    fn quantile_ranks_bound_the_rank() {
        // p99 of 100 samples: the rank could be anywhere from ~97.4% up.
        let (lo, hi) = quantile_ranks(0.99, 100, 1.645);
        assert!((lo - 0.9736).abs() < 1e-3 && hi == 1.0, "{lo} {hi}");
        let (lo, _) = quantile_ranks(0.99, 100_000, 1.645);
        assert!(lo > 0.989, "{lo}");
    }
}
