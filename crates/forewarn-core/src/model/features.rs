//! The features a failure-probability model reads, per service and evaluation:
//! for each service-level signal how far its window value and its recent level
//! stand from the signal's own slow baseline, and whether it is rising; and the
//! time of day.
//!
//! Every feature is relative to the service's own history, in units of the
//! baseline's spread (an exponentially weighted mean and variance over about
//! two hours): one model reads error rates, latencies and counts alike, a
//! service whose normal is noisy does not look failing, and nothing in the
//! features says *which* service it is. Raw values and event counts would:
//! a model trained on them learns that the services which failed in its
//! training history are the ones that fail, and pages on them for nothing
//! (measured: 255 false pages a day on an unseen scenario, BENCHMARKS.md).
//! The spread has a floor of 5% of the baseline, so a signal that has been
//! flat does not turn a tiny wobble into a huge deviation.
//!
//! A baseline is young for its first [`WARMUP`] of evaluations: its features
//! read "at baseline" (zero) while it learns, and it learns as a plain mean
//! and variance of what it has seen (an exponentially weighted mean started
//! at the first value, and a variance started at zero, are wrong for hours
//! with a two-hour time constant). Without both, the
//! first half hour of every service put every feature at its ±50 bound and a
//! model at probability 1: 20 of 25 out-of-fold false pages of a 60-hour
//! training history were in its first 45 minutes (BENCHMARKS.md, stop 38).

use serde::{Deserialize, Serialize};

use crate::time::Millis;
use crate::window::WindowValue;

/// Features per signal, in this order.
pub const PER_SIGNAL: [&str; 3] = ["vs_baseline", "recent_vs_baseline", "trend"];
/// Time-of-day features, after every signal's.
pub const CLOCK: [&str; 2] = ["hour_sin", "hour_cos"];

/// Time constant of the slow baseline.
pub const BASELINE: Millis = 2 * 3_600_000;
/// Time constant of the recent level.
pub const RECENT: Millis = 5 * 60_000;
/// Time constant the recent level's trend is measured against.
pub const MEDIUM: Millis = 20 * 60_000;
/// How long a baseline learns before its features are read.
pub const WARMUP: Millis = 30 * 60_000;
/// Smallest spread, as a share of the baseline's magnitude.
const SPREAD_FLOOR: f64 = 0.05;
const DAY: Millis = 86_400_000;

/// Number of features for `signals` signals.
pub fn count(signals: usize) -> usize {
    signals * PER_SIGNAL.len() + CLOCK.len()
}

/// Feature names for the named signals, in vector order (`signal.feature`).
pub fn names<S: AsRef<str>>(signals: &[S]) -> Vec<String> {
    let mut out: Vec<String> = signals
        .iter()
        .flat_map(|s| {
            PER_SIGNAL
                .iter()
                .map(move |f| format!("{}.{f}", s.as_ref()))
        })
        .collect();
    out.extend(CLOCK.iter().map(|c| c.to_string()));
    out
}

/// Smoothing weights for one evaluation interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    baseline: f64,
    recent: f64,
    medium: f64,
    /// Evaluations in [`WARMUP`].
    warm: u32,
}

impl Weights {
    /// The weights of exponential smoothing sampled every `interval`.
    pub fn new(interval: Millis) -> Weights {
        let w = |tau: Millis| 1.0 - (-(interval as f64) / tau as f64).exp();
        Weights {
            baseline: w(BASELINE),
            recent: w(RECENT),
            medium: w(MEDIUM),
            warm: (WARMUP / interval.max(1)).clamp(1, u32::MAX.into()) as u32,
        }
    }
}

/// One signal's smoothed history for one service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Slow mean.
    pub mean: f64,
    /// Slow variance.
    pub var: f64,
    /// Recent level.
    pub recent: f64,
    /// Medium level.
    pub medium: f64,
    /// Values seen.
    pub seen: u32,
    /// The latest value (for annotations).
    pub last: f64,
}

impl Baseline {
    /// The spread deviations are measured in.
    pub fn spread(&self) -> f64 {
        let floor = SPREAD_FLOOR * self.mean.abs();
        (self.var + floor * floor).sqrt().max(1e-9)
    }

