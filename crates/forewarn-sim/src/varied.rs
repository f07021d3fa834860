//! The `varied` scenario: three hours of the retail estate whose incidents,
//! benign events and their timing are all drawn from the seed. The default
//! scenario repeats the same six incidents at the same minutes in every seed,
//! which is a narrow history to learn failure from: a model trained on it learns
//! that scenario's shapes. Here each seed draws which services fail, how
//! (any failure category, or one symptom alone: errors, a latency creep, lost
//! traffic, stalled orders), how hard, how fast the degradation ramps to its
//! breach, and what benign look-alikes (traffic spikes, deploy blips, a sale)
//! happen around them.

use forewarn_core::event::Category;
use forewarn_core::time::Millis;

use crate::model::{retail_services, Effect, Incident, Role, Scenario, Service, Spike};
use crate::rng::Rng;

const MINUTE: Millis = 60_000;
const DURATION: Millis = 180 * MINUTE;
/// Incidents per seed are drawn from this range.
const INCIDENTS: std::ops::RangeInclusive<u64> = 4..=7;
/// Attempts to place an incident on services that are free at that time.
const PLACEMENT_TRIES: usize = 20;

/// The varied scenario for `seed`, starting at `start`.
pub fn varied_scenario(seed: u64, start: Millis) -> Scenario {
    let services = retail_services();
    let mut rng = Rng::new(seed).fork("varied-schedule");
    let mut incidents: Vec<Incident> = Vec::new();
    let count = INCIDENTS.start() + rng.next_u64() % (INCIDENTS.end() - INCIDENTS.start() + 1);
    for n in 0..count {
        for _ in 0..PLACEMENT_TRIES {
            let candidate = draw_incident(&mut rng, &services, start, n);
            if !incidents.iter().any(|i| overlaps(i, &candidate)) {
                incidents.push(candidate);
                break;
            }
        }
    }
    incidents.sort_by_key(|i| i.precursor_start);
    Scenario {
        name: "varied".into(),
        seed,
        start,
        duration: DURATION,
        scale: 1.0,
        promotions: draw_promotion(&mut rng, start),
        spikes: draw_benign(&mut rng, &services, start),
        services,
        incidents,
    }
}

/// Two incidents share a service while both are under way (with a 10-minute
/// gap, so each one's alerts are attributable).
fn overlaps(a: &Incident, b: &Incident) -> bool {
    let gap = 10 * MINUTE;
    a.services.iter().any(|s| b.services.contains(s))
        && a.precursor_start < b.end + gap
        && b.precursor_start < a.end + gap
}

/// A uniform integer in `lo..=hi`.
fn between(rng: &mut Rng, lo: i64, hi: i64) -> i64 {
    lo + (rng.f64() * (hi - lo + 1) as f64) as i64
}

fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> &'a T {
    &items[(rng.f64() * items.len() as f64) as usize]
}

fn names_where(services: &[Service], keep: impl Fn(&Service) -> bool) -> Vec<String> {
    services
        .iter()
        .filter(|s| keep(s))
        .map(|s| s.name.to_string())
        .collect()
}

/// One incident: its shape, services, strength and timing.
fn draw_incident(rng: &mut Rng, services: &[Service], start: Millis, n: u64) -> Incident {
    let (category, effect, affected, magnitude) = draw_shape(rng, services);
    let ramp = between(rng, 8, 40) * MINUTE;
    let after = between(rng, 8, 20) * MINUTE;
    let latest = DURATION - ramp - after;
    let from = start + between(rng, 10, latest / MINUTE) * MINUTE;
    Incident {
        id: format!("varied-{n}-{}-{}", category.as_str(), affected.join("+")),
        category,
        description: format!(
            "{effect:?} of {} drawn by the varied scenario",
            affected.join(", ")
        ),
        services: affected,
        precursor_start: from,
        sla_breach: from + ramp,
        end: from + ramp + after,
        effect,
        magnitude,
    }
}

