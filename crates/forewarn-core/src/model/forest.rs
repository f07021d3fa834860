//! Inference of a fitted forest of decision trees: the mean of the trees'
//! leaf probabilities, and each feature's share of it by path attribution
//! (every split moves the probability from its node's to its child's; the
//! move is credited to the split's feature, so the shares add up exactly to
//! the forest's probability minus its prior).
//!
//! Trees are kept flat (nodes in one vector, children by index), so a walk is
//! a few comparisons and no allocation.

use serde::{Deserialize, Serialize};

/// Most nodes a tree may hold (a depth-12 binary tree has 8,191): a bound a
/// malformed file cannot exceed, so inference never walks forever.
pub const MAX_NODES: usize = 1 << 13;

/// One node: a split (`left` is taken when `x[feature] <= threshold`) or, when
/// `left == right`, a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Feature index the split reads.
    pub feature: u32,
    /// Split value.
    pub threshold: f32,
    /// Child when `x[feature] <= threshold`.
    pub left: u32,
    /// Child otherwise.
    pub right: u32,
    /// P(positive) of the training rows that reached this node.
    pub value: f32,
}

impl Node {
    /// A leaf at index `at` holding `value`.
    pub fn leaf(at: u32, value: f32) -> Node {
        Node {
            feature: 0,
            threshold: 0.0,
            left: at,
            right: at,
            value,
        }
    }

    fn is_leaf(&self) -> bool {
        self.left == self.right
    }
}

/// A decision tree; node 0 is the root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// The nodes, parents before children.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// This tree re-laid in depth-first order, with the old index of each new
    /// node: a split's left child is then the next node, so a walk that goes
    /// left stays on the cache line it is on. The nodes must form a tree
    /// rooted at 0 (as [`Forest::check`] requires).
    pub fn depth_first(&self) -> (Tree, Vec<u32>) {
        let mut order = Vec::with_capacity(self.nodes.len());
        let mut stack = vec![0u32];
        while let Some(i) = stack.pop() {
            order.push(i);
            let n = &self.nodes[i as usize];
            if !n.is_leaf() {
                stack.extend([n.right, n.left]);
            }
        }
        let mut at = vec![0u32; self.nodes.len()];
        for (new, &old) in order.iter().enumerate() {
            at[old as usize] = new as u32;
        }
        let relaid = |(new, &old): (usize, &u32)| {
            let n = self.nodes[old as usize];
            if n.is_leaf() {
                Node::leaf(new as u32, n.value)
            } else {
                Node {
                    left: at[n.left as usize],
                    right: at[n.right as usize],
                    ..n
                }
            }
        };
        let nodes = order.iter().enumerate().map(relaid).collect();
        (Tree { nodes }, order)
    }

    /// The leaf `x` reaches, calling `step(feature, from, to)` for each split
    /// on the way.
    fn walk(&self, x: &[f32], mut step: impl FnMut(usize, f32, f32)) -> f32 {
        let mut n = &self.nodes[0];
        while !n.is_leaf() {
            let f = n.feature as usize;
            let next = if x[f] <= n.threshold { n.left } else { n.right };
            let child = &self.nodes[next as usize];
            step(f, n.value, child.value);
            n = child;
        }
        n.value
    }
}

/// Trees whose leaf probabilities are averaged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forest {
    /// Features each tree reads.
    pub features: usize,
    /// The trees.
    pub trees: Vec<Tree>,
}

impl Forest {
    /// Checks every tree is well formed: children after their parent and in
    /// range (so every walk ends), features in range, finite values in [0, 1].
    pub fn check(&self) -> Result<(), String> {
        if self.trees.is_empty() {
            return Err("a forest without trees".into());
        }
        for (t, tree) in self.trees.iter().enumerate() {
            if tree.nodes.is_empty() || tree.nodes.len() > MAX_NODES {
                return Err(format!(
                    "tree {t} has {} nodes (1 to {MAX_NODES})",
                    tree.nodes.len()
                ));
            }
            for (i, n) in tree.nodes.iter().enumerate() {
                let children_ok = n.is_leaf()
                    || [n.left, n.right]
                        .iter()
                        .all(|&c| c as usize > i && (c as usize) < tree.nodes.len());
                if !children_ok || (!n.is_leaf() && n.feature as usize >= self.features) {
                    return Err(format!(
                        "tree {t} node {i}: a child or feature out of range"
                    ));
                }
                let finite = n.value.is_finite() && n.threshold.is_finite();
                if !(finite && (0.0..=1.0).contains(&n.value)) {
                    return Err(format!("tree {t} node {i}: a value is not a probability"));
                }
            }
        }
        Ok(())
    }

