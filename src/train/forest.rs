//! A balanced random forest from smartcore decision trees: each tree is
//! fitted on a bootstrap of equally many positive and negative rows (so the
//! rare class is not drowned without copying it fifty times) and on a random
//! third of the features (so the trees differ and one strong feature does not
//! shadow the others). smartcore's trees predict a class, not a probability,
//! so each fitted tree is converted to the core's flat [`Tree`] and its nodes
//! are given the share of positive rows that reached them; the conversion is
//! checked against smartcore's own predictions on every training row.

use anyhow::{anyhow, bail};
use forewarn_core::model::features::{CLOCK, PER_SIGNAL};
use forewarn_core::model::forest::{Node, Tree, MAX_NODES};
use forewarn_core::model::{Classifier, Forest};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::tree::decision_tree_classifier::{
    DecisionTreeClassifier, DecisionTreeClassifierParameters,
};

use super::dataset::Dataset;
use super::fit::Fitted;

/// How a forest is grown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Trees.
    pub trees: usize,
    /// Deepest split.
    pub max_depth: u16,
    /// Fewest bootstrap rows in a leaf.
    pub min_leaf: usize,
}

/// Most quiet readings kept per signal to stand in for silent ones.
const POOL: usize = 4096;

type SmartTree = DecisionTreeClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>>;

/// Fits a forest on `rows` (`labels` aligned with them).
pub fn fit(data: &Dataset, rows: &[usize], labels: &[bool], p: Params) -> anyhow::Result<Fitted> {
    let pos: Vec<usize> = rows
        .iter()
        .zip(labels)
        .filter(|r| *r.1)
        .map(|r| *r.0)
        .collect();
    let neg: Vec<usize> = rows
        .iter()
        .zip(labels)
        .filter(|r| !*r.1)
        .map(|r| *r.0)
        .collect();
    if pos.is_empty() || neg.is_empty() {
        bail!(
            "training needs both classes: {} rows precede a breach, {} do not",
            pos.len(),
            neg.len()
        );
    }
    let quiet = Quiet::new(data, &neg);
    let mut rng = SplitMix(0x5EED_F0E5_7000_0001);
    // The time of day is left out: in a history where incidents recur at
    // the same hours, a tree turns it into "when the training incidents
    // happened" (measured: 226 false pages in 2.6 days of an unseen
    // scenario with it, BENCHMARKS.md); a line through it cannot.
    let readable = data.width.saturating_sub(CLOCK.len()).max(1);
    let per_tree = (readable / 3).max(1);
    let mut trees = Vec::with_capacity(p.trees);
    for _ in 0..p.trees {
        let mut sample = Vec::with_capacity(2 * pos.len());
        for _ in 0..pos.len() {
            sample.push((pos[rng.below(pos.len())], true));
            sample.push((neg[rng.below(neg.len())], false));
        }
        let columns = rng.choose(readable, per_tree);
        trees.push(grow(data, &quiet, &mut rng, &sample, &columns, p)?);
    }
    let forest = Forest {
        features: data.width,
        trees,
    };
    forest
        .check()
        .map_err(|e| anyhow!("converted forest: {e}"))?;
    Ok(Fitted {
        classifier: Classifier::Forest(forest),
        // Each tree saw as many negatives as positives: undo that on the odds.
        prior_shift: (pos.len() as f64 / neg.len() as f64).ln(),
    })
}

/// One forest of the trees of `fits` (forests, each from one fold), with
/// their mean prior shift: its probability is the mean of theirs.
pub fn union(fits: Vec<Fitted>) -> anyhow::Result<Fitted> {
    let mut trees = Vec::new();
    let (mut features, mut shift) = (0, 0.0);
    let n = fits.len();
    for f in fits {
        let Classifier::Forest(forest) = f.classifier else {
            bail!("a union of forests given another classifier");
        };
        features = forest.features;
        shift += f.prior_shift / n as f64;
        trees.extend(forest.trees);
    }
    let forest = Forest { features, trees };
    forest.check().map_err(|e| anyhow!("forest union: {e}"))?;
    Ok(Fitted {
        classifier: Classifier::Forest(forest),
        prior_shift: shift,
    })
}

