//! One test per fixed defect, named after the bug.

use forewarn_core::{decode, Config, Engine, Evaluation};

const T0: i64 = 1_795_168_800_000;

fn engine(src: &str) -> Engine {
    let mut e = Engine::new(Config::parse(src, "regression.toml").unwrap());
    e.set_trace(true);
    e
}

fn feed(e: &mut Engine, lines: &[String]) -> Vec<Evaluation> {
    let mut out = Vec::new();
    for l in lines {
        e.ingest(&decode(l.as_bytes()).unwrap(), T0 + 86_400_000, &mut out);
    }
    e.finish(&mut out);
    e.take_trace()
}

/// The first event a signal saw scheduled its first evaluation; an older event
/// arriving next (within the allowed lateness) landed in a window that was never
/// evaluated. Found by the naive-recompute property test.
#[test]
fn window_of_an_older_first_event_is_evaluated() {
    let mut e = engine(
        "[time]\nallowed_lateness = \"7s\"\n[[signals]]\nname = \"c\"\naggregate = \"count\"\nfilter = { complaint = true }\nwindow = \"25s\"\nslide = \"10s\"\n[[rules]]\nname = \"R\"\nkind = \"threshold\"\nsignal = \"c\"\ncritical = 100\n",
    );
    let line = |ms: i64| format!(r#"{{"ts":{},"service":"s","complaint":true}}"#, T0 + ms);
    // 10001 first, then 3137: still inside the lateness, so applied.
    let trace = feed(&mut e, &[line(10_001), line(3_137)]);
    let first = trace
        .iter()
        .find(|t| t.at == T0 + 10_000)
        .expect("window ending 10 s must be evaluated");
    assert_eq!(first.value.events, 1);
    assert_eq!(e.stats().late, 0);
}

/// `sla_ratio` divided by a tiny `sla_ms` overflowed to infinity, which turned the
/// window sum into NaN and made the snapshot unserialisable.
#[test]
fn sla_ratio_overflow_is_not_recorded() {
    let mut e = engine(
        "[[signals]]\nname = \"r\"\naggregate = \"sum\"\nfield = \"sla_ratio\"\nwindow = \"10s\"\n[[signals]]\nname = \"q\"\naggregate = \"quantile\"\nquantile = 0.5\nfield = \"sla_ratio\"\nwindow = \"10s\"\n[[rules]]\nname = \"R\"\nkind = \"threshold\"\nsignal = \"r\"\ncritical = 5\n[[rules]]\nname = \"Q\"\nkind = \"threshold\"\nsignal = \"q\"\ncritical = 5\n",
    );
    let lines = [
        format!(
            r#"{{"ts":{},"service":"s","latency_ms":1e12,"sla_ms":1e-300}}"#,
            T0
        ),
        format!(
            r#"{{"ts":{},"service":"s","latency_ms":400,"sla_ms":800}}"#,
            T0 + 1
        ),
        format!(
            r#"{{"ts":{},"service":"s","latency_ms":1,"sla_ms":1}}"#,
            T0 + 20_000
        ),
    ];
    let trace = feed(&mut e, &lines);
    let sum = trace
        .iter()
        .find(|t| t.rule == 0)
        .expect("window evaluated");
    assert_eq!(
        sum.value.value,
        Some(0.5),
        "the overflowing ratio is absent, not infinite"
    );
    let json = serde_json::to_string(&e.snapshot()).expect("snapshot serialises");
    let restored: forewarn_core::Snapshot = serde_json::from_str(&json).expect("and reads back");
    assert_eq!(restored, e.snapshot());
}

/// An absent rule's value is the silence in seconds; events newer than the
/// evaluation time (inside the lateness) made it negative (-9 on dashboards).
#[test]
fn absent_value_is_never_negative() {
    let cfg = forewarn_core::Config::parse(
        "[time]\nallowed_lateness = \"10s\"\n[[signals]]\nname = \"requests\"\naggregate = \"count\"\nwindow = \"10s\"\n[[rules]]\nname = \"Silent\"\nkind = \"absent\"\nsignal = \"requests\"\nfor = \"30s\"\n",
        "t.toml",
    )
    .unwrap();
    let mut e = forewarn_core::Engine::new(cfg);
    let mut out = Vec::new();
    for s in 0..40 {
        let line = format!(r#"{{"ts":{},"service":"pay"}}"#, 1_000_000 + s * 1000);
        e.ingest(
            &forewarn_core::decode(line.as_bytes()).unwrap(),
            2_000_000,
            &mut out,
        );
    }
    let readings = e.readings();
    assert!(!readings.is_empty());
    assert!(readings.iter().all(|r| r.value >= 0.0), "{readings:?}");
}
