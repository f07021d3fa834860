//! Rate limits for log lines that a fault repeats many times a second (a down
//! broker makes librdkafka and the consumer report every reconnect): a burst
//! gets through, then one line per window says how many were held back, so the
//! log stays readable and a full stderr is not made fuller.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines let through per window before holding back.
const BURST: u32 = 5;
/// The window over which `BURST` lines pass.
const WINDOW: Duration = Duration::from_secs(10);

/// One log site's budget.
#[derive(Debug)]
pub struct Throttle {
    state: Mutex<Budget>,
}

#[derive(Debug)]
struct Budget {
    window_start: Option<Instant>,
    passed: u32,
    held_back: u64,
}

impl Throttle {
    /// A fresh budget (usable in a `static`).
    pub const fn new() -> Throttle {
        Throttle {
            state: Mutex::new(Budget {
                window_start: None,
                passed: 0,
                held_back: 0,
            }),
        }
    }

    /// Whether a line may be logged now: `Some(n)` with the lines held back
    /// since the last one that passed, or `None` to drop this one.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut b = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if b.window_start
            .is_none_or(|s| now.duration_since(s) >= WINDOW)
        {
            b.window_start = Some(now);
            b.passed = 0;
        }
        if b.passed >= BURST {
            b.held_back += 1;
            return None;
        }
        b.passed += 1;
        Some(std::mem::take(&mut b.held_back))
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_one_window_at_a_time_with_the_count_held_back() {
        let t = Throttle::new();
        let t0 = Instant::now();
        let passed: Vec<Option<u64>> = (0..20).map(|_| t.admit_at(t0)).collect();
        assert_eq!(passed[..5], [Some(0); 5]);
        assert!(passed[5..].iter().all(Option::is_none));
        // Next window: the first line carries the 15 held back.
        assert_eq!(t.admit_at(t0 + WINDOW), Some(15));
        assert_eq!(t.admit_at(t0 + WINDOW), Some(0));
    }
}
