//! A mergeable quantile sketch with a stated relative error.
//!
//! Values are counted in logarithmic buckets (the DDSketch idea): bucket `k` holds
//! values in `(γ^(k-1), γ^k]` with `γ = (1+α)/(1−α)`, and reports `2γ^k/(γ+1)`, which
//! is within relative error `α` of every value in the bucket. Negative values use
//! mirrored buckets; values with magnitude below [`MIN_MAGNITUDE`] count as zero.
//!
//! Storage is a sorted sparse list of `(bucket, count)`, at most [`MAX_BUCKETS`] long:
//! past that the lowest buckets fold into one. A pane keeps its list when it is
//! recycled, so after warm-up recording a value allocates nothing.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

/// Relative error of every quantile estimate, as a fraction (1%).
pub const RELATIVE_ERROR: f64 = 0.01;
/// Values with smaller magnitude are counted as zero (absolute error at most this).
pub const MIN_MAGNITUDE: f64 = 1e-9;

const GAMMA: f64 = (1.0 + RELATIVE_ERROR) / (1.0 - RELATIVE_ERROR);
/// Offset that keeps every positive bucket key positive and every negative one negative.
const SIGN_OFFSET: i32 = 1 << 20;

fn ln_gamma() -> f64 {
    GAMMA.ln()
}

/// Sort key of the bucket holding `v`: negatives < zero < positives.
pub fn bucket_of(v: f64) -> i32 {
    let m = v.abs();
    if m < MIN_MAGNITUDE {
        return 0;
    }
    // Finite inputs stay far inside this range; the clamp keeps the key arithmetic
    // from overflowing whatever arrives.
    let k = ((m.ln() / ln_gamma()).ceil() as i32).clamp(-(SIGN_OFFSET - 1), SIGN_OFFSET - 1);
    if v > 0.0 {
        SIGN_OFFSET + k
    } else {
        -(SIGN_OFFSET + k)
    }
}

/// The representative value of a bucket.
pub fn bucket_value(key: i32) -> f64 {
    if key == 0 {
        return 0.0;
    }
    let k = key.abs() - SIGN_OFFSET;
    let v = 2.0 * (f64::from(k) * ln_gamma()).exp() / (GAMMA + 1.0);
    if key > 0 {
        v
    } else {
        -v
    }
}

/// Buckets kept inline before spilling to the heap: a pane of a quiet service holds
/// a few, and reading them then costs no pointer chase. Three, with the floor
/// beside them, keep the header at 40 bytes.
const INLINE_BUCKETS: usize = 3;

/// Most buckets a sketch holds: past this the lowest are folded into one (as
/// DDSketch's collapsing store does), so high quantiles keep [`RELATIVE_ERROR`]
/// while a sketch never costs more than 4 KiB whatever the spread of values.
/// 512 buckets span a factor of γ^512 ≈ 27,000 between the lowest value kept
/// exact and the highest.
pub const MAX_BUCKETS: usize = 512;

/// Buckets left after a fold: folding a batch at a time keeps the cost of a fold
/// (moving the list) away from every new bucket once a sketch is full.
const FOLDED_BUCKETS: usize = MAX_BUCKETS - MAX_BUCKETS / 8;

/// No fold yet: every key is its own bucket.
const NO_FLOOR: i32 = i32::MIN;

/// Sparse bucket counts for one pane (or one running window).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sketch {
    buckets: SmallVec<[(i32, u32); INLINE_BUCKETS]>,
    /// Keys below this count in the bucket at it, once a fold has happened. It
    /// only rises until `clear`, so a running window that adds and later
    /// subtracts the same pane maps each key to the same bucket both times.
    #[serde(default = "no_floor")]
    floor: i32,
}

fn no_floor() -> i32 {
    NO_FLOOR
}

impl Default for Sketch {
    fn default() -> Self {
        Sketch {
            buckets: SmallVec::new(),
            floor: NO_FLOOR,
        }
    }
}

impl Sketch {
    /// Counts one value.
    pub fn record(&mut self, v: f64) {
        self.count(bucket_of(v), 1);
    }

    /// Adds `n` to the bucket for `key` (or the floor's). A full sketch folds
    /// before a new bucket goes in, so the list never grows past its cap (nor
    /// its allocation past [`MAX_BUCKETS`] entries).
    fn count(&mut self, key: i32, n: u32) {
        let mut at = self
            .buckets
            .binary_search_by_key(&key.max(self.floor), |b| b.0);
        if at.is_err() && self.buckets.len() >= MAX_BUCKETS {
            self.fold();
            at = self
                .buckets
                .binary_search_by_key(&key.max(self.floor), |b| b.0);
        }
        match at {
            Ok(i) => self.buckets[i].1 = self.buckets[i].1.saturating_add(n),
            Err(i) => self.buckets.insert(i, (key.max(self.floor), n)),
        }
    }

