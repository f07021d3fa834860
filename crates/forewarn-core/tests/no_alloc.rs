//! The per-event hot path (decode + ingest, including the window evaluations the
//! watermark triggers) performs no heap allocation once every group exists.
// Counting allocations needs a `GlobalAlloc`, whose trait is unsafe; it only
// delegates to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use forewarn_core::{decode, Config, Engine};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards its arguments unchanged to `System`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const T0: i64 = 1_795_168_800_000;

fn event(i: u64, services: u64) -> String {
    let ts = T0 + (i * 37) as i64; // ~27 events per second of event time
    let svc = i % services;
    let outcome = if i % 23 == 0 { "error" } else { "ok" };
    format!(
        r#"{{"ts":"{}","service":"svc-{svc}","kind":"request","outcome":"{outcome}","category":"system","latency_ms":{},"sla_ms":800,"labels":{{"region":"eu-west","channel":"app"}}}}"#,
        forewarn_core::time::format_rfc3339(ts),
        50 + (i * 7919) % 900
    )
}

#[test]
fn steady_state_ingest_does_not_allocate() {
    let cfg = Config::parse(
        include_str!("../../../deploy/forewarn.example.toml"),
        "example",
    )
    .unwrap();
    let mut engine = Engine::new(cfg);
    let services = 50;
    let total = 60_000u64;
    let lines: Vec<String> = (0..total).map(|i| event(i, services)).collect();
    let mut out = Vec::with_capacity(1024);
    let now = T0 + 86_400_000;
    // Warm-up: every group, pane sketch and scratch buffer reaches its size.
    let warm = 30_000;
    for l in &lines[..warm] {
        let e = decode(l.as_bytes()).unwrap();
        engine.ingest(&e, now, &mut out);
        out.clear();
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let mut evaluated_windows = engine.clock().watermark;
    for l in &lines[warm..] {
        let e = decode(l.as_bytes()).unwrap();
        engine.ingest(&e, now, &mut out);
        out.clear();
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    evaluated_windows = engine.clock().watermark - evaluated_windows;
    assert!(
        evaluated_windows > 10 * 60_000,
        "the measured stretch must close many windows"
    );
    assert_eq!(engine.stats().applied, total);
    assert_eq!(
        allocations,
        0,
        "{allocations} allocations for {} events",
        total as usize - warm
    );
}
