//! Panes and the windows built from them.
//!
//! A signal's window of length `W` sliding by `S` is cut into panes of
//! `gcd(W, S)`. Each group keeps a fixed ring of panes long enough to hold every
//! window that can still be evaluated plus the allowed lateness, so writing an event
//! is one index computation and a window is a merge of `W / pane` small structs.

use serde::{Deserialize, Serialize};

use crate::config::{estimate, Aggregate, SignalDef};
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
    sig.ring_len(allowed_lateness) as usize
}

// The config's memory estimate counts these sizes.
const _: () = assert!(std::mem::size_of::<Pane>() as u64 == estimate::PANE_BYTES);
const _: () = assert!(
    (std::mem::size_of::<Head>() + std::mem::size_of::<Acc>()) as u64 == estimate::HEAD_BYTES
);

/// The value of a signal over one window, and the events behind it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowValue {
    /// The aggregate, `None` when it is undefined (no events for rate, mean, …).
    pub value: Option<f64>,
    /// Events that make up the value (the denominator for rate).
    pub events: u64,
}

/// Per-(group, signal) newest-event times: all that recording an event updates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Head {
    /// Newest time of any event recorded for the group (finds empty windows).
    pub last_touch: Millis,
    /// Newest time of an event matching the filter (absent rules).
    pub last_seen: Millis,
    /// Oldest time of an event matching the filter: with `last_seen`, how long
    /// the group has been sending (absent rules watch only established groups).
    #[serde(default = "never")]
    pub first_seen: Millis,
}

fn never() -> Millis {
    Millis::MIN
}

impl Head {
    /// How long matching events have been arriving (0 for none or one).
    pub fn history(&self) -> Millis {
        if self.first_seen == Millis::MIN {
            return 0;
        }
        self.last_seen - self.first_seen
    }

    const NEW: Head = Head {
        last_touch: Millis::MIN,
        last_seen: Millis::MIN,
        first_seen: Millis::MIN,
    };
}

/// Per-(group, signal) running window, touched only by evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Acc {
    /// Window end the accumulator describes; MIN when there is none.
    acc_at: Millis,
    /// Slides applied incrementally since the last full recompute.
    acc_steps: u32,
    acc_n: u64,
    acc_d: u64,
    acc_sum: f64,
}

impl Acc {
    const NEW: Acc = Acc {
        acc_at: Millis::MIN,
        acc_steps: 0,
        acc_n: 0,
        acc_d: 0,
        acc_sum: 0.0,
    };
}

/// The state of a *family*: the signals that share a grouping and window geometry
/// (window, slide, pane), for all groups. Members sit next to each other, so one
/// event touches a few neighbouring cache lines however many signals it feeds; the
/// ring slot is the outermost index of panes, so evaluating a slide for every group
/// reads two slots sequentially instead of jumping a whole ring per group:
///
/// - heads and accumulators: `[group][member]`
/// - panes: `[slot][group][member]` (slot = pane index mod ring; `group_cap` groups
///   are allocated per slot)
/// - pane sketches: `[slot][group][quantile member]`, window sketches
///   `[group][quantile member]`
///
/// Windows are evaluated incrementally: each (group, member) keeps an accumulator
/// of the last window it was evaluated on, and sliding by one `slide` adds the
/// panes that entered and subtracts those that left, instead of re-merging
/// `window / pane` panes. After a gap, or every `window / slide` slides (bounding
/// float drift in sums), the window is recomputed from its panes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FamilyStore {
    ring: usize,
    members: usize,
    /// Member → its index among the quantile members.
    quantile_of: Vec<Option<usize>>,
    quantiles: usize,
    /// Groups allocated in each slot of `panes` and `sketches`.
    group_cap: usize,
    heads: Vec<Head>,
    accs: Vec<Acc>,
    panes: Vec<Pane>,
    sketches: Vec<Sketch>,
    window_sketches: Vec<Sketch>,
}

