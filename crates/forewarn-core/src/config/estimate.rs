//! What one group's window state costs, worked out from the config alone
//! (windows, slides, lateness, quantile signals), so `check` can refuse a config
//! that could not fit in `[limits] max_memory`, and the engine can cap groups so
//! that the ones it admits do.

use crate::sketch::{Sketch, MAX_BUCKETS};
use crate::time::Millis;

use super::{Aggregate, SignalDef};

/// Bytes of one pane slot (`window::Pane`, which asserts it).
pub const PANE_BYTES: u64 = 24;
/// Bytes of a signal's per-group bookkeeping (`window::Head` and its running
/// window accumulator, which assert it).
pub const HEAD_BYTES: u64 = 64;
/// Bytes of one sketch bucket.
const BUCKET_BYTES: u64 = 8;

impl SignalDef {
    /// Ring slots a group needs for this signal: windows not yet evaluated start
    /// no earlier than watermark − window − slide, and accepted events are at
    /// most `allowed_lateness` behind the watermark.
    pub fn ring_len(&self, allowed_lateness: Millis) -> u64 {
        let span = self
            .window
            .saturating_add(self.slide)
            .saturating_add(allowed_lateness);
        (span / self.pane.max(1)).saturating_add(2) as u64
    }
}

/// One group's window state across every signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupState {
    /// Paid by every group with data: pane rings, sketch headers, bookkeeping.
    pub fixed: u64,
    /// The most it can reach: `fixed` plus every sketch at [`MAX_BUCKETS`].
    pub worst: u64,
    /// The signal with the largest worst case, and that case.
    pub largest: Option<(usize, u64)>,
}

/// The window state of one group over `signals` (timer signals keep entity
/// tables, bounded by their own `max_entities`, and are not counted here).
pub fn group_state(signals: &[SignalDef], allowed_lateness: Millis) -> GroupState {
    let mut total = GroupState {
        fixed: 0,
        worst: 0,
        largest: None,
    };
    for (i, s) in signals.iter().enumerate() {
        if matches!(s.aggregate, Aggregate::Timer(_)) {
            continue;
        }
        let ring = s.ring_len(allowed_lateness);
        let mut fixed = ring.saturating_mul(PANE_BYTES).saturating_add(HEAD_BYTES);
        let mut worst = fixed;
        if matches!(s.aggregate, Aggregate::Quantile(_)) {
            // One sketch per ring slot plus the running window's.
            let sketches = ring.saturating_add(1);
            let header = std::mem::size_of::<Sketch>() as u64;
            fixed = fixed.saturating_add(sketches.saturating_mul(header));
            let most = header + MAX_BUCKETS as u64 * BUCKET_BYTES;
            worst = worst.saturating_add(sketches.saturating_mul(most));
        }
        total.fixed = total.fixed.saturating_add(fixed);
        total.worst = total.worst.saturating_add(worst);
        if total.largest.is_none_or(|(_, w)| worst > w) {
            total.largest = Some((i, worst));
        }
    }
    total
}

/// Reads a byte size: a whole number with an optional unit, `B`, `KiB`, `MiB`,
/// `GiB`, `TiB` (powers of 1024) or `KB`, `MB`, `GB`, `TB` (powers of 1000).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size such as \"2GiB\""))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => return Err(format!("unknown size unit `{other}` in `{text}`")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// A byte count for people: `4.0 GiB`, `312 KiB`.
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if v >= 100.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_and_print() {
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("1500"), Ok(1500));
        assert_eq!(parse_bytes("3GB"), Ok(3_000_000_000));
        assert!(parse_bytes("2 gigs").unwrap_err().contains("unit"));
        assert!(parse_bytes("GiB").is_err());
        assert!(parse_bytes("99999999999TiB")
            .unwrap_err()
            .contains("too large"));
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(3 << 29), "1.5 GiB");
        assert_eq!(format_bytes(312 << 10), "312 KiB");
    }
}