    /// Folds the lowest buckets into one, leaving [`FOLDED_BUCKETS`].
    fn fold(&mut self) {
        let cut = self.buckets.len() - FOLDED_BUCKETS;
        let folded = self.buckets[..=cut]
            .iter()
            .fold(0u32, |acc, b| acc.saturating_add(b.1));
        self.floor = self.buckets[cut].0;
        self.buckets[cut].1 = folded;
        self.buckets.drain(..cut);
    }

    /// Empties the sketch, keeping its capacity.
    pub fn clear(&mut self) {
        self.buckets.clear();
        self.floor = NO_FLOOR;
    }
    /// The `(bucket, count)` pairs, sorted by bucket.
    pub fn buckets(&self) -> &[(i32, u32)] {
        &self.buckets
    }
    /// Adds every count of `other` (merge of two sorted lists, in place).
    pub fn add(&mut self, other: &Sketch) {
        for &(key, count) in &other.buckets {
            self.count(key, count);
        }
    }

    /// Removes the counts of `other`, which must have been added before; buckets
    /// that reach zero are dropped so the list stays as small as the data.
    pub fn subtract(&mut self, other: &Sketch) {
        for &(key, count) in &other.buckets {
            let key = key.max(self.floor);
            if let Ok(i) = self.buckets.binary_search_by_key(&key, |b| b.0) {
                let left = self.buckets[i].1.saturating_sub(count);
                if left == 0 {
                    self.buckets.remove(i);
                } else {
                    self.buckets[i].1 = left;
                }
            }
        }
    }

    /// The `q`-quantile (0..=1) of the counted values, `None` when empty; see
    /// [`Merger::quantile`] for the rank definition and error bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        rank_value(&self.buckets, q)
    }

    /// Heap bytes held (zero while the buckets fit inline).
    pub fn heap_bytes(&self) -> usize {
        if self.buckets.spilled() {
            self.buckets.capacity() * std::mem::size_of::<(i32, u32)>()
        } else {
            0
        }
    }
}

/// Reusable scratch space for merging pane sketches into one window quantile.
#[derive(Debug, Default)]
pub struct Merger {
    merged: Vec<(i32, u32)>,
}

impl Merger {
    /// The `q`-quantile (0..=1) of the union of `parts`, or `None` when they are empty.
    ///
    /// Returns the representative value of the bucket holding the item of rank
    /// `floor(q·(n−1))` in sorted order, so it is within [`RELATIVE_ERROR`] of that item.
    pub fn quantile<'a>(&mut self, parts: impl Iterator<Item = &'a Sketch>, q: f64) -> Option<f64> {
        self.merged.clear();
        for p in parts {
            self.merged.extend_from_slice(&p.buckets);
        }
        if self.merged.is_empty() {
            return None;
        }
        self.merged.sort_unstable_by_key(|b| b.0);
        rank_value(&self.merged, q)
    }
}