impl FamilyStore {
    /// Empty store for signals of identical geometry (`sigs[0]` gives it).
    pub fn new(sigs: &[&SignalDef], allowed_lateness: Millis) -> FamilyStore {
        let mut quantiles = 0;
        let quantile_of = sigs
            .iter()
            .map(|s| {
                matches!(s.aggregate, Aggregate::Quantile(_)).then(|| {
                    quantiles += 1;
                    quantiles - 1
                })
            })
            .collect();
        FamilyStore {
            ring: ring_len(sigs[0], allowed_lateness),
            members: sigs.len(),
            quantile_of,
            quantiles,
            ..FamilyStore::default()
        }
    }

    /// This state under another member list: new member `m` takes over old
    /// member `from[m]`'s state, or starts empty (a config reload that kept
    /// some of the family's signals). The ring must be the same.
    pub fn remap(mut self, sigs: &[&SignalDef], from: &[Option<usize>]) -> FamilyStore {
        let keeps_all =
            from.len() == self.members && from.iter().enumerate().all(|(m, f)| *f == Some(m));
        if keeps_all {
            return self;
        }
        let mut out = FamilyStore::new(sigs, 0);
        out.ring = self.ring;
        out.group_cap = self.group_cap;
        let groups = self.groups();
        let slots = self.ring * self.group_cap;
        out.heads = remap_members(&mut self.heads, groups, self.members, from, || Head::NEW);
        out.accs = remap_members(&mut self.accs, groups, self.members, from, || Acc::NEW);
        out.panes = remap_members(&mut self.panes, slots, self.members, from, || Pane::EMPTY);
        // Quantile members keep their own numbering.
        let qfrom: Vec<Option<usize>> = (0..from.len())
            .filter(|&m| out.quantile_of[m].is_some())
            .map(|m| from[m].and_then(|f| self.quantile_of[f]))
            .collect();
        let q = self.quantiles;
        out.sketches = remap_members(&mut self.sketches, slots, q, &qfrom, Sketch::default);
        out.window_sketches = remap_members(
            &mut self.window_sketches,
            groups,
            q,
            &qfrom,
            Sketch::default,
        );
        out
    }

    /// Slots per group.
    pub fn ring(&self) -> usize {
        self.ring
    }

    /// Groups with storage.
    pub fn groups(&self) -> usize {
        self.heads.len() / self.members.max(1)
    }

    /// The bookkeeping of member `m` for group `g`, if the group has storage.
    #[inline]
    pub fn head(&self, g: usize, m: usize) -> Option<&Head> {
        self.heads.get(g * self.members + m)
    }

    /// Makes room for group `g` (allocates only when a new group appears; when
    /// the per-slot capacity runs out, the slots are re-laid with an eighth more).
    pub fn ensure(&mut self, g: usize) {
        // Once per event: a multiplication, where `groups()` divides.
        if (g + 1) * self.members.max(1) <= self.heads.len() {
            return;
        }
        let n = g + 1;
        grow(&mut self.heads, n * self.members, || Head::NEW);
        grow(&mut self.accs, n * self.members, || Acc::NEW);
        if self.quantiles > 0 {
            grow(
                &mut self.window_sketches,
                n * self.quantiles,
                Sketch::default,
            );
        }
        if n > self.group_cap {
            let cap = n.max(self.group_cap + self.group_cap / 8).max(16);
            self.panes = relayout(
                std::mem::take(&mut self.panes),
                self.ring,
                self.group_cap,
                cap,
                self.members,
                || Pane::EMPTY,
            );
            self.sketches = relayout(
                std::mem::take(&mut self.sketches),
                self.ring,
                self.group_cap,
                cap,
                self.quantiles,
                Sketch::default,
            );
            self.group_cap = cap;
        }
    }

    /// Newest event time recorded for group `g` by any member (MIN: none).
    pub fn newest(&self, g: usize) -> Millis {
        let from = g * self.members;
        self.heads
            .get(from..from + self.members)
            .map_or(Millis::MIN, |h| {
                h.iter().map(|h| h.last_touch).max().unwrap_or(Millis::MIN)
            })
    }

