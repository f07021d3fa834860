use proptest::prelude::*;

use super::*;

const INTERVAL: Millis = 10_000;
const LATENESS: Millis = 15_000;
const WINDOWS: [Millis; 4] = [30_000, 300_000, 3_600_000, 6 * 3_600_000];

/// Naive count of (bad, total) events in `[from, to)`.
fn naive(events: &[(Millis, bool)], from: Millis, to: Millis) -> (f64, f64) {
    let inside = events.iter().filter(|(ts, _)| *ts >= from && *ts < to);
    let (mut bad, mut total) = (0.0, 0.0);
    for (_, b) in inside {
        total += 1.0;
        bad += f64::from(u8::from(*b));
    }
    (bad, total)
}

fn pane_of(geo: &Geometry, window: Millis) -> Millis {
    let (_, t) = geo.windows.iter().find(|(w, _)| *w == window).unwrap();
    geo.tiers[*t].pane
}

proptest! {
    /// Over random, slightly out-of-order streams, every window read at every
    /// evaluation equals a naive recompute over the applied events, give or take
    /// the events of the one pane at the window's far edge (pro-rated).
    #[test]
    fn windows_equal_naive_recompute_within_the_edge_pane(
        gaps in prop::collection::vec((0i64..120_000, any::<bool>(), 0i64..LATENESS), 1..400),
    ) {
        let geo = Geometry::new(INTERVAL, &WINDOWS, LATENESS);
        let mut counts = Counts::default();
        let mut applied: Vec<(Millis, bool)> = Vec::new();
        let (mut t, mut max_ts, mut next_eval) = (1_000_000_000i64, Millis::MIN, Millis::MAX);
        for (gap, bad, jitter) in gaps {
            t += gap;
            let ts = t - jitter;
            let watermark = max_ts.max(ts) - LATENESS;
            while next_eval <= watermark {
                counts.advance(&geo, next_eval);
                for w in WINDOWS {
                    let got = counts.window(&geo, w, next_eval);
                    let (bad, total) = naive(&applied, next_eval - w, next_eval);
                    let p = pane_of(&geo, w);
                    let edge = (next_eval - w).div_euclid(p) * p;
                    let (_, slack) = naive(&applied, edge, edge + p);
                    prop_assert!((got.total - total).abs() <= slack + 1e-9, "total {} vs {} (slack {}) window {} at {}", got.total, total, slack, w, next_eval);
                    prop_assert!((got.bad - bad).abs() <= slack + 1e-9, "bad {} vs {} window {}", got.bad, bad, w);
                    if (next_eval - w) % p == 0 || (next_eval - w) <= counts.born {
                        prop_assert!((got.total - total).abs() < 1e-9, "aligned window must be exact");
                    }
                }
                next_eval += INTERVAL;
            }
            if max_ts != Millis::MIN && ts < max_ts - LATENESS {
                continue; // late: the engine refuses it
            }
            max_ts = max_ts.max(ts);
            counts.record(&geo, ts, bad);
            applied.push((ts, bad));
            next_eval = next_eval.min((ts.div_euclid(INTERVAL) + 1) * INTERVAL);
        }
    }
}

#[test]
fn thirty_day_budget_with_the_workbook_pairs_fits_in_4_kib() {
    let day = 86_400_000;
    let windows = [
        300_000,
        1_800_000,
        3_600_000,
        7_200_000,
        21_600_000,
        day,
        3 * day,
        30 * day,
    ];
    let geo = Geometry::new(30_000, &windows, 10_000);
    let mut c = Counts::default();
    c.record(&geo, 0, false);
    let heap = c.buckets.capacity() * std::mem::size_of::<Bucket>()
        + c.panes.capacity() * std::mem::size_of::<[u32; 2]>();
    assert_eq!(heap, geo.group_bytes());
    assert!(heap + std::mem::size_of::<Counts>() <= 4096, "{heap} bytes");
}

#[test]
fn a_long_silence_empties_the_windows() {
    let geo = Geometry::new(INTERVAL, &WINDOWS, LATENESS);
    let mut c = Counts::default();
    for i in 0..100 {
        c.record(&geo, i * 1000, i % 2 == 0);
    }
    c.advance(&geo, 100_000);
    assert_eq!(c.window(&geo, 300_000, 100_000).total, 100.0);
    let later = 100_000 + 7 * 3_600_000;
    c.advance(&geo, later);
    for w in WINDOWS {
        assert_eq!(c.window(&geo, w, later), Tally::default(), "window {w}");
    }
}