/// The representative value of the bucket holding the item of rank `floor(q·(n−1))`
/// in `buckets` (sorted by key, duplicates allowed).
fn rank_value(buckets: &[(i32, u32)], q: f64) -> Option<f64> {
    let n: u64 = buckets.iter().map(|b| u64::from(b.1)).sum();
    if n == 0 {
        return None;
    }
    let rank = (q * (n - 1) as f64).floor() as u64;
    if rank >= n / 2 {
        // High quantiles (p95, p99) sit near the top: walk down from there. The
        // bucket holding `rank` is the first, from the top, whose start is <= rank.
        let mut below = n;
        for &(key, count) in buckets.iter().rev() {
            below -= u64::from(count);
            if below <= rank {
                return Some(bucket_value(key));
            }
        }
    } else {
        let mut seen = 0u64;
        for &(key, count) in buckets {
            seen += u64::from(count);
            if seen > rank {
                return Some(bucket_value(key));
            }
        }
    }
    buckets.last().map(|b| bucket_value(b.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact(values: &[f64], q: f64) -> f64 {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        v[(q * (v.len() - 1) as f64).floor() as usize]
    }

    fn within(est: f64, truth: f64) -> bool {
        if truth.abs() < MIN_MAGNITUDE {
            return est.abs() <= MIN_MAGNITUDE;
        }
        ((est - truth) / truth).abs() <= RELATIVE_ERROR + 1e-12
    }

    #[test]
    fn empty_has_no_quantile() {
        assert_eq!(Merger::default().quantile(std::iter::empty(), 0.5), None);
    }

    #[test]
    fn buckets_cover_their_values() {
        for v in [1e-6, 0.5, 1.0, 3.0, 1840.0, 1e9, -2.0, -0.25] {
            assert!(within(bucket_value(bucket_of(v)), v), "{v}");
        }
        assert_eq!(bucket_value(bucket_of(0.0)), 0.0);
    }

    /// Log-uniform values over `decades` decades from 1e-3, deterministic.
    fn spread(n: usize, decades: f64, seed: u64) -> Vec<f64> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                1e-3 * 10f64.powf(decades * (x % 1_000_000) as f64 / 1e6)
            })
            .collect()
    }

    #[test]
    fn a_wide_spread_is_capped_and_keeps_high_quantiles() {
        // 1e-3 .. 1e9: about 1,400 buckets' worth of spread.
        let values = spread(200_000, 12.0, 7);
        let mut s = Sketch::default();
        for &v in &values {
            s.record(v);
        }
        assert!(s.buckets().len() <= MAX_BUCKETS, "{}", s.buckets().len());
        assert!(s.heap_bytes() <= 4096, "{}", s.heap_bytes());
        let n: u64 = s.buckets().iter().map(|b| u64::from(b.1)).sum();
        assert_eq!(n, values.len() as u64, "folding loses no count");
        // The kept buckets span ~4.4 of the 12 decades: quantiles in the top
        // third stay exact to the stated error (the median is folded).
        for q in [0.7, 0.9, 0.99, 0.999, 1.0] {
            let (est, truth) = (s.quantile(q).unwrap(), exact(&values, q));
            assert!(within(est, truth), "q={q} est={est} truth={truth}");
        }
    }

    proptest! {
        /// A running window that adds parts and then subtracts them, starting
        /// anywhere, ends empty even when parts and window fold at different floors.
        #[test]
        fn folded_windows_subtract_exactly(
            seeds in prop::collection::vec(1u64..u64::MAX, 2..6),
            order in any::<u64>(),
        ) {
            let parts: Vec<Sketch> = seeds
                .iter()
                .enumerate()
                .map(|(i, &seed)| {
                    let mut p = Sketch::default();
                    for v in spread(300 * (i + 1), 3.0 + 3.0 * i as f64, seed) {
                        p.record(v);
                    }
                    p
                })
                .collect();
            let mut running = Sketch::default();
            for p in &parts {
                running.add(p);
            }
            let total: u64 = running.buckets().iter().map(|b| u64::from(b.1)).sum();
            let expected: u64 = (1..=parts.len() as u64).map(|i| 300 * i).sum();
            prop_assert_eq!(total, expected);
            let mut idx: Vec<usize> = (0..parts.len()).collect();
            idx.rotate_left((order % parts.len() as u64) as usize);
            for i in idx {
                running.subtract(&parts[i]);
            }
            prop_assert!(running.buckets().is_empty(), "{:?}", running.buckets().len());
        }

        #[test]
        fn quantiles_are_within_stated_error(
            values in prop::collection::vec(
                prop_oneof![1e-3f64..1e6, -1e3f64..-1e-3, Just(0.0)], 1..400),
            split in prop::collection::vec(0usize..4, 400),
            q in 0.0f64..=1.0,
        ) {
            // Spread the values over four sketches to exercise merging.
            let mut parts = vec![Sketch::default(); 4];
            for (v, p) in values.iter().zip(split.iter().cycle()) {
                parts[*p].record(*v);
            }
            let est = Merger::default().quantile(parts.iter(), q).unwrap();
            let truth = exact(&values, q);
            prop_assert!(within(est, truth), "q={q} est={est} truth={truth}");
            // A running window: add all parts, subtract one, equals merging the rest.
            let mut running = Sketch::default();
            for p in &parts {
                running.add(p);
            }
            running.subtract(&parts[0]);
            let rest = Merger::default().quantile(parts[1..].iter(), q);
            prop_assert_eq!(running.quantile(q), rest);
            let mut merged_rest = Sketch::default();
            for p in &parts[1..] {
                merged_rest.add(p);
            }
            prop_assert_eq!(running, merged_rest);
        }
    }
}
