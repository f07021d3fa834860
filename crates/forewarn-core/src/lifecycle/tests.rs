use proptest::prelude::*;

use super::*;
use crate::config::{Level, Op, Severity, Threshold};
use crate::window::WindowValue;

const SLIDE: Millis = 10_000;

/// A threshold rule's reading and the shared lifecycle, as one rule would pair them.
struct Spec {
    rule: Threshold,
    lifecycle: Lifecycle,
    levels: Vec<Level>,
    keep_firing_for: Millis,
}

fn spec(trigger: Trigger, keep: Millis, min_events: u64) -> Spec {
    let levels = vec![Level {
        severity: Severity::Critical,
        value: 0.5,
        clear: 0.3,
    }];
    Spec {
        rule: Threshold {
            signal: 0,
            op: Op::Above,
            levels: levels.clone(),
            min_events,
            confidence: None,
            empty_breaches: false,
        },
        lifecycle: Lifecycle {
            trigger,
            keep_firing_for: keep,
        },
        levels,
        keep_firing_for: keep,
    }
}

fn read(s: &Spec, level: &Level, w: WindowValue) -> Reading {
    s.rule.read(level, w)
}

fn step(
    inst: &mut Instance,
    s: &Spec,
    slide: Millis,
    at: Millis,
    r: Reading,
) -> Option<TransitionKind> {
    super::step(inst, &s.lifecycle, slide, at, r)
}

fn trigger() -> impl Strategy<Value = Trigger> {
    prop_oneof![
        (0i64..6).prop_map(|k| Trigger::For(k * SLIDE)),
        (1u32..6).prop_flat_map(|n| (1..=n).prop_map(move |m| Trigger::MOfN { m, n })),
    ]
}

fn window() -> impl Strategy<Value = WindowValue> {
    prop_oneof![
        Just(WindowValue {
            value: None,
            events: 0
        }),
        (0.0f64..1.0, 0u64..30).prop_map(|(v, events)| WindowValue {
            value: Some(v),
            events
        }),
    ]
}

proptest! {
    /// The state machine never fires before `for` has elapsed (or before m of the
    /// last n evaluations breached), never resolves while the value is above the
    /// clear level, and every firing alert resolves once the condition stops.
    #[test]
    fn lifecycle_invariants(trig in trigger(), keep in 0i64..4, min_events in 0u64..10, values in prop::collection::vec(window(), 1..80)) {
        let spec = spec(trig, keep * SLIDE, min_events);
        let level = spec.levels[0];
        let mut inst = Instance::default();
        let mut breaches: Vec<bool> = Vec::new();
        for (i, w) in values.iter().enumerate() {
            let at = (i as i64 + 1) * SLIDE;
            let reading = read(&spec, &level, *w);
            breaches.push(reading == Reading::Breach);
            let before = inst;
            let t = step(&mut inst, &spec, SLIDE, at, reading);
            match t {
                Some(TransitionKind::Firing) => {
                    match spec.lifecycle.trigger {
                        Trigger::For(d) => prop_assert!(at - inst.active_since >= d, "fired {}ms after pending, for = {d}", at - inst.active_since),
                        Trigger::MOfN { m, n } => {
                            let recent = breaches.iter().rev().take(n as usize).filter(|b| **b).count();
                            prop_assert!(recent >= m as usize, "fired with {recent} of last {n} breaching, m = {m}");
                        }
                    }
                    prop_assert_eq!(inst.state, State::Firing);
                }
                Some(TransitionKind::Resolved) => {
                    prop_assert_eq!(before.state, State::Firing);
                    prop_assert!(w.events == 0 || w.value.is_some_and(|v| v <= level.clear), "resolved at {:?}", w);
                    prop_assert!(before.clear_since == Millis::MIN || at - before.clear_since >= spec.keep_firing_for || keep == 0 || before.clear_since == at);
                }
                Some(TransitionKind::Pending) => prop_assert_eq!(before.state, State::Inactive),
                Some(TransitionKind::Cancelled) => prop_assert_eq!(before.state, State::Pending),
                None => prop_assert!(inst.state == before.state),
            }
            if t.is_none() && before.state == State::Firing {
                prop_assert!(reading != Reading::Clear || at - inst.clear_since < spec.keep_firing_for);
            }
        }
        // The condition stops: clear readings must resolve within keep_firing_for.
        let start = (values.len() as i64 + 1) * SLIDE;
        let healthy = WindowValue { value: Some(0.0), events: 100 };
        let mut resolved_at = None;
        for k in 0..=(keep + 1 + 64) {
            let at = start + k * SLIDE;
            step(&mut inst, &spec, SLIDE, at, read(&spec, &level, healthy));
            if inst.state == State::Inactive {
                resolved_at = Some(at);
                break;
            }
        }
        let resolved_at = resolved_at.expect("firing alert never resolved after the condition stopped");
        prop_assert!(resolved_at - start <= spec.keep_firing_for + 64 * SLIDE);
    }
}

