//! Group keys: `service` plus a signal's `group_by` labels, interned to dense ids so
//! that per-group state lives in flat vectors and an event costs one hash lookup per
//! distinct grouping.

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

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

/// Interns the groups of one `group_by` list. Ids of released groups are reused,
/// so the state vectors indexed by id never outgrow `max_groups`.
#[derive(Debug, Clone)]
pub struct Grouping {
    /// Label names beyond service.
    pub labels: Vec<String>,
    index: HashMap<IndexKey, u32, ahash::RandomState>,
    /// By id; a released id holds a key with an empty service (the decoder
    /// rejects empty services, so no live group has one).
    keys: Vec<GroupKey>,
    /// Released ids, reused lowest first before new ones are allocated (an
    /// order a snapshot reproduces, so a restored engine assigns the same ids).
    free: BTreeSet<u32>,
    scratch: String,
}

/// Key bytes held inside the index's own entry: a service name with a label or
/// two fits, so a lookup compares bytes already in the cache line it probed
/// instead of following a pointer to a string elsewhere (at 10,000 groups that
/// second miss was most of the lookup's cost).
const INLINE_KEY: usize = 30;

/// A composite key as the index stores it: inline when short, boxed otherwise.
/// It hashes and compares as its bytes, so the index is queried with `&[u8]`.
#[derive(Debug, Clone)]
enum IndexKey {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

impl IndexKey {
    fn new(key: &[u8]) -> IndexKey {
        if key.len() <= INLINE_KEY {
            let mut bytes = [0; INLINE_KEY];
            bytes[..key.len()].copy_from_slice(key);
            IndexKey::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            IndexKey::Heap(key.into())
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            IndexKey::Inline { .. } => 0,
            IndexKey::Heap(b) => b.len(),
        }
    }
}

impl Borrow<[u8]> for IndexKey {
    fn borrow(&self) -> &[u8] {
        match self {
            IndexKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            IndexKey::Heap(b) => b,
        }
    }
}

// Hash and equality must agree with `[u8]`'s, the type lookups borrow as.
impl Hash for IndexKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Borrow::<[u8]>::borrow(self).hash(state);
    }
}

impl PartialEq for IndexKey {
    fn eq(&self, other: &IndexKey) -> bool {
        Borrow::<[u8]>::borrow(self) == Borrow::<[u8]>::borrow(other)
    }
}

impl Eq for IndexKey {}

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
            free: BTreeSet::new(),
            scratch: String::new(),
        }
    }

    /// Rebuilds a grouping from its keys (snapshot restore).
    pub fn from_keys(labels: Vec<String>, keys: Vec<GroupKey>) -> Grouping {
        let mut g = Grouping::new(labels);
        for (i, k) in keys.iter().enumerate() {
            if k.service.is_empty() {
                g.free.insert(i as u32);
                continue;
            }
            let composite = g.compose_owned(k);
            g.index
                .insert(IndexKey::new(composite.as_bytes()), i as u32);
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
        if let Some(&id) = self.index.get(key.as_bytes()) {
            return Lookup::Group(id);
        }
        if self.live() >= cap {
            return Lookup::Refused;
        }
        let id = self.free.pop_first().unwrap_or(self.keys.len() as u32);
        self.index.insert(IndexKey::new(key.as_bytes()), id);
        let key = GroupKey {
            service: e.service.to_string(),
            labels: self
                .labels
                .iter()
                .map(|n| e.labels.get(n).unwrap_or("").to_string())
                .collect(),
        };
        match self.keys.get_mut(id as usize) {
            Some(slot) => *slot = key,
            None => self.keys.push(key),
        }
        Lookup::Group(id)
    }

    /// Forgets group `id`: its key no longer resolves, and the id is handed to
    /// the next new group. The caller resets the state stored under the id.
    pub fn release(&mut self, id: u32) {
        if self.is_free(id) {
            return;
        }
        let composite = self.compose_owned(&self.keys[id as usize]);
        self.index.remove(composite.as_bytes());
        self.keys[id as usize] = GroupKey {
            service: String::new(),
            labels: Vec::new(),
        };
        self.free.insert(id);
    }

    /// Whether `id` is a released slot (no group).
    pub fn is_free(&self, id: u32) -> bool {
        self.keys[id as usize].service.is_empty()
    }

    /// Number of id slots (live groups and released ones): the extent of the
    /// state vectors indexed by group id.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Number of live groups.
    pub fn live(&self) -> usize {
        self.keys.len() - self.free.len()
    }

    /// True when no group exists.
    pub fn is_empty(&self) -> bool {
        self.live() == 0
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
        let spilled: usize = self.index.keys().map(IndexKey::heap_bytes).sum();
        per_key + spilled + self.index.capacity() * (std::mem::size_of::<(IndexKey, u32)>() + 1)
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

    #[test]
    fn released_ids_are_reused_and_keys_forgotten() {
        let mut g = Grouping::new(vec!["region".into()]);
        let line = |s: &str| format!(r#"{{"ts":0,"service":"{s}","labels":{{"region":"eu"}}}}"#);
        let (la, lb, lc) = (line("a"), line("b"), line("c"));
        let a = decode(la.as_bytes()).unwrap();
        let b = decode(lb.as_bytes()).unwrap();
        let c = decode(lc.as_bytes()).unwrap();
        assert_eq!(g.lookup(&a, 2), Lookup::Group(0));
        assert_eq!(g.lookup(&b, 2), Lookup::Group(1));
        assert_eq!(g.lookup(&c, 2), Lookup::Refused);
        g.release(0);
        assert!(g.is_free(0));
        assert_eq!((g.len(), g.live()), (2, 1));
        // The freed slot goes to the newcomer; the old key no longer resolves.
        assert_eq!(g.lookup(&c, 2), Lookup::Group(0));
        assert_eq!(g.key(0).service, "c");
        assert_eq!(g.lookup(&a, 2), Lookup::Refused);
        assert_eq!(g.lookup(&c, 2), Lookup::Group(0));
        // A snapshot keeps released slots released.
        g.release(1);
        let mut r = Grouping::from_keys(g.labels.clone(), g.keys().to_vec());
        assert_eq!((r.len(), r.live()), (2, 1));
        assert_eq!(r.lookup(&c, 2), Lookup::Group(0));
        assert_eq!(r.lookup(&a, 2), Lookup::Group(1));
    }

    #[test]
    fn keys_too_long_to_sit_inline_resolve_and_release_alike() {
        let mut g = Grouping::new(vec!["region".into()]);
        let long = "a-service-name-longer-than-the-inline-key-holds";
        let line = |s: &str| format!(r#"{{"ts":0,"service":"{s}","labels":{{"region":"eu"}}}}"#);
        let (ll, ls) = (line(long), line("short"));
        let (l, s) = (
            decode(ll.as_bytes()).unwrap(),
            decode(ls.as_bytes()).unwrap(),
        );
        assert_eq!(g.lookup(&l, 4), Lookup::Group(0));
        assert_eq!(g.lookup(&s, 4), Lookup::Group(1));
        assert_eq!(g.lookup(&l, 4), Lookup::Group(0));
        assert!(g.heap_bytes() > 0);
        g.release(0);
        assert_eq!(g.live(), 1);
        assert_eq!(g.lookup(&s, 4), Lookup::Group(1));
        // The long key no longer resolves: it is created afresh, in the freed id.
        assert_eq!(g.lookup(&l, 4), Lookup::Group(0));
        assert_eq!(g.live(), 2);
    }
}
