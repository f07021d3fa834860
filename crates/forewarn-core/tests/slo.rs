//! SLO rules end to end through the engine: which pair pages, when, and what the
//! alert says; low traffic and short blips that must not page; exact restore.

use forewarn_core::lifecycle::TransitionKind;
use forewarn_core::{decode, Config, Engine, Transition};

const T0: i64 = 1_795_168_800_000; // 2026-11-20T10:00:00Z
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

const CONFIG: &str = r#"
[[rules]]
name = "CheckoutAvailability"
kind = "slo"
total = { kind = "request" }
good = { outcome = "ok" }
objective = 0.999
category = "system"
"#;

/// One request every `every_ms` from `from` to `to`; `error(t)` says which fail.
fn requests(from: i64, to: i64, every_ms: i64, error: impl Fn(i64, u64) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    let (mut t, mut i) = (from, 0u64);
    while t < to {
        let outcome = if error(t, i) { "error" } else { "ok" };
        out.push(format!(
            r#"{{"ts":{},"service":"checkout","kind":"request","outcome":"{outcome}"}}"#,
            T0 + t
        ));
        t += every_ms;
        i += 1;
    }
    out
}

fn run(engine: &mut Engine, lines: &[String]) -> Vec<Transition> {
    let mut out = Vec::new();
    for l in lines {
        engine.ingest(&decode(l.as_bytes()).unwrap(), T0 + 400 * HOUR, &mut out);
    }
    engine.finish(&mut out);
    out
}

fn engine() -> Engine {
    Engine::new(Config::parse(CONFIG, "slo.toml").unwrap_or_else(|e| panic!("{e}")))
}

fn firing(out: &[Transition]) -> Vec<&Transition> {
    out.iter()
        .filter(|t| t.kind == TransitionKind::Firing)
        .collect()
}

#[test]
fn fast_burn_pages_on_the_1h_5m_pair_within_minutes() {
    // 2 h healthy at 2 req/s (0.05% errors), then 20% errors: a 200x burn.
    let start = 2 * HOUR;
    let lines = requests(0, start + 20 * MIN, 500, |t, i| {
        if t >= start {
            i % 5 == 0
        } else {
            i % 2000 == 0
        }
    });
    let mut e = engine();
    let out = run(&mut e, &lines);
    let fired = firing(&out);
    let page = fired[0];
    assert_eq!(page.severity.as_str(), "critical", "{out:?}");
    let after = page.at - (T0 + start);
    assert!(
        (MIN..=6 * MIN).contains(&after),
        "paged {after} ms after the burn began"
    );
    let alert = e.render(page);
    assert!(
        alert.annotations["burning_pairs"].starts_with("1h/5m at 14.4x (critical)"),
        "{:?}",
        alert.annotations
    );
    let burn_1h: f64 = alert.annotations["burn_rate_1h"].parse().unwrap();
    let burn_5m: f64 = alert.annotations["burn_rate_5m"].parse().unwrap();
    assert!(
        burn_1h >= 14.4 && burn_5m >= 14.4,
        "{:?}",
        alert.annotations
    );
    assert!(
        alert.annotations["summary"].contains("error budget")
            && alert.annotations["budget_exhausted_in"].starts_with('~'),
        "{:?}",
        alert.annotations
    );
}

#[test]
fn slow_burn_pages_on_the_6h_30m_pair_not_the_1h_one() {
    // 6 h healthy (0.05% errors), then 1% errors: a 10x burn, far below any
    // static error-rate level and below the 1h pair's 14.4x, above the 6h
    // pair's 6x.
    let start = 6 * HOUR;
    let lines = requests(0, start + 5 * HOUR, 500, |t, i| {
        if t >= start {
            i % 100 == 0
        } else {
            i % 2000 == 0
        }
    });
    let mut e = engine();
    let out = run(&mut e, &lines);
    let fired = firing(&out);
    assert_eq!(fired.len(), 1, "{out:?}");
    let page = fired[0];
    let alert = e.render(page);
    assert_eq!(alert.labels["severity"], "critical");
    let burn_1h: f64 = alert.annotations["burn_rate_1h"].parse().unwrap();
    let burn_6h: f64 = alert.annotations["burn_rate_6h"].parse().unwrap();
    assert!(burn_1h < 14.4, "the 1h pair must not burn: {burn_1h}");
    assert_eq!(
        alert.annotations["burning_pairs"],
        "6h/30m at 6x (critical)"
    );
    assert!(burn_6h >= 6.0, "{burn_6h}");
    // The 6h window reaches 6x once about 60% of it is in the burn.
    let after = page.at - (T0 + start);
    assert!(
        (3 * HOUR..=5 * HOUR).contains(&after),
        "paged {} min into the burn",
        after / MIN
    );
}

#[test]
fn a_40_second_error_blip_does_not_page() {
    // 2 h healthy at 2 req/s, a 40 s total outage, then healthy again.
    let blip = 2 * HOUR;
    let lines = requests(0, 4 * HOUR, 500, |t, _| (blip..blip + 40_000).contains(&t));
    let out = run(&mut engine(), &lines);
    assert!(firing(&out).is_empty(), "{out:?}");
}

#[test]
fn one_failure_in_three_requests_does_not_page() {
    let lines = requests(0, 3 * 20_000, 20_000, |_, i| i == 1);
    let out = run(&mut engine(), &lines);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn restored_engine_continues_an_slo_exactly() {
    let start = 2 * HOUR;
    let lines = requests(0, 3 * HOUR, 500, |t, i| t >= start && i % 5 == 0);
    let whole = run(&mut engine(), &lines);
    for cut in [1, lines.len() / 3, 2 * lines.len() / 3 + 7, lines.len() - 1] {
        let mut first = engine();
        let mut out = Vec::new();
        for l in &lines[..cut] {
            first.ingest(&decode(l.as_bytes()).unwrap(), T0 + 400 * HOUR, &mut out);
        }
        let snap = first.snapshot();
        let json = serde_json::to_string(&snap).unwrap();
        let back = serde_json::from_str(&json).unwrap();
        assert_eq!(snap, back);
        let cfg = first.config().clone();
        let (mut second, _) = Engine::restore(cfg, back).unwrap();
        out.extend(run(&mut second, &lines[cut..]));
        assert_eq!(out, whole, "cut at {cut}");
        assert_eq!(second.snapshot(), {
            let mut e = engine();
            run(&mut e, &lines);
            e.snapshot()
        });
    }
}

#[test]
fn state_per_service_and_slo_stays_under_4_kib() {
    let lines = requests(0, 2 * HOUR, 500, |_, i| i % 100 == 0);
    let mut e = engine();
    run(&mut e, &lines);
    let bytes = e.state_breakdown()[4];
    eprintln!("state of one (service, SLO): {bytes} bytes");
    assert!(bytes <= 4096, "{bytes} bytes for one service's SLO");
}