#[test]
fn hysteresis_keeps_firing_between_clear_and_breach_levels() {
    let spec = spec(Trigger::For(0), 0, 1);
    let level = spec.levels[0];
    let mut inst = Instance::default();
    let w = |v: f64| WindowValue {
        value: Some(v),
        events: 10,
    };
    assert_eq!(
        step(&mut inst, &spec, SLIDE, SLIDE, read(&spec, &level, w(0.6))),
        Some(TransitionKind::Firing)
    );
    // 0.4 is below the breach level but above the clear level: still firing.
    assert_eq!(
        step(
            &mut inst,
            &spec,
            SLIDE,
            2 * SLIDE,
            read(&spec, &level, w(0.4))
        ),
        None
    );
    assert_eq!(inst.state, State::Firing);
    assert_eq!(
        step(
            &mut inst,
            &spec,
            SLIDE,
            3 * SLIDE,
            read(&spec, &level, w(0.3))
        ),
        Some(TransitionKind::Resolved)
    );
}

#[test]
fn insufficient_events_hold_a_firing_alert() {
    let spec = spec(Trigger::For(0), 0, 20);
    let level = spec.levels[0];
    let mut inst = Instance::default();
    let r = read(
        &spec,
        &level,
        WindowValue {
            value: Some(0.9),
            events: 50,
        },
    );
    assert_eq!(
        step(&mut inst, &spec, SLIDE, SLIDE, r),
        Some(TransitionKind::Firing)
    );
    // 3 events, all fine: too few to say the incident is over.
    let r = read(
        &spec,
        &level,
        WindowValue {
            value: Some(0.0),
            events: 3,
        },
    );
    assert_eq!(r, Reading::Insufficient);
    assert_eq!(step(&mut inst, &spec, SLIDE, 2 * SLIDE, r), None);
    // No events at all: nothing left to alert on; resolves (absent rules cover silence).
    let r = read(
        &spec,
        &level,
        WindowValue {
            value: None,
            events: 0,
        },
    );
    assert_eq!(
        step(&mut inst, &spec, SLIDE, 3 * SLIDE, r),
        Some(TransitionKind::Resolved)
    );
}

#[test]
fn below_rules_mirror_above() {
    let mut s = spec(Trigger::For(0), 0, 1);
    s.rule.op = Op::Below;
    s.levels[0] = Level {
        severity: Severity::Warning,
        value: -0.2,
        clear: 0.0,
    };
    let level = s.levels[0];
    let w = |v: f64| WindowValue {
        value: Some(v),
        events: 10,
    };
    assert_eq!(read(&s, &level, w(-0.3)), Reading::Breach);
    assert_eq!(read(&s, &level, w(-0.1)), Reading::Elevated);
    assert_eq!(read(&s, &level, w(0.0)), Reading::Clear);
}

#[test]
fn immediate_lifecycle_fires_and_resolves_at_once() {
    let l = Lifecycle::IMMEDIATE;
    let mut inst = Instance::default();
    assert_eq!(super::step(&mut inst, &l, SLIDE, 1, Reading::Clear), None);
    assert_eq!(
        super::step(&mut inst, &l, SLIDE, 2, Reading::Breach),
        Some(TransitionKind::Firing)
    );
    assert_eq!(super::step(&mut inst, &l, SLIDE, 3, Reading::Breach), None);
    assert_eq!(
        super::step(&mut inst, &l, SLIDE, 4, Reading::Clear),
        Some(TransitionKind::Resolved)
    );
    assert_eq!(inst, Instance::default());
}
