//! Group keys: `service` plus a signal's `group_by` labels, interned to dense ids so
//! that per-group state lives in flat vectors and an event costs one hash lookup per
//! distinct grouping.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// Separates the parts of a composite key. The decoder rejects control characters
/// in services and labels, so no part can contain it and keys cannot collide.
const SEP: char = '\u{1f}';

/// The identity of one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupKey {
    /// The service.
    pub service: String,
    /// Values of the grouping's labels, in its order ("" when an event lacked one).
    pub labels: Vec<String>,
}

/// Interns the groups of one `group_by` list.
#[derive(Debug, Clone)]
pub struct Grouping {
    /// Label names beyond service.
    pub labels: Vec<String>,
    index: HashMap<Box<str>, u32, ahash::RandomState>,
    keys: Vec<GroupKey>,
    scratch: String,
}

/// Result of looking a group up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Existing or newly created group.
    Group(u32),
    /// New group refused: the cardinality cap is reached.
    Refused,
}

impl Grouping {
    /// An empty grouping.
    pub fn new(labels: Vec<String>) -> Grouping {
        Grouping {
            labels,
            index: HashMap::default(),
            keys: Vec::new(),
            scratch: String::new(),
        }
    }

    /// Rebuilds a grouping from its keys (snapshot restore).
    pub fn from_keys(labels: Vec<String>, keys: Vec<GroupKey>) -> Grouping {
        let mut g = Grouping::new(labels);
        for (i, k) in keys.iter().enumerate() {
            let composite = g.compose_owned(k);
            g.index.insert(composite.into_boxed_str(), i as u32);
        }
        g.keys = keys;
        g
    }

    fn compose_owned(&self, k: &GroupKey) -> String {
        let mut s = k.service.clone();
        for v in &k.labels {
            s.push(SEP);
            s.push_str(v);
        }
        s
    }

    /// The group of `e`, creating it if there is room under `cap`.
    #[inline]
    pub fn lookup(&mut self, e: &Event, cap: usize) -> Lookup {
        let key: &str = if self.labels.is_empty() {
            &e.service
        } else {
            self.scratch.clear();
            self.scratch.push_str(&e.service);
            for name in &self.labels {
                self.scratch.push(SEP);
                self.scratch.push_str(e.labels.get(name).unwrap_or(""));
            }
            &self.scratch
        };
        if let Some(&id) = self.index.get(key) {
            return Lookup::Group(id);
        }
        if self.keys.len() >= cap {
            return Lookup::Refused;
        }
        let id = self.keys.len() as u32;
        self.index.insert(key.into(), id);
        self.keys.push(GroupKey {
            service: e.service.to_string(),
            labels: self
                .labels
                .iter()
                .map(|n| e.labels.get(n).unwrap_or("").to_string())
                .collect(),
        });
        Lookup::Group(id)
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no group exists.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key of group `id`.
    pub fn key(&self, id: u32) -> &GroupKey {
        &self.keys[id as usize]
    }

    /// All keys, by id.
    pub fn keys(&self) -> &[GroupKey] {
        &self.keys
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        let per_key: usize = self
            .keys
            .iter()
            .map(|k| {
                2 * k.service.len() + k.labels.iter().map(|l| 2 * l.len() + 24).sum::<usize>() + 48
            })
            .sum();
        per_key + self.index.capacity() * (std::mem::size_of::<(Box<str>, u32)>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::decode;

    #[test]
    fn interns_and_caps() {
        let mut g = Grouping::new(vec!["region".into()]);
        let a = decode(br#"{"ts":0,"service":"a","labels":{"region":"eu"}}"#).unwrap();
        let b = decode(br#"{"ts":0,"service":"a","labels":{"region":"us"}}"#).unwrap();
        let c = decode(br#"{"ts":0,"service":"a"}"#).unwrap();
        assert_eq!(g.lookup(&a, 2), Lookup::Group(0));
        assert_eq!(g.lookup(&b, 2), Lookup::Group(1));
        assert_eq!(g.lookup(&a, 2), Lookup::Group(0));
        assert_eq!(g.lookup(&c, 2), Lookup::Refused);
        assert_eq!(g.key(1).labels, vec!["us".to_string()]);
        let r = Grouping::from_keys(g.labels.clone(), g.keys().to_vec());
        let mut r = r;
        assert_eq!(r.lookup(&b, 2), Lookup::Group(1));
    }
}