/// One tree on `sample` (row index, whether a breach is ahead) reading
/// `columns`.
fn grow(
    data: &Dataset,
    quiet: &Quiet,
    rng: &mut SplitMix,
    sample: &[(usize, bool)],
    columns: &[usize],
    p: Params,
) -> anyhow::Result<Tree> {
    let n = sample.len();
    // Row-major at full width (the walk reads original feature indices) and
    // column-major over `columns` (as DenseMatrix stores it without a copy).
    let mut rows = vec![0f32; n * data.width];
    let mut values = vec![0f64; n * columns.len()];
    for (r, &(i, _)) in sample.iter().enumerate() {
        let row = &mut rows[r * data.width..(r + 1) * data.width];
        row.copy_from_slice(data.row(i));
        quiet.stand_in(row, rng);
        for (c, &j) in columns.iter().enumerate() {
            values[c * n + r] = f64::from(row[j]);
        }
    }
    let y: Vec<u32> = sample.iter().map(|&(_, ahead)| u32::from(ahead)).collect();
    let x = DenseMatrix::new(n, columns.len(), values, true).map_err(|e| anyhow!("{e}"))?;
    let params = DecisionTreeClassifierParameters::default()
        .with_max_depth(p.max_depth)
        .with_min_samples_leaf(p.min_leaf);
    let fitted: SmartTree =
        DecisionTreeClassifier::fit(&x, &y, params).map_err(|e| anyhow!("tree fit: {e}"))?;
    let (mut tree, outputs) = convert(&fitted, columns)?;
    let predicted = fitted
        .predict(&x)
        .map_err(|e| anyhow!("tree predict: {e}"))?;
    let mut counts = vec![(0u32, 0u32); tree.nodes.len()];
    for (r, row) in rows.chunks_exact(data.width).enumerate() {
        let leaf = visit(&tree, row, &mut counts, y[r] == 1);
        if outputs[leaf] != predicted[r] {
            bail!(
                "tree conversion disagrees with smartcore at row {}",
                sample[r].0
            );
        }
    }
    for (node, (pos, all)) in tree.nodes.iter_mut().zip(counts) {
        // Laplace's rule keeps a small pure leaf from claiming certainty.
        node.value = (f64::from(pos) + 1.0) as f32 / (f64::from(all) + 2.0) as f32;
    }
    Ok(tree)
}

/// The flat form of a smartcore tree (its nodes are read from its serde
/// form, the only public view of them), with each node's predicted class.
fn convert(t: &SmartTree, columns: &[usize]) -> anyhow::Result<(Tree, Vec<u32>)> {
    let v = serde_json::to_value(t)?;
    let nodes = v["nodes"]
        .as_array()
        .ok_or_else(|| anyhow!("smartcore tree without nodes"))?;
    if nodes.is_empty() || nodes.len() > MAX_NODES {
        bail!("smartcore tree with {} nodes", nodes.len());
    }
    let classes: Vec<u32> = serde_json::from_value(v["classes"].clone())?;
    let mut out = Vec::with_capacity(nodes.len());
    let mut outputs = Vec::with_capacity(nodes.len());
    for (i, n) in nodes.iter().enumerate() {
        let index = |key: &str| n[key].as_u64().map(|c| c as u32);
        let output = index("output").ok_or_else(|| anyhow!("node {i} without output"))?;
        outputs.push(classes[output as usize]);
        match (
            index("true_child"),
            index("false_child"),
            n["split_value"].as_f64(),
        ) {
            (Some(left), Some(right), Some(split)) => {
                let feature = index("split_feature").ok_or_else(|| anyhow!("node {i}"))?;
                out.push(Node {
                    feature: columns[feature as usize] as u32,
                    threshold: f32_at_most(split),
                    left,
                    right,
                    value: 0.0,
                });
            }
            _ => out.push(Node::leaf(i as u32, 0.0)),
        }
    }
    // Depth-first, so a walk going left stays on its cache line (smartcore
    // numbers nodes as it grows them).
    let (tree, order) = Tree { nodes: out }.depth_first();
    let outputs = order.iter().map(|&old| outputs[old as usize]).collect();
    Ok((tree, outputs))
}

/// The largest f32 not above `v`: for every f32 `x`, `x <= f32_at_most(v)`
/// exactly when `x <= v`, so the f32 walk splits as smartcore's f64 one did.
fn f32_at_most(v: f64) -> f32 {
    let t = v as f32;
    if f64::from(t) > v {
        below(t)
    } else {
        t
    }
}

/// The f32 just below finite `t` (`f32::next_down`, newer than the MSRV).
fn below(t: f32) -> f32 {
    let bits = t.to_bits();
    if t == 0.0 {
        -f32::from_bits(1)
    } else if t > 0.0 {
        f32::from_bits(bits - 1)
    } else {
        f32::from_bits(bits + 1)
    }
}

/// Walks `x` down `tree`, counting it (and whether it is positive) at every
/// node passed; returns the leaf's index.
fn visit(tree: &Tree, x: &[f32], counts: &mut [(u32, u32)], positive: bool) -> usize {
    let mut at = 0usize;
    loop {
        counts[at].0 += u32::from(positive);
        counts[at].1 += 1;
        let n = &tree.nodes[at];
        if n.left == n.right {
            return at;
        }
        let f = n.feature as usize;
        at = if x[f] <= n.threshold { n.left } else { n.right } as usize;
    }
}

/// Silent signals, read as a quiet one. A signal's features are exactly 0
/// where it has no data or never moves (a service without requests, a rate
/// that is always 0), so exact zeros spell out *which* service a row is; a
/// tree splits on that and pages the services that failed in training
/// (measured: 169 of 180 false pages on an unseen scenario were on one such
/// service, BENCHMARKS.md). In training, a silent signal's features are
/// replaced by those of a random moving reading of the same signal from a
/// row with no breach ahead, so silence teaches the trees what quiet does;
/// at inference silence reads 0, "at its baseline", as a quiet signal would.
struct Quiet {
    /// Per signal: [`PER_SIGNAL`] features of quiet rows where it moved.
    pools: Vec<Vec<f32>>,
}

