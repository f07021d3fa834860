//! Points per second of the anomaly detector on one core, the figure the
//! `anomaly` rule and `forewarn detect` scale with.
//!
//! A month of 5-minute points (daily and weekly profiles live, so every model
//! is forecasting): a daily rhythm plus deterministic noise and rare spikes.
//! `warm` continues from a detector that has already seen the month; `cold`
//! includes learning from nothing.
//!
//! Run: `cargo bench --bench detector` (figures in BENCHMARKS.md).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use forewarn_core::detector::{Detector, DetectorState};

const POINTS: usize = 30 * 288;
const STEP: i64 = 300_000;

fn series(offset: usize) -> Vec<(i64, f64)> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (offset..offset + POINTS)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let t = i as i64 * STEP;
            let day = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
            let noise = (x % 1000) as f64 / 100.0;
            let spike = if x % 997 == 0 { 80.0 } else { 0.0 };
            (t, 100.0 + 40.0 * day.sin() + noise + spike)
        })
        .collect()
}

fn feed(d: &Detector, st: &mut DetectorState, points: &[(i64, f64)]) -> f64 {
    points.iter().map(|&(t, x)| d.observe(st, t, x).score).sum()
}

fn bench(c: &mut Criterion) {
    let d = Detector::default();
    let first = series(0);
    let second = series(POINTS);
    let mut learned = DetectorState::default();
    feed(&d, &mut learned, &first);
    let mut group = c.benchmark_group("detector");
    group.throughput(Throughput::Elements(POINTS as u64));
    group.bench_function("cold", |b| {
        b.iter(|| feed(&d, &mut DetectorState::default(), &first))
    });
    group.bench_function("warm", |b| {
        b.iter_batched_ref(
            || learned.clone(),
            |st| feed(&d, st, &second),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
