//! Panes and the windows built from them.
//!
//! A signal's window of length `W` sliding by `S` is cut into panes of
//! `gcd(W, S)`. Each group keeps a fixed ring of panes long enough to hold every
//! window that can still be evaluated plus the allowed lateness, so writing an event
//! is one index computation and a window is a merge of `W / pane` small structs.

use serde::{Deserialize, Serialize};

use crate::config::{Aggregate, SignalDef};
use crate::sketch::Sketch;
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

/// Per-group bookkeeping of one signal, kept together so an event touches one
/// cache line here plus the pane it lands in.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Head {
    /// Newest time of any event recorded for the group (finds empty windows).
    pub last_touch: Millis,
    /// Newest time of an event matching the filter (absent rules).
    pub last_seen: Millis,
    /// Window end the accumulator describes; MIN when there is none.
    acc_at: Millis,
    /// Slides applied incrementally since the last full recompute.
    acc_steps: u32,
    acc_n: u64,
    acc_d: u64,
    acc_sum: f64,
}

impl Head {
    const NEW: Head = Head {
        last_touch: Millis::MIN,
        last_seen: Millis::MIN,
        acc_at: Millis::MIN,
        acc_steps: 0,
        acc_n: 0,
        acc_d: 0,
        acc_sum: 0.0,
    };
}

/// One signal's state for all groups. Panes are flat: group `g` owns slots
/// `g*ring..(g+1)*ring`.
///
/// Windows are evaluated incrementally: each group keeps an accumulator of the
/// last window it was evaluated on, and sliding by one `slide` adds the panes that
/// entered and subtracts those that left, instead of re-merging `window / pane`
/// panes. After a gap, or every `window / slide` slides (bounding float drift in
/// sums), the window is recomputed from its panes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PaneStore {
    ring: usize,
    quantile: bool,
    heads: Vec<Head>,
    panes: Vec<Pane>,
    /// Per slot, for quantile signals.
    sketches: Vec<Sketch>,
    /// Per group, the running window sketch, for quantile signals.
    window_sketches: Vec<Sketch>,
}

impl PaneStore {
    /// Empty store for a signal.
    pub fn new(sig: &SignalDef, allowed_lateness: Millis) -> PaneStore {
        PaneStore {
            ring: ring_len(sig, allowed_lateness),
            quantile: matches!(sig.aggregate, Aggregate::Quantile(_)),
            ..PaneStore::default()
        }
    }

    /// Slots per group.
    pub fn ring(&self) -> usize {
        self.ring
    }

    /// Groups with storage.
    pub fn groups(&self) -> usize {
        self.heads.len()
    }

    /// The bookkeeping of group `g`, if it has storage.
    #[inline]
    pub fn head(&self, g: usize) -> Option<&Head> {
        self.heads.get(g)
    }

    /// Makes room for group `g` (allocates only when a new group appears).
    pub fn ensure(&mut self, g: usize) {
        if self.heads.len() > g {
            return;
        }
        self.heads.resize(g + 1, Head::NEW);
        self.panes.resize((g + 1) * self.ring, Pane::EMPTY);
        if self.quantile {
            self.sketches
                .resize_with((g + 1) * self.ring, Sketch::default);
            self.window_sketches.resize_with(g + 1, Sketch::default);
        }
    }

    /// Records one event for group `g` (which must exist): its pane, and the
    /// group's newest-event times.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        g: usize,
        ts: Millis,
        def: &SignalDef,
        num: bool,
        den: bool,
        matched: bool,
        value: Option<f64>,
    ) {
        let idx = ts.div_euclid(def.pane);
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
        record(pane, sketch, def.aggregate, num, den, value);
        let head = &mut self.heads[g];
        head.last_touch = head.last_touch.max(ts);
        if matched {
            head.last_seen = head.last_seen.max(ts);
        }
    }

    /// The signal's value for group `g` over the window ending at `at`.
    pub fn window(&mut self, g: usize, at: Millis, def: &SignalDef) -> WindowValue {
        if g >= self.heads.len() {
            return empty_value(def.aggregate);
        }
        let ring = self.ring as i64;
        let base = g * self.ring;
        let panes = &self.panes[base..base + self.ring];
        if def.aggregate == Aggregate::Max {
            // Not subtractable: scan the window's panes.
            let (mut n, mut max) = (0u64, f64::NEG_INFINITY);
            for idx in (at - def.window).div_euclid(def.pane)..at.div_euclid(def.pane) {
                let p = &panes[idx.rem_euclid(ring) as usize];
                if p.idx == idx && p.n > 0 {
                    n += u64::from(p.n);
                    max = max.max(p.v);
                }
            }
            return WindowValue {
                value: (n > 0).then_some(max),
                events: n,
            };
        }
        let h = &mut self.heads[g];
        let steps_per_window = (def.window / def.slide) as u32;
        let sketches = self.quantile.then(|| {
            (
                &self.sketches[base..base + self.ring],
                &mut self.window_sketches[g],
            )
        });
        let (adds, subs) = if h.acc_at == at {
            // Another rule on this signal already evaluated this window.
            (0..0, 0..0)
        } else if h.acc_at != Millis::MIN
            && at - h.acc_at == def.slide
            && h.acc_steps + 1 < steps_per_window
        {
            h.acc_steps += 1;
            (h.acc_at..at, h.acc_at - def.window..at - def.window)
        } else {
            h.acc_steps = 0;
            h.acc_n = 0;
            h.acc_d = 0;
            h.acc_sum = 0.0;
            (at - def.window..at, 0..0)
        };
        let (mut wsk, psk) = match sketches {
            Some((psk, wsk)) => {
                if h.acc_steps == 0 && h.acc_at != at {
                    wsk.clear();
                }
                (Some(wsk), psk)
            }
            None => (None, &[][..]),
        };
        for (range, sign) in [(adds, 1i64), (subs, -1)] {
            for idx in range.start.div_euclid(def.pane)..range.end.div_euclid(def.pane) {
                let slot = idx.rem_euclid(ring) as usize;
                let p = &panes[slot];
                if p.idx != idx {
                    continue;
                }
                if sign > 0 {
                    h.acc_n += u64::from(p.n);
                    h.acc_d += u64::from(p.d);
                    h.acc_sum += p.v;
                    if let Some(w) = wsk.as_deref_mut() {
                        w.add(&psk[slot]);
                    }
                } else {
                    h.acc_n -= u64::from(p.n);
                    h.acc_d -= u64::from(p.d);
                    h.acc_sum -= p.v;
                    if let Some(w) = wsk.as_deref_mut() {
                        w.subtract(&psk[slot]);
                    }
                }
            }
        }
        h.acc_at = at;
        let (n, d, sum) = (h.acc_n, h.acc_d, h.acc_sum);
        match def.aggregate {
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
            Aggregate::Quantile(q) => WindowValue {
                value: wsk.and_then(|w| if n > 0 { w.quantile(q) } else { None }),
                events: n,
            },
            Aggregate::Max => unreachable!("handled above"),
        }
    }

    /// Approximate bytes held (heads, panes, sketch buckets).
    pub fn heap_bytes(&self) -> usize {
        self.heads.capacity() * std::mem::size_of::<Head>()
            + self.panes.capacity() * std::mem::size_of::<Pane>()
            + (self.sketches.capacity() + self.window_sketches.capacity())
                * std::mem::size_of::<Sketch>()
            + self
                .sketches
                .iter()
                .chain(&self.window_sketches)
                .map(Sketch::heap_bytes)
                .sum::<usize>()
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
fn record(
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