    /// Empties group `g`'s state, as if no event had been recorded for it, so its
    /// id can serve a new group. Sketch buffers keep their capacity.
    pub fn reset_group(&mut self, g: usize) {
        if g >= self.groups() {
            return;
        }
        let (m, q) = (self.members, self.quantiles);
        self.heads[g * m..(g + 1) * m].fill(Head::NEW);
        self.accs[g * m..(g + 1) * m].fill(Acc::NEW);
        for s in &mut self.window_sketches[g * q..(g + 1) * q] {
            s.clear();
        }
        for slot in 0..self.ring {
            let (p, k) = (self.at(slot, g, m), self.at(slot, g, q));
            self.panes[p..p + m].fill(Pane::EMPTY);
            for s in &mut self.sketches[k..k + q] {
                s.clear();
            }
        }
    }

    /// Index of the first member of group `g` in ring slot `slot`, in units of
    /// `per_group` entries.
    #[inline]
    fn at(&self, slot: usize, g: usize, per_group: usize) -> usize {
        (slot * self.group_cap + g) * per_group
    }

    /// Records one event for member `m` of group `g` (which must exist): its pane,
    /// and the newest-event times.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        g: usize,
        m: usize,
        ts: Millis,
        def: &SignalDef,
        num: bool,
        den: bool,
        matched: bool,
        value: Option<f64>,
    ) {
        let idx = ts.div_euclid(def.pane);
        let slot = idx.rem_euclid(self.ring as i64) as usize;
        let (pane_at, sketch_at) = (
            self.at(slot, g, self.members),
            self.at(slot, g, self.quantiles),
        );
        let pane = &mut self.panes[pane_at + m];
        let fresh = pane.idx != idx;
        if fresh {
            *pane = Pane::reset(idx);
        }
        let sketch = match self.quantile_of[m] {
            Some(q) => {
                let s = &mut self.sketches[sketch_at + q];
                if fresh {
                    s.clear();
                }
                Some(s)
            }
            None => None,
        };
        record(pane, sketch, def.aggregate, num, den, value);
        let head = &mut self.heads[g * self.members + m];
        head.last_touch = head.last_touch.max(ts);
        if matched {
            head.last_seen = head.last_seen.max(ts);
            head.first_seen = if head.first_seen == Millis::MIN {
                ts
            } else {
                head.first_seen.min(ts)
            };
        }
    }

    /// Member `m`'s value for group `g` over the window ending at `at`.
    pub fn window(&mut self, g: usize, m: usize, at: Millis, def: &SignalDef) -> WindowValue {
        if g >= self.groups() {
            return empty_value(def.aggregate);
        }
        let (ring, members, quantiles, cap) = (
            self.ring as i64,
            self.members,
            self.quantiles,
            self.group_cap,
        );
        // The member's pane for pane index `idx`, if the slot still holds it.
        let pane_at = |panes: &[Pane], idx: i64| -> Option<(usize, Pane)> {
            let slot = idx.rem_euclid(ring) as usize;
            let p = panes[(slot * cap + g) * members + m];
            (p.idx == idx).then_some((slot, p))
        };
        if def.aggregate == Aggregate::Max {
            // Not subtractable: scan the window's panes.
            let (mut n, mut max) = (0u64, f64::NEG_INFINITY);
            for idx in (at - def.window).div_euclid(def.pane)..at.div_euclid(def.pane) {
                if let Some((_, p)) = pane_at(&self.panes, idx).filter(|(_, p)| p.n > 0) {
                    n += u64::from(p.n);
                    max = max.max(p.v);
                }
            }
            return WindowValue {
                value: (n > 0).then_some(max),
                events: n,
            };
        }
        let h = &mut self.accs[g * members + m];
        let steps_per_window = (def.window / def.slide) as u32;
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
            *h = Acc::NEW;
            (at - def.window..at, 0..0)
        };
        let mut wsk = match self.quantile_of[m] {
            Some(q) => {
                let w = &mut self.window_sketches[g * self.quantiles + q];
                if h.acc_at == Millis::MIN {
                    w.clear();
                }
                Some((q, w))
            }
            None => None,
        };
        for (range, add) in [(adds, true), (subs, false)] {
            for idx in range.start.div_euclid(def.pane)..range.end.div_euclid(def.pane) {
                let Some((slot, p)) = pane_at(&self.panes, idx) else {
                    continue;
                };
                if add {
                    h.acc_n += u64::from(p.n);
                    h.acc_d += u64::from(p.d);
                    h.acc_sum += p.v;
                } else {
                    h.acc_n -= u64::from(p.n);
                    h.acc_d -= u64::from(p.d);
                    h.acc_sum -= p.v;
                }
                if let Some((q, w)) = wsk.as_mut() {
                    let ps = &self.sketches[(slot * cap + g) * quantiles + *q];
                    if add {
                        w.add(ps);
                    } else {
                        w.subtract(ps);
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
            Aggregate::Timer(_) => WindowValue {
                value: None,
                events: 0,
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
                value: wsk.and_then(|(_, w)| if n > 0 { w.quantile(q) } else { None }),
                events: n,
            },
            Aggregate::Max => unreachable!("handled above"),
        }
    }

    /// The `q`-quantile of member `m`'s window sketch for group `g`, as left by
    /// the last [`FamilyStore::window`] call for them (a second read of the same
    /// window at another rank, for confidence bounds).
    pub fn window_quantile(&self, g: usize, m: usize, q: f64) -> Option<f64> {
        let qi = self.quantile_of.get(m).copied().flatten()?;
        self.window_sketches
            .get(g * self.quantiles + qi)?
            .quantile(q)
    }

    /// Bytes held by each part: (heads, panes, sketch headers, sketch buckets).
    pub fn breakdown(&self) -> [usize; 4] {
        [
            self.heads.capacity() * std::mem::size_of::<Head>()
                + self.accs.capacity() * std::mem::size_of::<Acc>(),
            self.panes.capacity() * std::mem::size_of::<Pane>(),
            (self.sketches.capacity() + self.window_sketches.capacity())
                * std::mem::size_of::<Sketch>(),
            self.sketches
                .iter()
                .chain(&self.window_sketches)
                .map(Sketch::heap_bytes)
                .sum::<usize>(),
        ]
    }

    /// Approximate bytes held (heads, panes, sketch buckets).
    pub fn heap_bytes(&self) -> usize {
        self.heads.capacity() * std::mem::size_of::<Head>()
            + self.accs.capacity() * std::mem::size_of::<Acc>()
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

/// Copies a `[slot][group][entry]` layout with `old_cap` groups per slot into one
/// with `new_cap`, filling the new groups' entries.
fn relayout<T>(
    old: Vec<T>,
    ring: usize,
    old_cap: usize,
    new_cap: usize,
    per_group: usize,
    mut fill: impl FnMut() -> T,
) -> Vec<T> {
    let mut out = Vec::with_capacity(ring * new_cap * per_group);
    let mut old = old.into_iter();
    for _ in 0..ring {
        out.extend(old.by_ref().take(old_cap * per_group));
        out.extend(std::iter::repeat_with(&mut fill).take((new_cap - old_cap) * per_group));
    }
    out
}

/// `rows` rows of `per_row` entries re-laid as rows of `from.len()` entries,
/// entry `m` moved from old entry `from[m]` (or `fill`ed). Empty when the old
/// layout held no rows.
fn remap_members<T>(
    old: &mut [T],
    rows: usize,
    per_row: usize,
    from: &[Option<usize>],
    mut fill: impl FnMut() -> T,
) -> Vec<T> {
    if old.len() < rows * per_row {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(rows * from.len());
    for r in 0..rows {
        for f in from {
            out.push(match f {
                Some(f) => std::mem::replace(&mut old[r * per_row + f], fill()),
                None => fill(),
            });
        }
    }
    out
}

/// Resizes `v` to `len`, growing capacity by an eighth rather than doubling: state
/// vectors hold tens of megabytes, and doubling would leave up to half unused.
pub fn grow<T>(v: &mut Vec<T>, len: usize, fill: impl FnMut() -> T) {
    if len > v.capacity() {
        v.reserve_exact((len - v.len()).max(len / 8));
    }
    v.resize_with(len, fill);
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
        // Timer signals keep entity tables, not panes (`crate::timers`).
        Aggregate::Timer(_) => {}
    }
}
