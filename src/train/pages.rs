//! What a probability level would page: per service, runs of consecutive
//! validation evaluations at or above it (two or more, as `for` one interval
//! would need) are alert episodes; one starting outside every incident's
//! window (from its start to [`GRACE`] after its end, as `backtest` judges an
//! episode by default) is a false page. A page before an incident began
//! counts against the level: no signal of it existed yet, so on a history
//! the model has not seen it is noise. The level chosen is
//! the lowest that keeps false pages within a budget: the most warning for the
//! noise the on-call will accept.

use forewarn_core::time::Millis;
use serde_json::{json, Value};

use super::dataset::Dataset;
use crate::backtest::incidents::Incident;

/// After an incident's end, episodes still count for it (`backtest --grace`'s
/// default).
const GRACE: Millis = 10 * 60_000;
/// Evaluations in a row that make an episode.
const MIN_RUN: usize = 2;
/// Levels tried, from 0.02 up to 0.995.
const LEVELS: usize = 80;
const DAY: f64 = 86_400_000.0;

/// The validation rows in the terms of pages.
pub struct Episodes {
    /// Per service: (time, row position in `valid`) in time order.
    per_service: Vec<Vec<(Millis, usize)>>,
    /// Per service: the incident windows [start − horizon, end].
    windows: Vec<Vec<(Millis, Millis)>>,
    days: f64,
}

impl Episodes {
    /// Groups the validation rows `valid` of `data` by service.
    pub fn new(data: &Dataset, valid: &[usize], incidents: &[Incident]) -> Self {
        let mut per_service = vec![Vec::new(); data.services.len()];
        for (k, &i) in valid.iter().enumerate() {
            per_service[data.service[i] as usize].push((data.at[i], k));
        }
        let windows = data
            .services
            .iter()
            .map(|s| {
                incidents
                    .iter()
                    .filter(|c| c.services.contains(s))
                    .map(|c| (c.start, c.end + GRACE))
                    .collect()
            })
            .collect();
        let span = match (valid.first(), valid.last()) {
            (Some(&a), Some(&b)) => (data.at[b] - data.at[a]) as f64,
            _ => 0.0,
        };
        Episodes {
            per_service,
            windows,
            days: (span / DAY).max(1.0 / 24.0),
        }
    }

    /// (episodes, false pages) at `level`. Rows outside incident windows are
    /// judged on their own: an alert that starts in an incident and stays up
    /// long after it pages for nothing as surely as one out of the blue.
    pub fn count(&self, scores: &[f64], level: f64) -> (usize, usize) {
        let (mut episodes, mut false_pages) = (0, 0);
        for (rows, windows) in self.per_service.iter().zip(&self.windows) {
            let (mut run_in, mut run_out) = (0usize, 0usize);
            for &(at, k) in rows {
                let inside = windows.iter().any(|&(a, b)| a <= at && at <= b);
                let above = scores[k] >= level;
                run_in = if above && inside { run_in + 1 } else { 0 };
                run_out = if above && !inside { run_out + 1 } else { 0 };
                if run_in == MIN_RUN {
                    episodes += 1;
                }
                if run_out == MIN_RUN {
                    episodes += 1;
                    false_pages += 1;
                }
            }
        }
        (episodes, false_pages)
    }

    /// The lowest level whose false pages per day stay within `budget`, and
    /// what it gives.
    pub fn choose_level(&self, scores: &[f64], budget: f64) -> (f64, Value) {
        let mut chosen = None;
        for i in 0..LEVELS {
            let level = 0.02 + (0.995 - 0.02) * i as f64 / (LEVELS - 1) as f64;
            let (episodes, false_pages) = self.count(scores, level);
            if false_pages as f64 / self.days <= budget {
                chosen = Some((level, episodes, false_pages));
                break;
            }
        }
        // None within budget: the highest level, with what it really gives.
        let (level, episodes, false_pages) = chosen.unwrap_or_else(|| {
            let (episodes, false_pages) = self.count(scores, 0.995);
            (0.995, episodes, false_pages)
        });
        let figures = json!({
            "episodes": episodes,
            "false_pages": false_pages,
            "false_pages_per_day": false_pages as f64 / self.days,
            "validation_days": self.days,
        });
        (level, figures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_outside_incidents_are_false_pages_and_the_level_avoids_them() {
        let mut data = Dataset {
            width: 0,
            services: vec!["a".into()],
            ..Dataset::default()
        };
        // 0.9 during the incident (rows 10–13); 0.6 blips before it began
        // (rows 4–5) and after its grace (rows 50–51).
        let mut scores = Vec::new();
        for i in 0..60i64 {
            data.at.push(i * 30_000);
            data.service.push(0);
            scores.push(match i {
                10..=13 => 0.9,
                4 | 5 | 50 | 51 => 0.6,
                _ => 0.1,
            });
        }
        let incident = Incident {
            id: "x".into(),
            services: vec!["a".into()],
            start: 10 * 30_000,
            end: 14 * 30_000,
            breach: Some(12 * 30_000),
            category: None,
        };
        let valid: Vec<usize> = (0..60).collect();
        let e = Episodes::new(&data, &valid, &[incident]);
        assert_eq!(e.count(&scores, 0.5), (3, 2));
        assert_eq!(e.count(&scores, 0.7), (1, 0));
        // Everything above the level: the long stretch outside is a page too.
        assert_eq!(e.count(&scores, 0.05).1, 2);
        let (level, figures) = e.choose_level(&scores, 0.0);
        assert!(level > 0.6 && level <= 0.9, "{level}");
        assert_eq!(figures["false_pages"], 0);
    }
}