    /// Writes this signal's [`PER_SIGNAL`] features for window `w` into `out`
    /// and learns the value. The value is compared with the baseline as it was
    /// before it, so a jump is seen in full at once. Zero while young.
    pub fn features(&mut self, w: WindowValue, weights: Weights, out: &mut [f32]) {
        let Some(x) = w.value.filter(|x| x.is_finite() && w.events > 0) else {
            // No data: read as "at baseline".
            out.fill(0.0);
            return;
        };
        // A young baseline is a plain mean of what it has seen (weight 1/n)
        // until the smoothing weight is the larger: no start value is
        // remembered for hours as if it were history.
        let young = 1.0 / (f64::from(self.seen) + 1.0);
        let (slow, recent, medium) = (
            weights.baseline.max(young),
            weights.recent.max(young),
            weights.medium.max(young),
        );
        self.recent += recent * (x - self.recent);
        self.medium += medium * (x - self.medium);
        if self.seen < weights.warm {
            out.fill(0.0);
        } else {
            let spread = self.spread();
            out[0] = clamp((x - self.mean) / spread);
            out[1] = clamp((self.recent - self.mean) / spread);
            out[2] = clamp((self.recent - self.medium) / spread);
        }
        self.last = x;
        let d = x - self.mean;
        self.mean += slow * d;
        self.var = (1.0 - slow) * (self.var + slow * d * d);
        self.seen = self.seen.saturating_add(1);
    }
}

/// Deviations beyond ±50 spreads carry no more information, and a bound keeps
/// a linear model's logit finite.
fn clamp(z: f64) -> f32 {
    z.clamp(-50.0, 50.0) as f32
}

/// Writes the [`CLOCK`] features of event time `at` (UTC hour of day on a circle).
pub fn clock(at: Millis, out: &mut [f32]) {
    let day = at.rem_euclid(DAY) as f64 / DAY as f64 * std::f64::consts::TAU;
    out[0] = day.sin() as f32;
    out[1] = day.cos() as f32;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(value: f64, events: u64) -> WindowValue {
        WindowValue {
            value: Some(value),
            events,
        }
    }

    #[test]
    fn a_jump_is_a_large_deviation_and_a_steady_level_none() {
        let weights = Weights::new(30_000);
        let mut b = Baseline::default();
        let mut f = [0f32; 3];
        for i in 0..400 {
            let x = 100.0 + if i % 2 == 0 { 2.0 } else { -2.0 };
            b.features(window(x, 50), weights, &mut f);
            if i < 60 {
                assert_eq!(f, [0.0; 3], "young at {i}");
            }
        }
        assert!(f[0].abs() < 1.0, "steady: {f:?}");
        assert!(f[2].abs() < 0.5, "steady trend: {f:?}");
        b.features(window(200.0, 50), weights, &mut f);
        assert_eq!(b.last, 200.0);
        assert!(f[0] > 10.0, "jump: {f:?}");
        assert!(f[1] > 0.5 && f[2] > 0.0, "recent level rising: {f:?}");
    }

    #[test]
    fn a_young_baseline_reads_zero_then_its_spread_is_corrected_for_its_age() {
        // 10 ± 2: the spread is 2 and the floor (0.5) small. Uncorrected, an
        // hour-old variance is about a fifth of the truth and every value
        // looks two spreads off.
        let weights = Weights::new(30_000);
        let mut b = Baseline::default();
        let mut f = [0f32; 3];
        for i in 0..120 {
            let x = 10.0 + if i % 2 == 0 { 2.0 } else { -2.0 };
            b.features(window(x, 50), weights, &mut f);
            if i < 60 {
                assert_eq!(f, [0.0; 3], "young at {i}");
            } else {
                assert!(f[0].abs() > 0.5 && f[0].abs() < 1.3, "at {i}: {f:?}");
            }
        }
    }

    #[test]
    fn an_empty_window_reads_as_baseline_and_is_not_learned() {
        let weights = Weights::new(30_000);
        let mut b = Baseline::default();
        let mut f = [9f32; 3];
        b.features(window(0.2, 10), weights, &mut f);
        let before = b;
        b.features(
            WindowValue {
                value: None,
                events: 0,
            },
            weights,
            &mut f,
        );
        assert_eq!(b, before);
        assert_eq!(f, [0.0; 3]);
    }

    #[test]
    fn names_follow_the_vector_order() {
        let n = names(&["a", "b"]);
        assert_eq!(n.len(), count(2));
        assert_eq!(n[0], "a.vs_baseline");
        assert_eq!(n[4], "b.recent_vs_baseline");
        assert_eq!(n[6], "hour_sin");
    }

    #[test]
    fn clock_is_periodic_over_a_day() {
        let (mut a, mut b) = ([0f32; 2], [0f32; 2]);
        clock(3_600_000, &mut a);
        clock(3_600_000 + 7 * DAY, &mut b);
        assert_eq!(a, b);
        clock(0, &mut a);
        assert_eq!(a, [0.0, 1.0]);
    }
}
