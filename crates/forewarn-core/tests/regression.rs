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
