//! Checkpoint cost at scale: one partition's engine (the example config) after
//! events from N services, then the checkpoint written (snapshot, serialise,
//! chunk) and read back (reassemble, deserialise, restore), with its size.
//!
//! `cargo bench --bench checkpoint` (env: FOREWARN_BENCH_SERVICES, default 10,000).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use forewarn_kafka::checkpoint::{encode, Assembler, CHUNK_BYTES};

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let services: usize = std::env::var("FOREWARN_BENCH_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/forewarn.example.toml"
    ))
    .unwrap();
    let cfg = forewarn_core::Config::parse(&text, "forewarn.example.toml").unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut engine = forewarn_core::Engine::new(cfg.clone());
    let mut out = Vec::new();
    // Ten minutes of traffic, every service a request every 10 s.
    let start = now - 600_000;
    for step in 0..60 {
        for s in 0..services {
            let ts = start + step * 10_000 + (s % 1000) as i64;
            let line = format!(
                r#"{{"ts":{ts},"service":"svc-{s}","kind":"request","outcome":"{}","latency_ms":{},"sla_ms":800}}"#,
                if s % 50 == 0 { "error" } else { "ok" },
                80 + (s * 7 + step as usize * 13) % 400
            );
            let e = forewarn_core::decode(line.as_bytes()).unwrap();
            engine.ingest(&e, now, &mut out);
        }
    }
    let t = Instant::now();
    let snap = engine.snapshot();
    let chunks = encode("g/t/0", &snap, 1, 1, CHUNK_BYTES);
    let write = t.elapsed();
    let bytes: usize = chunks.iter().map(|c| c.payload.len()).sum();
    let t = Instant::now();
    let mut a = Assembler::default();
    for c in &chunks {
        let headers: Vec<(String, String)> = c
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        a.add(&headers, &c.payload);
    }
    let restored = a.finish().unwrap().unwrap();
    let (restored_engine, _) = forewarn_core::Engine::restore(cfg, restored.snapshot).unwrap();
    let read = t.elapsed();
    assert_eq!(restored_engine.snapshot(), snap, "exact restore");
    println!(
        "{services} services: checkpoint {:.1} MiB in {} chunks ({:.0} B per service); write (snapshot + serialise + chunk) {write:.2?}, read (reassemble + deserialise + restore) {read:.2?}",
        bytes as f64 / (1 << 20) as f64,
        chunks.len(),
        bytes as f64 / services as f64,
    );
}