    /// The mean leaf probability of `x`.
    pub fn probability(&self, x: &[f32]) -> f64 {
        let sum: f64 = self
            .trees
            .iter()
            .map(|t| f64::from(t.walk(x, |_, _, _| {})))
            .sum();
        sum / self.trees.len() as f64
    }

    /// Each feature's share of [`Forest::probability`] above the trees' mean
    /// root value, into `out` (one per feature).
    pub fn contributions(&self, x: &[f32], out: &mut [f64]) {
        out.fill(0.0);
        let k = 1.0 / self.trees.len() as f64;
        for t in &self.trees {
            t.walk(x, |f, from, to| out[f] += k * f64::from(to - from));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// x0 <= 1 → 0.1; else x1 <= 0 → 0.5, else 0.9. Root value 0.3.
    fn tree() -> Tree {
        let split = |feature, threshold, left, right, value| Node {
            feature,
            threshold,
            left,
            right,
            value,
        };
        Tree {
            nodes: vec![
                split(0, 1.0, 1, 2, 0.3),
                Node::leaf(1, 0.1),
                split(1, 0.0, 3, 4, 0.7),
                Node::leaf(3, 0.5),
                Node::leaf(4, 0.9),
            ],
        }
    }

    #[test]
    fn a_walk_follows_the_splits_and_shares_add_up() {
        let f = Forest {
            features: 2,
            trees: vec![tree(), tree()],
        };
        assert!(f.check().is_ok());
        assert!((f.probability(&[0.0, 5.0]) - 0.1).abs() < 1e-6);
        assert!((f.probability(&[2.0, 0.0]) - 0.5).abs() < 1e-6);
        assert!((f.probability(&[2.0, 1.0]) - 0.9).abs() < 1e-6);
        let mut c = [0.0; 2];
        f.contributions(&[2.0, 1.0], &mut c);
        assert!(
            (c[0] - 0.4).abs() < 1e-6 && (c[1] - 0.2).abs() < 1e-6,
            "{c:?}"
        );
        assert!((0.3 + c[0] + c[1] - f.probability(&[2.0, 1.0])).abs() < 1e-6);
    }

    #[test]
    fn a_depth_first_layout_walks_alike_with_left_children_next() {
        // Breadth-first: x0 <= 0 → (x1 <= 0 → 0.2, else 0.4), else 0.8.
        let split = |feature, left, right| Node {
            feature,
            threshold: 0.0,
            left,
            right,
            value: 0.5,
        };
        let t = Tree {
            nodes: vec![
                split(0, 1, 2),
                split(1, 3, 4),
                Node::leaf(2, 0.8),
                Node::leaf(3, 0.2),
                Node::leaf(4, 0.4),
            ],
        };
        let (relaid, order) = t.depth_first();
        assert_eq!(order, [0, 1, 3, 4, 2]);
        for (i, n) in relaid.nodes.iter().enumerate() {
            if !n.is_leaf() {
                assert_eq!(n.left as usize, i + 1, "{relaid:?}");
            }
        }
        let forest = |t: Tree| Forest {
            features: 2,
            trees: vec![t],
        };
        let (before, after) = (forest(t), forest(relaid));
        assert!(after.check().is_ok());
        for x in [[-1.0, -1.0], [-1.0, 1.0], [1.0, 0.0]] {
            assert_eq!(before.probability(&x), after.probability(&x));
        }
    }

    #[test]
    fn malformed_trees_are_refused() {
        let mut t = tree();
        t.nodes[2].left = 1; // points back: a walk could loop
        let f = Forest {
            features: 2,
            trees: vec![t],
        };
        assert!(f.check().is_err());
        let mut t = tree();
        t.nodes[0].feature = 7;
        assert!(Forest {
            features: 2,
            trees: vec![t]
        }
        .check()
        .is_err());
        let mut t = tree();
        t.nodes[3].value = f32::NAN;
        assert!(Forest {
            features: 2,
            trees: vec![t]
        }
        .check()
        .is_err());
        assert!(Forest {
            features: 2,
            trees: vec![]
        }
        .check()
        .is_err());
    }
}
