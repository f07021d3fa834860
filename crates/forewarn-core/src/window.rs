//! Panes and the windows built from them.
//!
//! A signal's window of length `W` sliding by `S` is cut into panes of
//! `gcd(W, S)`. Each group keeps a fixed ring of panes long enough to hold every
//! window that can still be evaluated plus the allowed lateness, so writing an event
//! is one index computation and a window is a merge of `W / pane` small structs.

use serde::{Deserialize, Serialize};

use crate::config::{Aggregate, SignalDef};
use crate::sketch::{Merger, Sketch};
use crate::time::Millis;

/// Mergeable aggregate of one pane.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pane {
    /// Pane index (`ts / pane`); `i64::MIN` for a never-used slot.
    pub idx: i64,
    /// Matching events (rate numerator), or values recorded.
    pub n: u32,
    /// Rate denominator.
    pub d: u32,
    /// Sum (sum, mean) or maximum (max) of the field.
    pub v: f64,
}

impl Pane {
    /// An unused slot.
    pub const EMPTY: Pane = Pane {
        idx: i64::MIN,
        n: 0,
        d: 0,
        v: 0.0,
    };
    fn reset(idx: i64) -> Pane {
        Pane { idx, ..Pane::EMPTY }
    }
}

/// Number of ring slots a group needs for this signal.
pub fn ring_len(sig: &SignalDef, allowed_lateness: Millis) -> usize {
    // Windows not yet evaluated start no earlier than watermark − window − slide, and
    // accepted events are at most `allowed_lateness` past the watermark.
    let span = sig.window + sig.slide + allowed_lateness;
    (span / sig.pane + 2) as usize
}

/// The value of a signal over one window, and the events behind it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowValue {
    /// The aggregate, `None` when it is undefined (no events for rate, mean, …).
    pub value: Option<f64>,
    /// Events that make up the value (the denominator for rate).
    pub events: u64,
}

/// One signal's panes for all groups, flat: group `g` owns slots `g*ring..(g+1)*ring`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PaneStore {
    ring: usize,
    panes: Vec<Pane>,
    sketches: Vec<Sketch>,
    quantile: bool,
}

impl PaneStore {
    /// Empty store for a signal.
    pub fn new(sig: &SignalDef, allowed_lateness: Millis) -> PaneStore {
        PaneStore {
            ring: ring_len(sig, allowed_lateness),
            panes: Vec::new(),
            sketches: Vec::new(),
            quantile: matches!(sig.aggregate, Aggregate::Quantile(_)),
        }
    }

    /// Slots per group.
    pub fn ring(&self) -> usize {
        self.ring
    }

    /// Groups with storage.
    pub fn groups(&self) -> usize {
        self.panes.len() / self.ring.max(1)
    }

    /// Makes room for group `g` (allocates only when a new group appears).
    pub fn ensure(&mut self, g: usize) {
        let need = (g + 1) * self.ring;
        if self.panes.len() < need {
            self.panes.resize(need, Pane::EMPTY);
            if self.quantile {
                self.sketches.resize_with(need, Sketch::default);
            }
        }
    }

    /// The slot for pane `idx` of group `g`, reset if it held an older pane.
    #[inline]
    pub fn slot(&mut self, g: usize, idx: i64) -> (&mut Pane, Option<&mut Sketch>) {
        let i = g * self.ring + idx.rem_euclid(self.ring as i64) as usize;
        let pane = &mut self.panes[i];
        let fresh = pane.idx != idx;
        if fresh {
            *pane = Pane::reset(idx);
        }
        let sketch = if self.quantile {
            let s = &mut self.sketches[i];
            if fresh {
                s.clear();
            }
            Some(s)
        } else {
            None
        };
        (pane, sketch)
    }

    /// The signal's value for group `g` over panes `first..last` (exclusive).
    pub fn window(
        &self,
        g: usize,
        first: i64,
        last: i64,
        agg: Aggregate,
        merger: &mut Merger,
    ) -> WindowValue {
        let base = g * self.ring;
        if base + self.ring > self.panes.len() {
            return empty_value(agg);
        }
        let ring = &self.panes[base..base + self.ring];
        let (mut n, mut d, mut sum, mut max) = (0u64, 0u64, 0.0f64, f64::NEG_INFINITY);
        for idx in first..last {
            let p = &ring[idx.rem_euclid(self.ring as i64) as usize];
            if p.idx == idx {
                n += u64::from(p.n);
                d += u64::from(p.d);
                sum += p.v;
                if p.n > 0 {
                    max = max.max(p.v);
                }
            }
        }
        match agg {
            Aggregate::Count => WindowValue {
                value: Some(n as f64),
                events: n,
            },
            Aggregate::Sum => WindowValue {
                value: Some(sum),
                events: n,
            },
            Aggregate::Rate => WindowValue {
                value: (d > 0).then(|| n as f64 / d as f64),
                events: d,
            },
            Aggregate::Mean => WindowValue {
                value: (n > 0).then(|| sum / n as f64),
                events: n,
            },
            Aggregate::Max => WindowValue {
                value: (n > 0).then_some(max),
                events: n,
            },
            Aggregate::Quantile(q) => {
                let sk = &self.sketches[base..base + self.ring];
                let parts = (first..last).filter_map(|idx| {
                    let i = idx.rem_euclid(self.ring as i64) as usize;
                    (ring[i].idx == idx).then_some(&sk[i])
                });
                WindowValue {
                    value: if n > 0 {
                        merger.quantile(parts, q)
                    } else {
                        None
                    },
                    events: n,
                }
            }
        }
    }

    /// Approximate bytes held (panes plus sketch buckets).
    pub fn heap_bytes(&self) -> usize {
        self.panes.capacity() * std::mem::size_of::<Pane>()
            + self.sketches.capacity() * std::mem::size_of::<Sketch>()
            + self.sketches.iter().map(Sketch::heap_bytes).sum::<usize>()
    }
}

/// The value of a window with no events.
pub fn empty_value(agg: Aggregate) -> WindowValue {
    let value = match agg {
        Aggregate::Count | Aggregate::Sum => Some(0.0),
        _ => None,
    };
    WindowValue { value, events: 0 }
}

/// Records one event in a pane.
#[inline]
pub fn record(
    pane: &mut Pane,
    sketch: Option<&mut Sketch>,
    agg: Aggregate,
    num: bool,
    den: bool,
    value: Option<f64>,
) {
    match agg {
        Aggregate::Count => pane.n = pane.n.saturating_add(u32::from(num)),
        Aggregate::Rate => {
            pane.n = pane.n.saturating_add(u32::from(num));
            pane.d = pane.d.saturating_add(u32::from(den));
        }
        Aggregate::Sum | Aggregate::Mean => {
            if let (true, Some(x)) = (num, value) {
                pane.n = pane.n.saturating_add(1);
                pane.v += x;
            }
        }
        Aggregate::Max => {
            if let (true, Some(x)) = (num, value) {
                pane.v = if pane.n == 0 { x } else { pane.v.max(x) };
                pane.n = pane.n.saturating_add(1);
            }
        }
        Aggregate::Quantile(_) => {
            if let (true, Some(x), Some(s)) = (num, value, sketch) {
                pane.n = pane.n.saturating_add(1);
                s.record(x);
            }
        }
    }
}
