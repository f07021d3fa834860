use std::collections::HashSet;

use proptest::prelude::*;

use super::*;
use crate::alert::Alert;
use crate::config::{Aggregate, Config};
use crate::event::{decode, Event};
use crate::lifecycle::TransitionKind;
use crate::sketch::RELATIVE_ERROR;
use crate::time::parse_rfc3339;

const T0: Millis = 1_795_168_800_000; // 2026-11-20T10:00:00Z
const FAR_FUTURE: Millis = T0 + 86_400_000 * 365;

fn cfg(src: &str) -> Config {
    Config::parse(src, "test.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn ev(json: &str) -> Event<'_> {
    decode(json.as_bytes()).unwrap()
}

/// Feeds JSON lines; returns (rendered transitions as compact strings, outcomes).
fn run(engine: &mut Engine, lines: &[String], now: Millis) -> Vec<String> {
    let mut out = Vec::new();
    let mut rendered = Vec::new();
    for l in lines {
        engine.ingest(&ev(l), now, &mut out);
        rendered.extend(out.drain(..).map(|t| describe(engine, &t)));
    }
    rendered
}

fn describe(engine: &Engine, t: &Transition) -> String {
    let a = engine.render(t);
    format!(
        "{} {} {} {} {} {}",
        a.status,
        a.labels["alertname"],
        a.labels["service"],
        a.labels["severity"],
        a.evaluated_at,
        a.annotations.get("value").map_or("-", |v| v)
    )
}

fn req(service: &str, secs: i64, outcome: &str) -> String {
    format!(
        r#"{{"ts":{},"service":"{service}","kind":"request","outcome":"{outcome}","latency_ms":100}}"#,
        T0 + secs * 1000
    )
}

// ------------------------------------------------------------------ pane ≡ naive

const PROP_CONFIG: &str = r#"
[time]
allowed_lateness = "7s"
[[signals]]
name = "errors"
aggregate = "rate"
filter = { outcome = "error" }
of = { kind = "request" }
window = "30s"
slide = "10s"
[[signals]]
name = "complaints"
aggregate = "count"
filter = { complaint = true }
window = "25s"
slide = "10s"
[[signals]]
name = "lat_sum"
aggregate = "sum"
field = "latency_ms"
window = "20s"
slide = "20s"
[[signals]]
name = "lat_mean"
aggregate = "mean"
field = "latency_ms"
window = "30s"
slide = "15s"
[[signals]]
name = "lat_max"
aggregate = "max"
field = "latency_ms"
window = "40s"
slide = "10s"
[[signals]]
name = "lat_p90"
aggregate = "quantile"
quantile = 0.9
field = "latency_ms"
window = "30s"
slide = "5s"
# These share errors' geometry (30s/10s): one family of several members,
# two of them quantiles.
[[signals]]
name = "timeouts_ok"
aggregate = "rate"
filter = { outcome = "ok" }
window = "30s"
slide = "10s"
[[signals]]
name = "fam_p50"
aggregate = "quantile"
quantile = 0.5
field = "latency_ms"
window = "30s"
slide = "10s"
[[signals]]
name = "fam_mean"
aggregate = "mean"
field = "latency_ms"
filter = { kind = "request" }
window = "30s"
slide = "10s"
[[signals]]
name = "fam_p99"
aggregate = "quantile"
quantile = 0.99
field = "latency_ms"
filter = { complaint = false }
window = "30s"
slide = "10s"
[[rules]]
name = "r6"
kind = "threshold"
signal = "timeouts_ok"
warning = { value = 0.5, clear = 0.4 }
critical = 0.7
for = "10s"
[[rules]]
name = "r7"
kind = "threshold"
signal = "fam_p50"
critical = 1e15
[[rules]]
name = "r8"
kind = "threshold"
signal = "fam_mean"
critical = 1e15
[[rules]]
name = "r9"
kind = "threshold"
signal = "fam_p99"
critical = 1e15
[[rules]]
name = "r0"
kind = "threshold"
signal = "errors"
critical = 0.4
m_of_n = [2, 3]
[[rules]]
name = "r1"
kind = "threshold"
signal = "complaints"
critical = 1e9
[[rules]]
name = "r2"
kind = "threshold"
signal = "lat_sum"
critical = 1e15
[[rules]]
name = "r3"
kind = "threshold"
signal = "lat_mean"
critical = 1e15
[[rules]]
name = "r4"
kind = "threshold"
signal = "lat_max"
critical = 1e15
[[rules]]
name = "r5"
kind = "threshold"
signal = "lat_p90"
critical = 1e15
"#;

#[derive(Debug, Clone)]
struct Gen {
    ts: i64,
    service: u8,
    kind_request: bool,
    error: bool,
    complaint: bool,
    latency: Option<u32>,
}

impl Gen {
    fn json(&self) -> String {
        let mut s = format!(
            r#"{{"ts":{},"service":"s{}","kind":"{}","outcome":"{}","complaint":{}"#,
            T0 + self.ts,
            self.service,
            if self.kind_request {
                "request"
            } else {
                "feedback"
            },
            if self.error { "error" } else { "ok" },
            self.complaint
        );
        if let Some(l) = self.latency {
            s.push_str(&format!(r#","latency_ms":{l}"#));
        }
        s.push('}');
        s
    }
}

fn gen_event() -> impl Strategy<Value = Gen> {
    (
        0i64..240_000,
        0u8..3,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(1u32..5000),
    )
        .prop_map(
            |(ts, service, kind_request, error, complaint, latency)| Gen {
                ts,
                service,
                kind_request,
                error,
                complaint,
                latency,
            },
        )
}

/// Exact value of a signal over [start, end) from the applied events.
fn naive(
    def: &crate::config::SignalDef,
    events: &[Gen],
    service: &str,
    start: Millis,
    end: Millis,
) -> (Option<f64>, u64, Vec<f64>) {
    let mut n = 0u64;
    let mut d = 0u64;
    let mut vals = Vec::new();
    for g in events {
        let ts = T0 + g.ts;
        if format!("s{}", g.service) != service || ts < start || ts >= end {
            continue;
        }
        let json = g.json();
        let e = ev(&json);
        let matched = def.filter.matches(&e);
        match def.aggregate {
            Aggregate::Rate => {
                let den = def.of.as_ref().is_none_or(|f| f.matches(&e));
                d += u64::from(den);
                n += u64::from(matched && den);
            }
            Aggregate::Count => n += u64::from(matched),
            _ => {
                if let (true, Some(v)) = (matched, def.field.and_then(|f| f.of(&e))) {
                    n += 1;
                    vals.push(v);
                }
            }
        }
    }
    let value = match def.aggregate {
        Aggregate::Count => Some(n as f64),
        Aggregate::Rate => (d > 0).then(|| n as f64 / d as f64),
        Aggregate::Sum => Some(vals.iter().sum()),
        Aggregate::Mean => (n > 0).then(|| vals.iter().sum::<f64>() / n as f64),
        Aggregate::Max => vals.iter().copied().reduce(f64::max),
        Aggregate::Quantile(q) => {
            vals.sort_by(f64::total_cmp);
            (!vals.is_empty()).then(|| vals[(q * (vals.len() - 1) as f64).floor() as usize])
        }
        Aggregate::Timer(_) => unimplemented!("the property config has no timer signals"),
    };
    let events = if def.aggregate == Aggregate::Rate {
        d
    } else {
        n
    };
    (value, events, vals)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// For random out-of-order streams, every window the engine evaluates equals a
    /// naive recompute over the raw applied events of that window, no window holding
    /// data is skipped, and no event within the lateness of every applied one is
    /// late. Sparse streams make services lead (jumps past `idle_timeout`), so
    /// this covers evaluation on a service's own time too.
    #[test]
    fn pane_windows_equal_naive_recompute(mut events in prop::collection::vec(gen_event(), 1..300), disorder in 0i64..20_000) {
        // Mostly ordered with bounded jitter, so some events are late and most are not.
        events.sort_by_key(|g| g.ts + (g.ts * 7919 % (disorder + 1)));
        let config = cfg(PROP_CONFIG);
        let lateness = config.time.allowed_lateness;
        let mut engine = Engine::new(config.clone());
        engine.set_trace(true);
        let mut out = Vec::new();
        let mut applied = Vec::new();
        let mut max_ts = Millis::MIN;
        for g in &events {
            let json = g.json();
            let e = ev(&json);
            let outcome = engine.ingest(&e, FAR_FUTURE, &mut out);
            // Within the lateness of every applied event it is never late; late,
            // it is behind some applied event by more (its service's, or the
            // partition's when its service keeps pace: see `lead.rs`).
            let behind = max_ts != Millis::MIN && e.ts < max_ts - lateness;
            prop_assert!(outcome != Outcome::Late || behind, "{} late", e.ts);
            prop_assert!(behind || outcome == Outcome::Applied, "{} {:?}", e.ts, outcome);
            if outcome == Outcome::Applied {
                applied.push(g.clone());
                max_ts = max_ts.max(e.ts);
            }
        }
        engine.finish(&mut out);
        let trace = engine.take_trace();
        let mut seen = HashSet::new();
        for t in &trace {
            prop_assert!(seen.insert((t.rule, t.group, t.at)), "window evaluated twice: {:?}", t);
            let rule = &config.rules[t.rule as usize];
            let def = &config.signals[rule.signal().unwrap()];
            let service = engine.group_key(rule.signal().unwrap(), t.group).service.clone();
            let (value, count, vals) = naive(def, &applied, &service, t.at - def.window, t.at);
            prop_assert_eq!(t.value.events, count, "{} {} at {}", def.name, service, t.at);
            match (t.value.value, value, def.aggregate) {
                (None, None, _) => {}
                (Some(got), Some(want), Aggregate::Quantile(_)) => {
                    prop_assert!(((got - want) / want).abs() <= RELATIVE_ERROR + 1e-12, "{} {} vs {} ({:?})", def.name, got, want, vals);
                }
                (Some(got), Some(want), _) => {
                    prop_assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{} {} vs {}", def.name, got, want);
                }
                (got, want, _) => prop_assert!(false, "{}: engine {:?}, naive {:?}", def.name, got, want),
            }
        }
        // Completeness: every closed window holding data was evaluated.
        let final_w = engine.clock().watermark;
        for (ri, rule) in config.rules.iter().enumerate() {
            let def = &config.signals[rule.signal().unwrap()];
            for g in 0..engine.groups(rule.signal().unwrap()) as u32 {
                let service = engine.group_key(rule.signal().unwrap(), g).service.clone();
                let first = applied.iter().map(|e| T0 + e.ts).min().unwrap();
                let mut at = (first.div_euclid(def.slide) + 1) * def.slide;
                while at <= final_w {
                    let (_, count, _) = naive(def, &applied, &service, at - def.window, at);
                    if count > 0 {
                        prop_assert!(seen.contains(&(ri as u32, g, at)), "{} {} window ending {} with {} events not evaluated", def.name, service, at, count);
                    }
                    at += def.slide;
                }
            }
        }
    }
}
// ------------------------------------------------------------- snapshot/restore

#[test]
fn restored_engine_continues_exactly() {
    let src = include_str!("../../../../tests/scenarios/checkout_incident.toml");
    let lines: Vec<String> = include_str!("../../../../tests/scenarios/checkout_incident.ndjson")
        .lines()
        .filter(|l| decode(l.as_bytes()).is_ok())
        .map(String::from)
        .collect();
    let now = parse_rfc3339("2026-11-20T11:00:00Z").unwrap();
    let mut whole = Engine::new(cfg(src));
    let expected = run(&mut whole, &lines, now);
    assert!(
        expected.len() >= 7,
        "scenario must produce its incident: {expected:?}"
    );
    // Cut at several points, including mid-incident (pending and firing states).
    for cut in [1, 700, 1000, 1100, 1500, 2050] {
        let mut first = Engine::new(cfg(src));
        let mut got = run(&mut first, &lines[..cut], now);
        let bytes = serde_json::to_vec(&first.snapshot()).unwrap();
        let snap: Snapshot = serde_json::from_slice(&bytes).unwrap();
        let (mut second, r) = Engine::restore(cfg(src), snap).unwrap();
        assert!(!r.carried.signals.any() && !r.carried.rules.any(), "{r:?}");
        assert!(r.retired.is_empty(), "{r:?}");
        got.extend(run(&mut second, &lines[cut..], now));
        assert_eq!(got, expected, "cut at {cut}");
        assert_eq!(
            second.snapshot(),
            whole.snapshot(),
            "state after cut at {cut}"
        );
    }
}

// ------------------------------------------------------------------ reconfigure

fn checkout() -> (&'static str, Vec<String>, Millis) {
    let src = include_str!("../../../../tests/scenarios/checkout_incident.toml");
    let lines = include_str!("../../../../tests/scenarios/checkout_incident.ndjson")
        .lines()
        .filter(|l| decode(l.as_bytes()).is_ok())
        .map(String::from)
        .collect();
    (src, lines, parse_rfc3339("2026-11-20T11:00:00Z").unwrap())
}

/// Index of the first line at or after `secs` into the scenario (its hour:
/// the scenario holds a line from years ahead, refused as too far in the future).
fn line_at(lines: &[String], secs: i64) -> usize {
    let hour = T0 + secs * 1000..T0 + 3_600_000;
    lines.iter().position(|l| hour.contains(&ev(l).ts)).unwrap()
}

fn of_rule<'a>(transitions: &'a [String], rule: &str) -> Vec<&'a str> {
    let rule = format!(" {rule} ");
    transitions
        .iter()
        .filter(|t| t.contains(&rule))
        .map(String::as_str)
        .collect()
}

/// Reloading the config it runs changes nothing: the run continues exactly,
/// whatever state the cut catches (before the incident, pending, firing,
/// resolved, silent).
#[test]
fn reconfiguring_to_the_same_config_continues_exactly() {
    let (src, lines, now) = checkout();
    let mut whole = Engine::new(cfg(src));
    let expected = run(&mut whole, &lines, now);
    for secs in [0, 495, 515, 545, 700, 1000] {
        let cut = line_at(&lines, secs);
        let mut first = Engine::new(cfg(src));
        let mut got = run(&mut first, &lines[..cut], now);
        let (mut second, r) = first.reconfigure(cfg(src));
        assert!(r.retired.is_empty(), "{:?}", r.retired);
        assert!(!r.carried.signals.any() && !r.carried.rules.any(), "{r:?}");
        got.extend(run(&mut second, &lines[cut..], now));
        assert_eq!(got, expected, "cut at {secs}s");
        assert_eq!(second.snapshot(), whole.snapshot(), "cut at {secs}s");
    }
}

const P90: &str = r#"[[signals]]
name = "p90"
aggregate = "quantile"
quantile = 0.9
field = "latency_ms"
window = "1m"
slide = "10s"

"#;

const LATENCY_RULE: &str = r#"
[[rules]]
name = "LatencyHigh"
kind = "threshold"
signal = "p90"
warning = { value = 100000 }
"#;

/// A reload that adds a signal of the same geometry (so it joins the family of
/// the kept ones, ahead of them in the file), adds a rule and edits another:
/// the unchanged rule goes on exactly as if nothing happened, mid-incident
/// included; the edited one restarts under its new definition.
#[test]
fn reconfiguring_keeps_unchanged_rules_and_restarts_edited_ones() {
    let (src, lines, now) = checkout();
    let edited = format!(
        "{}{LATENCY_RULE}",
        src.replacen("[[signals]]", &format!("{P90}[[signals]]"), 1)
            .replace(r#"for = "2m""#, r#"for = "3m""#)
    );
    for secs in [0, 495, 515, 545, 600] {
        let cut = line_at(&lines, secs);
        let mut whole = Engine::new(cfg(src));
        run(&mut whole, &lines[..cut], now);
        let unchanged = run(&mut whole, &lines[cut..], now);
        let mut first = Engine::new(cfg(src));
        run(&mut first, &lines[..cut], now);
        let (mut second, r) = first.reconfigure(cfg(&edited));
        let after = run(&mut second, &lines[cut..], now);
        assert_eq!(r.carried.signals.kept, ["error_rate", "requests"]);
        assert_eq!(r.carried.signals.added, ["p90"]);
        assert_eq!(r.carried.rules.kept, ["ErrorRateHigh"]);
        assert_eq!(r.carried.rules.restarted, ["ServiceSilent"]);
        assert_eq!(r.carried.rules.added, ["LatencyHigh"]);
        assert!(r.retired.is_empty());
        assert_eq!(
            of_rule(&after, "ErrorRateHigh"),
            of_rule(&unchanged, "ErrorRateHigh"),
            "cut at {secs}s"
        );
        // The edited absent rule now waits 3 minutes of silence, not 2.
        let silent = of_rule(&after, "ServiceSilent");
        assert_eq!(silent.len(), 1, "{silent:?}");
        assert!(silent[0].contains("10:18:00"), "{silent:?}");
    }
}

/// A changed level restarts the rule: its pending and firing alerts end at
/// the reload, under the fingerprint and episode they fired with, and an
/// incident in progress goes pending again under the new level. A removed
/// rule's alerts end the same way, at a reload and at a restore alike.
#[test]
fn reconfiguring_ends_changed_and_removed_rules_alerts() {
    let (src, lines, now) = checkout();
    let cut = line_at(&lines, 545);
    let mut first = Engine::new(cfg(src));
    let so_far = run(&mut first, &lines[..cut], now);
    let firing: Vec<Alert> = first.active().iter().map(|t| first.render(t)).collect();
    assert_eq!(
        firing.len(),
        2,
        "warning firing, critical pending: {so_far:?}"
    );
    type End = (String, String, String);
    let end = |a: &Alert, status: &str| -> End {
        (status.to_string(), a.fingerprint.clone(), a.episode.clone())
    };
    let expected = sorted(firing.iter().map(|a| {
        let status = if a.status == "firing" {
            "resolved"
        } else {
            "inactive"
        };
        end(a, status)
    }));
    let ended =
        |r: &Reconfigured| -> Vec<End> { sorted(r.retired.iter().map(|a| end(a, a.status))) };

    let lowered = src.replace("value = 0.05, clear = 0.03", "value = 0.04, clear = 0.03");
    let (mut second, r) = Engine::new(cfg(src)).reconfigure(cfg(src));
    assert!(r.retired.is_empty());
    run(&mut second, &lines[..cut], now);
    let (mut second, r) = second.reconfigure(cfg(&lowered));
    assert_eq!(r.carried.rules.restarted, ["ErrorRateHigh"]);
    assert_eq!(ended(&r), expected);
    let after = run(&mut second, &lines[cut..], now);
    assert!(
        of_rule(&after, "ErrorRateHigh")[0].starts_with("pending"),
        "{after:?}"
    );

    let without = src.replace("name = \"ErrorRateHigh\"", "name = \"ErrorRateHigher\"");
    // A checkpoint restored under the edited config ends them just the same,
    // though the config that rendered them is gone.
    let bytes = serde_json::to_vec(&first.snapshot()).unwrap();
    let (_, r) = Engine::restore(cfg(&without), serde_json::from_slice(&bytes).unwrap()).unwrap();
    assert_eq!(ended(&r), expected);
    let (_, r) = first.reconfigure(cfg(&without));
    assert_eq!(r.carried.rules.removed, ["ErrorRateHigh"]);
    assert_eq!(r.carried.rules.added, ["ErrorRateHigher"]);
    assert_eq!(ended(&r), expected);
}

fn sorted<T: Ord>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut v: Vec<T> = items.collect();
    v.sort();
    v
}

// --------------------------------------------------------------- time semantics

const SIMPLE: &str = r#"
[time]
allowed_lateness = "5s"
idle_timeout = "30s"
max_future_skew = "1m"
[[signals]]
name = "err"
aggregate = "rate"
filter = { outcome = "error" }
window = "1m"
slide = "10s"
[[signals]]
name = "requests"
aggregate = "count"
window = "10s"
[[rules]]
name = "Err"
kind = "threshold"
signal = "err"
critical = 0.5
min_events = 4
[[rules]]
name = "Silent"
kind = "absent"
signal = "requests"
for = "1m"
"#;

#[test]
fn late_events_are_counted_and_never_reopen_a_window() {
    let mut e = Engine::new(cfg(SIMPLE));
    let mut out = Vec::new();
    assert_eq!(
        e.ingest(&ev(&req("a", 100, "ok")), FAR_FUTURE, &mut out),
        Outcome::Applied
    );
    // Within lateness: applied.
    assert_eq!(
        e.ingest(&ev(&req("a", 96, "ok")), FAR_FUTURE, &mut out),
        Outcome::Applied
    );
    // Older than the watermark (100 - 5): late.
    assert_eq!(
        e.ingest(&ev(&req("a", 94, "error")), FAR_FUTURE, &mut out),
        Outcome::Late
    );
    assert_eq!(e.stats().late, 1);
    assert_eq!(e.stats().applied, 2);
}

#[test]
fn far_future_events_are_rejected() {
    let mut e = Engine::new(cfg(SIMPLE));
    let mut out = Vec::new();
    let now = T0 + 10_000;
    assert_eq!(
        e.ingest(&ev(&req("a", 10 + 61, "ok")), now, &mut out),
        Outcome::TooFarInFuture
    );
    assert_eq!(
        e.clock().max_ts,
        Millis::MIN,
        "a rejected event must not move the watermark"
    );
    assert_eq!(
        e.ingest(&ev(&req("a", 10 + 59, "ok")), now, &mut out),
        Outcome::Applied
    );
    assert_eq!(e.stats().future, 1);
}

#[test]
fn idle_partition_advances_watermark_and_fires_absent() {
    let mut e = Engine::new(cfg(SIMPLE));
    let mut out = Vec::new();
    let wall = T0 + 1_000;
    for s in 0..20 {
        e.ingest(&ev(&req("a", s, "ok")), wall, &mut out);
    }
    assert!(out.is_empty());
    // Not idle long enough yet: nothing moves.
    e.tick(wall + 29_000, &mut out);
    assert!(out.is_empty());
    let w = e.clock().watermark;
    // Idle: the watermark follows the wall clock; after 1 minute of silence the
    // absent rule fires.
    e.tick(wall + 30_000, &mut out);
    assert!(e.clock().watermark > w);
    assert!(out.is_empty(), "{out:?}");
    e.tick(T0 + 19_000 + 60_000 + 5_000 + 10_000, &mut out);
    let fired: Vec<String> = out.iter().map(|t| describe(&e, t)).collect();
    assert_eq!(
        fired,
        vec!["firing Silent a critical 2026-11-20T10:01:20.000Z 61"]
    );
    // Data returns: the absent alert resolves at the next evaluation.
    out.clear();
    let back = T0 + 200_000;
    e.ingest(
        &ev(&format!(r#"{{"ts":{back},"service":"a"}}"#)),
        back,
        &mut out,
    );
    e.ingest(
        &ev(&format!(r#"{{"ts":{},"service":"a"}}"#, back + 20_000)),
        back,
        &mut out,
    );
    assert!(
        out.iter().any(|t| t.kind == TransitionKind::Resolved),
        "{out:?}"
    );
}

#[test]
fn min_events_stops_one_error_in_two_requests_from_paging() {
    let mut e = Engine::new(cfg(SIMPLE));
    let lines: Vec<String> = vec![
        req("a", 0, "error"),
        req("a", 1, "ok"),
        req("b", 0, "error"),
        req("b", 1, "error"),
        req("b", 2, "ok"),
        req("b", 3, "error"),
        req("z", 100, "ok"),
    ];
    let mut got = run(&mut e, &lines, FAR_FUTURE);
    let mut out = Vec::new();
    e.finish(&mut out);
    got.extend(out.iter().map(|t| describe(&e, t)));
    got.retain(|t| t.contains(" Err "));
    // b: 3 errors of 4 requests pages; a: 1 error of 2 requests is below min_events.
    // z, 97 s ahead of the others, is on its own time and closes none of their
    // windows; the end of input closes them up to 100 s, resolving b's alert.
    assert_eq!(
        got,
        vec![
            "firing Err b critical 2026-11-20T10:00:10.000Z 0.75",
            "resolved Err b critical 2026-11-20T10:01:10.000Z -"
        ]
    );
}

#[test]
fn cardinality_cap_refuses_new_groups_and_counts_them() {
    let src = format!("[limits]\nmax_groups = 3\n{SIMPLE}");
    let mut e = Engine::new(cfg(&src));
    let mut out = Vec::new();
    for i in 0..10 {
        e.ingest(&ev(&req(&format!("svc{i}"), i, "ok")), FAR_FUTURE, &mut out);
    }
    assert_eq!(e.groups(0), 3);
    assert_eq!(e.stats().refused_groups, 7);
    // Counted nowhere, so not applied: refused.
    assert_eq!((e.stats().applied, e.stats().refused), (3, 7));
}

#[test]
fn max_memory_caps_groups_at_what_fits() {
    let config = cfg(&format!("[limits]\nmax_memory = \"4KiB\"\n{SIMPLE}"));
    let cap = config.group_cap;
    assert!(
        cap > 1 && cap < 10,
        "4 KiB holds a few groups of {:?}",
        config.group_state
    );
    let mut e = Engine::new(config);
    let mut out = Vec::new();
    for i in 0..10 {
        e.ingest(&ev(&req(&format!("svc{i}"), i, "ok")), FAR_FUTURE, &mut out);
    }
    assert_eq!(e.groups(0), cap);
    assert_eq!(e.stats().refused_groups, 10 - cap as u64);
}

const ERRORS_ONLY: &str = r#"
[limits]
max_groups = 3
[time]
allowed_lateness = "5s"
[[signals]]
name = "err"
aggregate = "rate"
filter = { outcome = "error" }
window = "1m"
slide = "10s"
[[rules]]
name = "Err"
kind = "threshold"
signal = "err"
critical = 0.5
min_events = 4
"#;

/// Services `steady` every second over `0..secs`, plus `extra(t)` at second t.
fn timeline(steady: &[&str], secs: i64, extra: impl Fn(i64) -> Vec<String>) -> Vec<String> {
    let mut lines = Vec::new();
    for t in 0..secs {
        lines.extend(steady.iter().map(|s| req(s, t, "ok")));
        lines.extend(extra(t));
    }
    lines
}

/// Steady "a" and "b" for 300 s; at 1 s twenty one-off services; from 200 s a
/// new service "c" failing every request.
fn flood_then_failing_newcomer() -> Vec<String> {
    timeline(&["a", "b"], 300, |t| match t {
        1 => (0..20)
            .map(|i| req(&format!("flood{i}"), t, "ok"))
            .collect(),
        200.. => vec![req("c", t, "error")],
        _ => vec![],
    })
}

#[test]
fn idle_groups_are_reclaimed_so_a_newcomer_is_tracked_after_a_flood() {
    let mut e = Engine::new(cfg(ERRORS_ONLY));
    // At 1 s a flood of 20 one-off services: the first takes the last free
    // slot, 19 are refused. From 200 s a new service "c" fails every request.
    let lines = flood_then_failing_newcomer();
    let got = run(&mut e, &lines, FAR_FUTURE);
    assert!(
        got.iter().any(|l| l.starts_with("firing Err c critical")),
        "the newcomer pages: {got:?}"
    );
    // c's first event is refused; it makes the next slide release flood0 (idle
    // since 1 s, no alert), and c's later events get its slot.
    assert_eq!(e.stats().refused_groups, 20);
    assert_eq!(e.stats().reclaimed_groups, 1);
    assert_eq!(e.groups(0), 3, "never more than max_groups");
    let services: Vec<String> = e
        .readings()
        .iter()
        .map(|r| e.rule_group_labels(r.rule, r.group)[0].1.clone())
        .collect();
    assert!(
        !services.iter().any(|s| s.is_empty() || s == "flood0"),
        "{services:?}"
    );
    // Cut anywhere around the reclaim (incl. while flood0's slot is free), a
    // snapshot restored under the same config continues exactly.
    let first_c = lines
        .iter()
        .position(|l| l.contains(r#""service":"c""#))
        .unwrap();
    for cut in first_c - 4..first_c + 12 {
        let mut before = Engine::new(cfg(ERRORS_ONLY));
        let mut joined = run(&mut before, &lines[..cut], FAR_FUTURE);
        let (mut after, _) = Engine::restore(cfg(ERRORS_ONLY), before.snapshot()).unwrap();
        joined.extend(run(&mut after, &lines[cut..], FAR_FUTURE));
        assert_eq!(joined, got, "cut at line {cut}");
        assert_eq!(after.snapshot(), e.snapshot(), "cut at line {cut}");
    }
}

#[test]
fn groups_watched_for_silence_are_never_reclaimed() {
    // SIMPLE has an absent rule per service: a service gone quiet is exactly
    // what it pages on, so its group must stay even when the cap is reached.
    let src = format!("[limits]\nmax_groups = 2\n{SIMPLE}");
    let mut e = Engine::new(cfg(&src));
    // "quiet" sends for 20 s, past the rule's established_after (one slide).
    let lines = timeline(&["a"], 300, |t| match t {
        0..20 => vec![req("quiet", t, "ok")],
        200.. => vec![req("c", t, "ok")],
        _ => vec![],
    });
    let got = run(&mut e, &lines, FAR_FUTURE);
    assert!(
        got.iter().any(|l| l.starts_with("firing Silent quiet")),
        "{got:?}"
    );
    assert_eq!(e.stats().reclaimed_groups, 0);
    assert_eq!(e.stats().refused_groups, 100, "every event of c is refused");
}

#[test]
fn a_flood_of_one_off_services_pages_no_silence_and_leaves_room_for_a_newcomer() {
    // Two slots after a and b; at 1 s twenty one-off services (two get slots,
    // the rest are refused). They never establish, so their silence pages
    // nothing and their slots are reclaimed for "c", which fails from 200 s.
    let src = format!("[limits]\nmax_groups = 4\n{SIMPLE}");
    let mut e = Engine::new(cfg(&src));
    let lines = flood_then_failing_newcomer();
    let got = run(&mut e, &lines, FAR_FUTURE);
    assert!(!got.iter().any(|l| l.contains("Silent")), "{got:?}");
    assert!(got.iter().any(|l| l.starts_with("firing Err c")), "{got:?}");
    assert!(e.stats().reclaimed_groups >= 2, "{:?}", e.stats());
    // Once the input stops, a (sending all along) pages its silence.
    let mut out = Vec::new();
    e.tick(FAR_FUTURE + 30_000, &mut out);
    let late: Vec<String> = out.iter().map(|t| describe(&e, t)).collect();
    assert!(
        late.iter().any(|l| l.starts_with("firing Silent a")),
        "{late:?}"
    );
}

/// A rate rule and a p99 rule, each with or without `confidence`.
fn noisy_rules(confidence: &str) -> String {
    format!(
        r#"
[time]
allowed_lateness = "0s"
[[signals]]
name = "err"
aggregate = "rate"
filter = {{ outcome = "error" }}
window = "10s"
[[signals]]
name = "p99"
aggregate = "quantile"
quantile = 0.99
field = "latency_ms"
window = "10s"
[[rules]]
name = "Err"
kind = "threshold"
signal = "err"
warning = 0.15
min_events = 5
{confidence}
[[rules]]
name = "Slow"
kind = "threshold"
signal = "p99"
warning = 1000
min_events = 50
{confidence}
"#
    )
}

/// `per_window` requests in each of the first three 10 s windows, `errors` of
/// them failing and `slow` of them taking 5 s (the rest 100 ms), then one
/// request in the fourth window to close the third.
fn sample(per_window: i64, errors: i64, slow: i64) -> Vec<String> {
    let mut lines = Vec::new();
    for w in 0..3 {
        for i in 0..per_window {
            let ts = T0 + w * 10_000 + i * 10_000 / per_window;
            let outcome = if i < errors { "error" } else { "ok" };
            let latency = if i >= per_window - slow { 5000 } else { 100 };
            lines.push(format!(
                r#"{{"ts":{ts},"service":"s","kind":"request","outcome":"{outcome}","latency_ms":{latency}}}"#
            ));
        }
    }
    lines.push(req("s", 35, "ok"));
    lines
}

fn fired(confidence: &str, lines: &[String]) -> Vec<String> {
    let mut e = Engine::new(cfg(&noisy_rules(confidence)));
    run(&mut e, lines, FAR_FUTURE)
        .into_iter()
        .filter(|l| l.starts_with("firing"))
        .map(|l| l.split(' ').nth(1).unwrap().to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[test]
fn confidence_keeps_small_samples_from_paging_but_not_real_breaches() {
    // 2 errors in 10 (20% > 15%) and 2 slow requests in 60 (p99 = 5 s): the
    // estimates breach, the evidence does not.
    let small = sample(60, 0, 2);
    let few = sample(10, 2, 0);
    assert_eq!(fired("", &small), vec!["Slow"]);
    assert_eq!(fired("", &few), vec!["Err"]);
    assert!(fired("confidence = 0.95", &small).is_empty());
    assert!(fired("confidence = 0.95", &few).is_empty());
    // 25% errors and 5% slow requests out of 400: certain at 95%.
    let real = sample(400, 100, 20);
    assert_eq!(fired("confidence = 0.95", &real), vec!["Err", "Slow"]);
}

// ---------------------------------------------------------------- debouncing

fn flapping(trigger: &str) -> Vec<String> {
    let src = format!(
        r#"
[time]
allowed_lateness = "0s"
[[signals]]
name = "err"
aggregate = "rate"
filter = {{ outcome = "error" }}
window = "10s"
[[rules]]
name = "Flap"
kind = "threshold"
signal = "err"
critical = 0.5
{trigger}
"#
    );
    let mut e = Engine::new(cfg(&src));
    // Tumbling 10 s windows alternating bad (all errors) and good (all ok).
    let mut lines = Vec::new();
    for w in 0..8 {
        let outcome = if w % 2 == 0 { "error" } else { "ok" };
        for s in 0..10 {
            lines.push(req("pay", w * 10 + s, outcome));
        }
    }
    lines.push(req("pay", 200, "ok"));
    run(&mut e, &lines, FAR_FUTURE)
}

#[test]
fn for_is_reset_by_one_good_window_but_m_of_n_is_not() {
    let with_for = flapping("for = \"20s\"");
    assert!(
        with_for.iter().all(|t| !t.starts_with("firing")),
        "{with_for:?}"
    );
    let m_of_n = flapping("m_of_n = [2, 3]");
    assert_eq!(
        m_of_n[0],
        "pending Flap pay critical 2026-11-20T10:00:10.000Z 1"
    );
    assert_eq!(
        m_of_n[1],
        "firing Flap pay critical 2026-11-20T10:00:30.000Z 1"
    );
}

#[test]
fn keep_firing_for_holds_through_a_short_recovery() {
    let src = SIMPLE
        .replace(
            "min_events = 4",
            "min_events = 1\nkeep_firing_for = \"30s\"",
        )
        .replace("window = \"1m\"\nslide = \"10s\"", "window = \"10s\"");
    let mut e = Engine::new(cfg(&src));
    let mut lines = Vec::new();
    for s in 0..10 {
        lines.push(req("a", s, "error"));
    }
    for s in 10..100 {
        lines.push(req("a", s, "ok"));
    }
    let got = run(&mut e, &lines, FAR_FUTURE);
    // Fires at 10 s; clear from 20 s on; resolved once clear held 30 s (at 50 s).
    assert_eq!(
        got,
        vec![
            "firing Err a critical 2026-11-20T10:00:10.000Z 1",
            "resolved Err a critical 2026-11-20T10:00:50.000Z 0"
        ]
    );
}

#[test]
fn alerts_have_alertmanager_shape() {
    let mut e = Engine::new(cfg(SIMPLE));
    let mut out = Vec::new();
    for s in 0..10 {
        e.ingest(&ev(&req("a", s, "error")), FAR_FUTURE, &mut out);
    }
    e.ingest(&ev(&req("a", 30, "ok")), FAR_FUTURE, &mut out);
    let a = e.render(&out[0]);
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(json["status"], "firing");
    assert_eq!(json["labels"]["alertname"], "Err");
    assert_eq!(json["labels"]["service"], "a");
    assert_eq!(json["labels"]["severity"], "critical");
    assert_eq!(json["startsAt"], "2026-11-20T10:00:10.000Z");
    assert!(json.get("endsAt").is_none());
    assert_eq!(json["generatorURL"], "http://localhost:9898/rules/Err");
    assert_eq!(json["annotations"]["value"], "1");
    assert_eq!(json["fingerprint"].as_str().unwrap().len(), 16);
    assert_eq!(
        a.fingerprint,
        format!("{:016x}", crate::alert::fingerprint(&a.labels))
    );
}

#[test]
fn active_lists_pending_and_firing_instances() {
    let mut e = Engine::new(cfg(SIMPLE));
    let mut out = Vec::new();
    for s in 0..10 {
        e.ingest(&ev(&req("a", s, "error")), FAR_FUTURE, &mut out);
    }
    e.ingest(&ev(&req("b", 5, "ok")), FAR_FUTURE, &mut out);
    assert!(e.active().is_empty(), "nothing evaluated yet");
    e.ingest(&ev(&req("a", 15, "error")), FAR_FUTURE, &mut out);
    let active: Vec<String> = e.active().iter().map(|t| describe(&e, t)).collect();
    assert_eq!(
        active,
        // The latest value comes along, so summaries read in full.
        vec!["firing Err a critical 2026-11-20T10:00:10.000Z 1"]
    );
    // The errors leave the window: the alert resolves and the list empties.
    e.ingest(&ev(&req("a", 90, "ok")), FAR_FUTURE, &mut out);
    assert!(out.iter().any(|t| t.kind == TransitionKind::Resolved));
    assert!(
        e.active()
            .iter()
            .all(|t| e.render(t).labels["alertname"] != "Err"),
        "{:?}",
        e.active()
    );
}

/// One group's sketch memory under the widest spread of latencies an event may
/// carry stays within the bucket cap: (ring slots + the window) x MAX_BUCKETS
/// buckets, where uncapped sketches grew with the spread.
#[test]
fn a_wide_spread_of_latencies_keeps_sketch_memory_capped() {
    use crate::sketch::MAX_BUCKETS;
    let src = "[time]\nallowed_lateness = \"10s\"\n[[signals]]\nname = \"p99\"\naggregate = \"quantile\"\nquantile = 0.99\nfield = \"latency_ms\"\nwindow = \"5m\"\nslide = \"10s\"\n[[rules]]\nname = \"Slow\"\nkind = \"threshold\"\nsignal = \"p99\"\nwarning = 1000\n";
    let config = cfg(src);
    let slots = crate::window::ring_len(&config.signals[0], config.time.allowed_lateness);
    let mut e = Engine::new(config);
    let mut out = Vec::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..200_000i64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Log-uniform over 1e-6 .. 1e12 ms: every bucket the key range holds.
        let latency = 1e-6 * 10f64.powf(18.0 * (x % 1_000_000) as f64 / 1e6);
        let line = format!(
            r#"{{"ts":{},"service":"wide","latency_ms":{latency}}}"#,
            T0 + i * 3
        );
        e.ingest(&ev(&line), FAR_FUTURE, &mut out);
    }
    let buckets = e.state_breakdown()[3];
    eprintln!("sketch buckets {buckets} B, state {} B", e.state_bytes());
    let bound = (slots + 1) * MAX_BUCKETS * 8;
    assert!(buckets <= bound, "sketch buckets {buckets} B > {bound} B");
    assert!(e.stats().applied == 200_000);
}

/// Service `a` for 300 s at 10 requests/s, failing two requests in three from
/// 120 s on; with `skewed`, one event of service `b` whose clock runs 4 min
/// ahead arrives at 10 s. Returns `a`'s Err transitions (status and window
/// end) and the engine's counters. The wall clock is `a`'s.
fn shared_partition(skewed: bool) -> (Vec<String>, Stats) {
    shared_partition_with(skewed.then_some(240_000), "")
}

/// [`shared_partition`] with `b` running `skew` ahead, and `time` added to
/// the `[time]` table.
fn shared_partition_with(skew: Option<Millis>, time: &str) -> (Vec<String>, Stats) {
    let src = SIMPLE.replace(
        "max_future_skew = \"1m\"",
        &format!("max_future_skew = \"10m\"\n{time}"),
    );
    let mut e = Engine::new(cfg(&src));
    let mut out = Vec::new();
    let mut got = Vec::new();
    for i in 0..3000i64 {
        let ms = i * 100;
        let outcome = if ms >= 120_000 && i % 3 != 0 {
            "error"
        } else {
            "ok"
        };
        let line = format!(
            r#"{{"ts":{},"service":"a","kind":"request","outcome":"{outcome}"}}"#,
            T0 + ms
        );
        e.ingest(&ev(&line), T0 + ms, &mut out);
        if let (Some(skew), 10_000) = (skew, ms) {
            let b = format!(
                r#"{{"ts":{},"service":"b","kind":"request","outcome":"ok"}}"#,
                T0 + ms + skew
            );
            assert_eq!(e.ingest(&ev(&b), T0 + ms, &mut out), Outcome::Applied);
        }
        got.extend(out.drain(..).map(|t| describe(&e, &t)));
    }
    got.retain(|t| t.contains(" Err a "));
    (got, e.stats())
}

#[test]
fn a_service_whose_clock_runs_ahead_hurts_no_other_service_in_its_partition() {
    let (alone, _) = shared_partition(false);
    let (shared, stats) = shared_partition(true);
    assert!(alone.iter().any(|t| t.starts_with("firing")), "{alone:?}");
    // Not one of a's events is late, and a pages at the same window end.
    assert_eq!(stats.late, 0, "{stats:?}");
    assert_eq!(stats.applied, 3001);
    assert_eq!(shared, alone);
}

/// A clock 20 s ahead is inside the default lead (the 30 s idle timeout) but
/// beyond the 5 s lateness: it moves the partition and makes 15 s of `a`'s
/// events late, unless `max_service_lead` is set below it.
#[test]
fn a_shorter_service_lead_protects_from_smaller_skews() {
    let (alone, _) = shared_partition(false);
    let (_, hurt) = shared_partition_with(Some(20_000), "");
    // a's events of the next 15 s (20 s skew less 5 s lateness) come late.
    assert!(
        (140..=160).contains(&hurt.late),
        "the default lead lets 20 s move the partition: {hurt:?}"
    );
    let (shared, stats) = shared_partition_with(Some(20_000), "max_service_lead = \"5s\"");
    assert_eq!(stats.late, 0, "{stats:?}");
    assert_eq!(shared, alone);
}

#[test]
fn a_service_lead_below_the_lateness_is_refused() {
    let src = SIMPLE.replace("max_future_skew = \"1m\"", "max_service_lead = \"2s\"");
    let e = Config::parse(&src, "t.toml").unwrap_err();
    assert!(e.message.contains("below `allowed_lateness`"), "{e}");
    assert!(e.help.contains("at least \"5s\""), "{e}");
    let ok = SIMPLE.replace("max_future_skew = \"1m\"", "max_service_lead = \"5s\"");
    assert_eq!(cfg(&ok).time.max_service_lead, 5_000);
    assert_eq!(cfg(SIMPLE).time.max_service_lead, 30_000);
}

#[test]
fn a_service_ahead_is_judged_on_its_own_time_and_rejoins_the_partition() {
    let src = SIMPLE.replace("max_future_skew = \"1m\"", "max_future_skew = \"10m\"");
    let mut e = Engine::new(cfg(&src));
    let mut out = Vec::new();
    let at = |s: &str, ms: i64| {
        format!(
            r#"{{"ts":{},"service":"{s}","kind":"request","outcome":"ok"}}"#,
            T0 + ms
        )
    };
    e.set_trace(true);
    e.ingest(&ev(&at("a", 0)), T0, &mut out);
    e.ingest(&ev(&at("b", 240_000)), T0, &mut out);
    let trace = e.take_trace();
    assert!(
        trace.iter().any(|v| v.group == 1 && v.at >= T0 + 230_000),
        "b's windows close on its own stream: {trace:?}"
    );
    assert!(trace.iter().all(|v| v.group == 1), "a's do not: {trace:?}");
    // A checkpoint keeps b on its own time.
    let (restored, _) = Engine::restore(cfg(&src), e.snapshot()).unwrap();
    e = restored;
    // b's own watermark is 235 s: its events from before are late, a's are not.
    assert_eq!(
        e.ingest(&ev(&at("b", 100_000)), T0, &mut out),
        Outcome::Late
    );
    assert_eq!(
        e.ingest(&ev(&at("b", 236_000)), T0, &mut out),
        Outcome::Applied
    );
    assert_eq!(
        e.ingest(&ev(&at("a", 1_000)), T0, &mut out),
        Outcome::Applied
    );
    assert_eq!(
        e.clock().max_ts,
        T0 + 1_000,
        "b does not move the partition's clock"
    );
    assert_eq!(e.services_ahead(), 1);
    // Once a's time passes b's, b keeps pace again: its old events are late
    // by the partition's watermark, like anyone's.
    for s in 2..=250 {
        e.ingest(&ev(&at("a", s * 1_000)), T0 + s * 1_000, &mut out);
    }
    assert_eq!(e.services_ahead(), 0);
    assert_eq!(
        e.ingest(&ev(&at("b", 250_000)), T0, &mut out),
        Outcome::Applied
    );
    assert_eq!(e.clock().max_ts, T0 + 250_000);
    assert_eq!(e.stats().late, 1);
}
