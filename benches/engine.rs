//! Decode + apply throughput of one engine shard on one core.
//!
//! 1M realistic ~180-byte events spread over N services, 5 rules on 5m/10s sliding
//! windows (benches/bench.toml), with up to 2 s of disorder. Window evaluations are
//! part of the measured cost: every slide evaluates every rule for every service
//! (10,000 services x 5 rules / 10 s = 5,000 evaluations per second of event time,
//! whatever the load), so the per-event cost depends on how dense the stream is in
//! event time. Cases: `services` x `rate` (events per second of event time).
//!
//! `cold` starts each iteration from a fresh engine, so creating every service's
//! state is inside the measured time; `warm` first feeds the engine the preceding
//! 1M events of the same stream (untimed), as a long-running shard would have.
//!
//! Run: `cargo bench --bench engine` (figures in BENCHMARKS.md).

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use forewarn_core::{decode, Config, Engine};

const T0: i64 = 1_795_168_800_000;
const EVENTS: usize = 1_000_000;

/// Deterministic pseudo-random stream (xorshift), ~200 bytes an event.
fn events(services: u64, rate: i64, count: usize) -> Vec<Vec<u8>> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..count as i64)
        .map(|i| {
            let r = next();
            // Up to 2 s of disorder, well within the 10 s lateness.
            let ts = T0 + i * 1000 / rate - (r % 2000) as i64;
            let svc = r % services;
            let line = if r % 10 == 0 {
                format!(
                    r#"{{"ts":{ts},"service":"svc-{svc:05}","kind":"feedback","satisfaction":{},"sentiment":-0.4,"complaint":{},"labels":{{"region":"eu-west","channel":"app"}}}}"#,
                    1 + r % 5,
                    r % 3 == 0
                )
            } else {
                let outcome = if r % 40 == 0 { "error" } else { "ok" };
                let latency = 40 + (r >> 20) % 900;
                format!(
                    r#"{{"ts":"{}","service":"svc-{svc:05}","kind":"request","outcome":"{outcome}","category":"system","latency_ms":{latency},"sla_ms":800,"labels":{{"region":"eu-west","channel":"{}"}}}}"#,
                    forewarn_core::time::format_rfc3339(ts),
                    if r % 2 == 0 { "app" } else { "web" }
                )
            };
            line.into_bytes()
        })
        .collect()
}

fn run(cfg: &Config, lines: &[Vec<u8>]) -> Engine {
    feed(Engine::new(cfg.clone()), lines)
}

fn feed(mut engine: Engine, lines: &[Vec<u8>]) -> Engine {
    let mut out = Vec::with_capacity(4096);
    let now = T0 + 86_400_000;
    for l in lines {
        let e = decode(l).expect("benchmark events are valid");
        engine.ingest(&e, now, &mut out);
        out.clear();
    }
    engine
}

fn bench(c: &mut Criterion) {
    let cfg = Config::parse(include_str!("bench.toml"), "benches/bench.toml").unwrap();
    let mut group = c.benchmark_group("decode_apply");
    group.sample_size(10);
    group.throughput(Throughput::Elements(EVENTS as u64));
    for (services, rate) in [(100u64, 2_000i64), (10_000, 2_000), (10_000, 20_000)] {
        let both = events(services, rate, 2 * EVENTS);
        let (warmup, lines) = both.split_at(EVENTS);
        let bytes: usize = lines.iter().map(Vec::len).sum();
        let engine = feed(run(&cfg, warmup), lines);
        let s = engine.stats();
        let per = engine.state_bytes() as f64 / (services as f64 * cfg.rules.len() as f64);
        eprintln!(
            "services={services} rate={rate}/s: mean event {} bytes; applied {} late {}; transitions {}; state {} bytes, {per:.0} bytes per (service, rule)",
            bytes / lines.len(),
            s.applied,
            s.late,
            s.transitions,
            engine.state_bytes()
        );
        eprintln!("  state parts (heads, panes, sketch headers, sketch buckets, alert instances, group keys): {:?}", engine.state_breakdown());
        assert_eq!(s.applied + s.late, 2 * EVENTS as u64);
        let case = format!("{services}svc_{rate}eps");
        group.bench_with_input(BenchmarkId::new("cold", &case), &lines, |b, lines| {
            b.iter(|| run(&cfg, lines))
        });
        group.bench_with_input(BenchmarkId::new("warm", &case), &lines, |b, lines| {
            b.iter_batched(
                || run(&cfg, warmup),
                |engine| feed(engine, lines),
                BatchSize::PerIteration,
            )
        });
    }
    let lines = events(10_000, 2_000, EVENTS);
    group.bench_function("decode_only", |b| {
        b.iter(|| lines.iter().filter(|l| decode(l).is_ok()).count())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
