//! Time-blocked cross-validation: the labelled rows are cut by time into
//! contiguous blocks; each block is scored by a model fitted on the other
//! blocks, with a horizon's worth of rows either side of it left out (a
//! label before the block looks into it; features after it still remember
//! it). Every labelled row so gets exactly one out-of-fold score, and a
//! paging level is chosen on the whole history instead of its last 30%: on
//! six simulated seeds of validation, "at most one false page a day" was
//! "none in 18 hours", the far tail of the quiet rows, and held-out seeds
//! paged five times a day at it (BENCHMARKS.md, stop 36).

use forewarn_core::time::Millis;

use super::dataset::Dataset;

/// One fold: the rows fitted on and the block they score.
#[derive(Debug, Default, PartialEq)]
pub struct Fold {
    /// Rows to fit on.
    pub fit: Vec<usize>,
    /// Rows held out, in data order.
    pub held: Vec<usize>,
}

/// Cuts `labelled` (row indices in time order) into `k` blocks of about
/// equal row counts and returns one fold per block.
pub fn blocks(data: &Dataset, labelled: &[usize], k: usize, horizon: Millis) -> Vec<Fold> {
    let k = k.clamp(1, labelled.len().max(1));
    let mut folds = Vec::with_capacity(k);
    for f in 0..k {
        let (a, b) = (labelled.len() * f / k, labelled.len() * (f + 1) / k);
        let held = labelled[a..b].to_vec();
        let (Some(&first), Some(&last)) = (held.first(), held.last()) else {
            continue;
        };
        let (from, to) = (data.at[first], data.at[last]);
        let fit = labelled
            .iter()
            .copied()
            .filter(|&i| data.at[i] < from - horizon || data.at[i] > to + horizon)
            .collect();
        folds.push(Fold { fit, held });
    }
    folds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_held_once_and_never_fitted_within_a_horizon_of_its_block() {
        let mut data = Dataset::default();
        for i in 0..100i64 {
            data.at.push(i * 10);
            data.service.push(0);
        }
        let labelled: Vec<usize> = (0..100).filter(|i| i % 7 != 3).collect();
        let folds = blocks(&data, &labelled, 4, 25);
        assert_eq!(folds.len(), 4);
        let mut held: Vec<usize> = folds.iter().flat_map(|f| f.held.clone()).collect();
        held.sort_unstable();
        assert_eq!(held, labelled);
        for f in &folds {
            let (from, to) = (data.at[f.held[0]], data.at[*f.held.last().unwrap()]);
            assert!(!f.fit.is_empty());
            for &i in &f.fit {
                assert!(data.at[i] < from - 25 || data.at[i] > to + 25, "row {i}");
                assert!(labelled.contains(&i));
            }
        }
        // The first block fits on the rows from 25 after its end onwards.
        let first = &folds[0];
        let end = data.at[*first.held.last().unwrap()];
        let expected: Vec<usize> = labelled
            .iter()
            .copied()
            .filter(|&i| data.at[i] > end + 25)
            .collect();
        assert_eq!(first.fit, expected);
    }

    #[test]
    fn more_folds_than_rows_gives_one_per_row() {
        let mut data = Dataset::default();
        data.at.extend([0, 100]);
        data.service.extend([0, 0]);
        let folds = blocks(&data, &[0, 1], 5, 10);
        assert_eq!(folds.len(), 2);
        assert_eq!(
            folds[0],
            Fold {
                fit: vec![1],
                held: vec![0]
            }
        );
    }
}