impl Quiet {
    fn new(data: &Dataset, negatives: &[usize]) -> Quiet {
        let w = PER_SIGNAL.len();
        let signals = data.width.saturating_sub(CLOCK.len()) / w;
        let stride = (negatives.len() / POOL).max(1);
        let mut pools = vec![Vec::new(); signals];
        for &i in negatives.iter().step_by(stride) {
            let row = data.row(i);
            for (s, pool) in pools.iter_mut().enumerate() {
                let f = &row[s * w..(s + 1) * w];
                if f.iter().any(|&x| x != 0.0) {
                    pool.extend_from_slice(f);
                }
            }
        }
        Quiet { pools }
    }

    /// Replaces each silent signal's features in `row`.
    fn stand_in(&self, row: &mut [f32], rng: &mut SplitMix) {
        let w = PER_SIGNAL.len();
        for (s, pool) in self.pools.iter().enumerate() {
            let f = &mut row[s * w..(s + 1) * w];
            if pool.is_empty() || f.iter().any(|&x| x != 0.0) {
                continue;
            }
            let k = rng.below(pool.len() / w) * w;
            f.copy_from_slice(&pool[k..k + w]);
        }
    }
}

/// A small deterministic generator (SplitMix64): the same data grows the
/// same forest.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// `k` distinct indices below `n`, sorted.
    fn choose(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut all: Vec<usize> = (0..n).collect();
        for i in 0..k.min(n) {
            let j = i + self.below(n - i);
            all.swap(i, j);
        }
        all.truncate(k.min(n));
        all.sort_unstable();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two signals' features and the clock: a breach ahead only when both
    /// signals' deviations are high; their other features are noise.
    fn interaction(rows: usize) -> (Dataset, Vec<bool>) {
        let mut data = Dataset {
            width: 2 * PER_SIGNAL.len() + CLOCK.len(),
            ..Dataset::default()
        };
        let mut labels = Vec::new();
        let mut rng = SplitMix(7);
        for i in 0..rows {
            let mut u = || rng.below(100) as f32 / 10.0;
            let (a, b) = (u(), u());
            data.x.extend([a, u(), u(), b, u(), u(), 0.0, 1.0]);
            data.at.push(i as i64);
            data.service.push(0);
            labels.push(a > 7.0 && b > 7.0);
        }
        (data, labels)
    }

    #[test]
    fn a_forest_learns_an_interaction_a_line_cannot() {
        let (data, labels) = interaction(3000);
        let rows: Vec<usize> = (0..3000).collect();
        let params = Params {
            trees: 30,
            max_depth: 6,
            min_leaf: 5,
        };
        let fitted = fit(&data, &rows, &labels, params).unwrap();
        let scores: Vec<f64> = rows
            .iter()
            .map(|&i| fitted.probability(data.row(i)))
            .collect();
        let auc = super::super::fit::auc(&scores, &labels);
        assert!(auc > 0.97, "AUC {auc}");
        // The interacting features carry the explanation, the noise little,
        // and the clock nothing (no tree reads it).
        let mut c = [0.0; 8];
        let x = [9.5, 5.0, 5.0, 9.5, 5.0, 5.0, 0.0, 1.0];
        fitted.classifier.contributions(&x, &mut c);
        assert!(c[0] > 0.0 && c[3] > 0.0, "{c:?}");
        assert!(c[0] > c[1] && c[3] > c[4], "{c:?}");
        assert_eq!((c[6], c[7]), (0.0, 0.0));
        // The same data grows the same forest.
        let again = fit(&data, &rows, &labels, params).unwrap();
        assert_eq!(again.classifier, fitted.classifier);
    }

    #[test]
    fn a_silent_signal_takes_a_quiet_reading_of_itself() {
        let (mut data, _) = interaction(200);
        // Signal 1 silent in row 0.
        data.x[3..6].fill(0.0);
        let negatives: Vec<usize> = (1..200).collect();
        let quiet = Quiet::new(&data, &negatives);
        let mut row = data.row(0).to_vec();
        quiet.stand_in(&mut row, &mut SplitMix(1));
        assert_eq!(row[..3], data.row(0)[..3], "a moving signal is kept");
        assert!(row[3..6].iter().any(|&x| x != 0.0));
        let drawn = (1..200).any(|i| data.row(i)[3..6] == row[3..6]);
        assert!(drawn, "a reading of the same signal: {row:?}");
    }

    #[test]
    fn thresholds_split_f32_values_as_f64_ones() {
        for v in [0.1f64, 1.0 / 3.0, -2.5, 1e-30, 12345.678] {
            let t = f32_at_most(v);
            assert!(f64::from(t) <= v);
            // The next f32 up is above v: t is the largest not above it.
            let up = if t >= 0.0 {
                f32::from_bits(t.to_bits() + 1)
            } else {
                -below(-t)
            };
            assert!(f64::from(up) > v, "{v}: {t} then {up}");
            assert!(below(t) < t);
        }
    }
}