/// What fails and how: category, effect, services and magnitude.
fn draw_shape(rng: &mut Rng, services: &[Service]) -> (Category, Effect, Vec<String>, Option<f64>) {
    let requests = names_where(services, |s| s.role == Role::Requests);
    let with_feedback = names_where(services, |s| s.feedback_share > 0.0);
    let any = names_where(services, |_| true);
    match rng.next_u64() % 8 {
        0 => {
            // A system degradation, sometimes dragging a caller with it.
            let mut affected = vec![pick(rng, &requests).clone()];
            if rng.chance(0.4) {
                let caller = pick(rng, &requests).clone();
                if !affected.contains(&caller) {
                    affected.push(caller);
                }
            }
            let strength = 0.5 + rng.f64();
            (
                Category::System,
                Effect::Degradation,
                affected,
                Some(strength),
            )
        }
        1 => {
            let mut affected = vec!["fulfilment".to_string()];
            if rng.chance(0.5) {
                affected.push("support".into());
            }
            let strength = 0.5 + rng.f64();
            (
                Category::Execution,
                Effect::Degradation,
                affected,
                Some(strength),
            )
        }
        2 => (
            Category::Execution,
            Effect::DispatchStall,
            vec!["fulfilment".into()],
            None,
        ),
        3 => {
            let strength = 0.5 + rng.f64();
            let affected = vec![pick(rng, &with_feedback).clone()];
            (
                Category::Information,
                Effect::Degradation,
                affected,
                Some(strength),
            )
        }
        4 => {
            let affected = match rng.next_u64() % 3 {
                0 => vec!["support".into(), "notifications".into()],
                1 => vec!["support".into()],
                _ => vec!["notifications".into()],
            };
            let strength = 0.5 + rng.f64();
            (
                Category::Communication,
                Effect::Degradation,
                affected,
                Some(strength),
            )
        }
        5 => {
            let share = 0.01 + 0.09 * rng.f64();
            let affected = vec![pick(rng, &requests).clone()];
            (Category::System, Effect::Errors, affected, Some(share))
        }
        6 => {
            let affected = vec![pick(rng, &any).clone()];
            (Category::System, Effect::LatencyCreep, affected, None)
        }
        _ => {
            let lost = 0.4 + 0.4 * rng.f64();
            let affected = vec![pick(rng, &requests).clone()];
            (Category::System, Effect::TrafficLoss, affected, Some(lost))
        }
    }
}

/// Half the seeds have a sale: more traffic everywhere for 20-40 minutes.
fn draw_promotion(rng: &mut Rng, start: Millis) -> Vec<(Millis, Millis, f64)> {
    if !rng.chance(0.5) {
        return Vec::new();
    }
    let from = start + between(rng, 20, 140) * MINUTE;
    let until = from + between(rng, 20, 40) * MINUTE;
    vec![(from, until, 1.5 + rng.f64())]
}

/// One to three benign look-alikes: traffic spikes with a normal error ratio,
/// and 40-second deploy blips of errors.
fn draw_benign(rng: &mut Rng, services: &[Service], start: Millis) -> Vec<Spike> {
    let requests = names_where(services, |s| s.role == Role::Requests);
    (0..between(rng, 1, 3))
        .map(|n| {
            let service = pick(rng, &requests).clone();
            let from = start + between(rng, 5, 170) * MINUTE;
            if rng.chance(0.5) {
                Spike {
                    id: format!("benign-{n}-deploy-{service}"),
                    services: vec![service],
                    multiplier: 1.0,
                    errors: 0.05 + 0.1 * rng.f64(),
                    start: from,
                    end: from + 40_000,
                }
            } else {
                Spike {
                    id: format!("benign-{n}-spike-{service}"),
                    services: vec![service],
                    multiplier: 2.0 + 2.0 * rng.f64(),
                    errors: 0.0,
                    start: from,
                    end: from + between(rng, 10, 20) * MINUTE,
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_draw_different_schedules_and_the_same_seed_the_same() {
        let a = varied_scenario(1, 0);
        assert_eq!(a, varied_scenario(1, 0));
        let b = varied_scenario(2, 0);
        assert_ne!(a.incidents, b.incidents);
    }

    #[test]
    fn incidents_fit_the_period_and_never_share_a_service_at_once() {
        for seed in 1..=200 {
            let s = varied_scenario(seed, 1_000);
            assert!(!s.incidents.is_empty(), "seed {seed}");
            for (k, i) in s.incidents.iter().enumerate() {
                assert!(i.precursor_start >= s.start, "seed {seed}: {}", i.id);
                assert!(i.precursor_start < i.sla_breach && i.sla_breach < i.end);
                assert!(i.end <= s.start + s.duration, "seed {seed}: {}", i.id);
                for j in &s.incidents[k + 1..] {
                    assert!(!overlaps(i, j), "seed {seed}: {} and {}", i.id, j.id);
                }
            }
        }
    }

    #[test]
    fn over_many_seeds_every_shape_occurs() {
        let mut effects = std::collections::HashSet::new();
        let mut categories = std::collections::HashSet::new();
        for seed in 1..=40 {
            for i in varied_scenario(seed, 0).incidents {
                effects.insert(format!("{:?}", i.effect));
                categories.insert(i.category.as_str());
            }
        }
        assert_eq!(effects.len(), 5, "{effects:?}");
        assert_eq!(categories.len(), 4, "{categories:?}");
    }
}
