//! Turns a [`Scenario`] into a time-ordered stream of v1 events.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use forewarn_core::event::Category;
use forewarn_core::time::{format_rfc3339, Millis};

use crate::model::{load_cycle, Effect, Role, Scenario, Service};

/// Orders (fulfilment) are promised within this; tickets (support) answered.
pub const ORDER_PROMISE_MS: Millis = 10 * 60_000;
/// Tickets' response SLA.
pub const TICKET_SLA_MS: Millis = 20 * 60_000;
const ORDER_MEDIAN_MS: f64 = 3.0 * 60_000.0;
const TICKET_MEDIAN_MS: f64 = 6.0 * 60_000.0;
use crate::rng::Rng;

/// One generated event.
#[derive(Debug, Clone, PartialEq)]
pub struct SimEvent {
    /// Event time.
    pub ts: Millis,
    /// The service (the Kafka message key).
    pub service: Arc<str>,
    /// The v1 JSON event.
    pub json: String,
}

/// What the active incidents do to one service at one instant.
#[derive(Debug, Clone, Copy, Default)]
struct Effects {
    latency_factor: f64,
    extra_errors: f64,
    error_category: Option<Category>,
    extra_complaints: f64,
    complaint_category: Option<Category>,
    sentiment_shift: f64,
    feedback_factor: f64,
    /// Multiplies the time to dispatch an order.
    order_delay: f64,
    /// When the incidents slowing entities end: their backlog clears then.
    delay_until: Millis,
}

/// Iterates the events of a scenario in event-time order (deterministic per seed).
pub struct Simulator {
    scenario: Scenario,
    rngs: Vec<Rng>,
    /// Per service, for its entities (orders, tickets): a stream of its own, so
    /// adding entities left every other event of a seed as it was.
    entity_rngs: Vec<Rng>,
    /// Entities opened so far (their ids).
    opened: u64,
    /// Close events not yet due, by (time, id).
    closes: BTreeMap<(Millis, u64), SimEvent>,
    second: Millis,
    end: Millis,
    pending: std::vec::IntoIter<SimEvent>,
}

impl Simulator {
    /// A simulator for `scenario`.
    pub fn new(scenario: Scenario) -> Simulator {
        let root = Rng::new(scenario.seed);
        let rngs = scenario
            .services
            .iter()
            .map(|s| root.fork(&s.name))
            .collect();
        let entity_rngs = scenario
            .services
            .iter()
            .map(|s| root.fork(&format!("entities/{}", s.name)))
            .collect();
        Simulator {
            second: scenario.start.div_euclid(1000) * 1000,
            end: scenario.start + scenario.duration,
            rngs,
            entity_rngs,
            opened: 0,
            closes: BTreeMap::new(),
            scenario,
            pending: Vec::new().into_iter(),
        }
    }

    /// The scenario being simulated.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    fn rate(&self, svc: &Service, t: Millis) -> f64 {
        let promo: f64 = self
            .scenario
            .promotions
            .iter()
            .filter(|(a, b, _)| (*a..*b).contains(&t))
            .map(|p| p.2)
            .product();
        let spike: f64 = self
            .scenario
            .spikes
            .iter()
            .filter(|s| {
                (s.start..s.end).contains(&t) && s.services.iter().any(|n| **n == *svc.name)
            })
            .map(|s| s.multiplier)
            .product();
        let kept: f64 = self
            .scenario
            .incidents
            .iter()
            .filter(|i| {
                i.effect == Effect::TrafficLoss && i.services.iter().any(|n| **n == *svc.name)
            })
            .map(|i| 1.0 - i.magnitude.unwrap_or(0.6).clamp(0.0, 1.0) * i.severity(t))
            .product();
        svc.rate * self.scenario.scale * load_cycle(t) * promo * spike * kept
    }

    fn effects(&self, svc: &Service, t: Millis) -> Effects {
        let mut fx = Effects {
            latency_factor: 1.0,
            feedback_factor: 1.0,
            order_delay: 1.0,
            ..Effects::default()
        };
        for inc in &self.scenario.incidents {
            let s = inc.severity(t);
            if s == 0.0 || !inc.services.iter().any(|n| **n == *svc.name) {
                continue;
            }
            // Failures begin once the degradation is a third of the way to breach.
            let mut failing = ((s - 0.3) / 0.7).clamp(0.0, 1.0);
            fx.delay_until = fx.delay_until.max(inc.end);
            let mut s = s;
            match inc.effect {
                Effect::Degradation => {
                    // A stronger or milder degradation scales every symptom.
                    let strength = inc.magnitude.unwrap_or(1.0);
                    s *= strength;
                    failing *= strength;
                }
                Effect::DispatchStall => {
                    fx.order_delay *= 1.0 + 6.0 * s;
                    continue;
                }
                Effect::Errors => {
                    fx.extra_errors += inc.magnitude.unwrap_or(0.03) * s;
                    fx.error_category = Some(inc.category);
                    continue;
                }
                Effect::LatencyCreep => {
                    // p99 of a log-normal: median · e^(2.326 σ).
                    let p99 = svc.latency_ms * (2.326 * svc.latency_sigma).exp();
                    let top = inc.magnitude.unwrap_or(svc.sla_ms / p99).max(1.0);
                    fx.latency_factor *= 1.0 + (top - 1.0) * s;
                    continue;
                }
                Effect::TrafficLoss => continue,
            }
            match inc.category {
                Category::System => {
                    fx.latency_factor *= 1.0 + 3.0 * s;
                    fx.extra_errors += 0.15 * failing;
                    fx.error_category = Some(Category::System);
                }
                Category::Execution => {
                    if svc.role == Role::Support {
                        fx.feedback_factor *= 1.0 + 2.0 * s;
                        fx.extra_complaints += 0.5 * s;
                        fx.complaint_category = Some(Category::Execution);
                        fx.sentiment_shift -= 0.6 * s;
                    } else {
                        fx.latency_factor *= 1.0 + 4.0 * s;
                        fx.order_delay *= 1.0 + 4.0 * s;
                    }
                }
                Category::Information => {
                    fx.feedback_factor *= 1.0 + 3.0 * s;
                    fx.extra_complaints += 0.6 * s;
                    fx.complaint_category = Some(Category::Information);
                    fx.sentiment_shift -= 0.9 * s;
                }
                Category::Communication => {
                    fx.latency_factor *= 1.0 + 4.0 * s;
                    fx.sentiment_shift -= 1.6 * s;
                    fx.extra_complaints += 0.3 * s;
                    fx.complaint_category = Some(Category::Communication);
                    fx.extra_errors += 0.12 * failing;
                    fx.error_category = Some(Category::Communication);
                }
            }
        }
        for sp in &self.scenario.spikes {
            if sp.errors > 0.0
                && (sp.start..sp.end).contains(&t)
                && sp.services.iter().any(|n| **n == *svc.name)
            {
                fx.extra_errors += sp.errors;
                fx.error_category.get_or_insert(Category::System);
            }
        }
        fx
    }

    fn generate_second(&mut self) -> Vec<SimEvent> {
        let t = self.second;
        let mut out = Vec::new();
        for i in 0..self.scenario.services.len() {
            let svc = self.scenario.services[i].clone();
            let fx = self.effects(&svc, t);
            let n = {
                let rate = self.rate(&svc, t);
                self.rngs[i].poisson(rate)
            };
            let rng = &mut self.rngs[i];
            for _ in 0..n {
                let ts = t + (rng.f64() * 1000.0) as Millis;
                if ts < self.scenario.start || ts >= self.end {
                    continue;
                }
                let json = event(&svc, &fx, ts, rng);
                out.push(SimEvent {
                    ts,
                    service: svc.name.clone(),
                    json,
                });
            }
        }
        self.entities(t, &mut out);
        out.sort_by_key(|e| e.ts);
        out
    }

    /// Orders opened by fulfilment (closed when dispatched) and tickets opened
    /// by support (closed when answered) during second `t`, and the closes due
    /// in it.
    fn entities(&mut self, t: Millis, out: &mut Vec<SimEvent>) {
        for i in 0..self.scenario.services.len() {
            let svc = self.scenario.services[i].clone();
            let (what, allowance, median, share) = match svc.role {
                Role::Processing => ("order", ORDER_PROMISE_MS, ORDER_MEDIAN_MS, 1.0),
                Role::Support => ("ticket", TICKET_SLA_MS, TICKET_MEDIAN_MS, 0.5),
                _ => continue,
            };
            let fx = self.effects(&svc, t);
            let delay = if svc.role == Role::Support {
                fx.latency_factor
            } else {
                fx.order_delay
            };
            let rate = self.rate(&svc, t) * share;
            let rng = &mut self.entity_rngs[i];
            for _ in 0..rng.poisson(rate) {
                let ts = t + (rng.f64() * 1000.0) as Millis;
                let base = (median * (0.3 * rng.normal()).exp()) as Millis;
                // Slowed entities wait, but the backlog clears when the incident ends.
                let took =
                    ((base as f64 * delay) as Millis).min(base.max(fx.delay_until + base - ts));
                self.opened += 1;
                let id = format!("{what}-{}", self.opened);
                if ts < self.scenario.start || ts >= self.end {
                    continue;
                }
                let entity = |ts: Millis, phase: &str, extra: &str| SimEvent {
                    ts,
                    service: svc.name.clone(),
                    json: format!(
                        r#"{{"ts":"{}","service":"{}","kind":"custom","entity":"{id}","phase":"{phase}"{extra},"labels":{{"entity_type":"{what}"}}}}"#,
                        format_rfc3339(ts),
                        svc.name,
                    ),
                };
                out.push(entity(
                    ts,
                    "open",
                    &format!(r#","deadline":"{}""#, format_rfc3339(ts + allowance)),
                ));
                let close = entity(ts + took, "close", "");
                self.closes.insert((ts + took, self.opened), close);
            }
        }
        while let Some(entry) = self.closes.first_entry() {
            if entry.key().0 >= t + 1000 {
                break;
            }
            let e = entry.remove();
            if e.ts < self.end {
                out.push(e);
            }
        }
    }
}

impl Iterator for Simulator {
    type Item = SimEvent;

    fn next(&mut self) -> Option<SimEvent> {
        loop {
            if let Some(e) = self.pending.next() {
                return Some(e);
            }
            if self.second >= self.end {
                return None;
            }
            self.pending = self.generate_second().into_iter();
            self.second += 1000;
        }
    }
}

fn event(svc: &Service, fx: &Effects, ts: Millis, rng: &mut Rng) -> String {
    let mut s = String::with_capacity(220);
    let _ = write!(
        s,
        r#"{{"ts":"{}","service":"{}""#,
        format_rfc3339(ts),
        svc.name
    );
    let feedback = rng.chance((svc.feedback_share * fx.feedback_factor).min(0.95));
    if feedback {
        let complaint = rng.chance((svc.complaint_rate + fx.extra_complaints).min(0.95));
        let sentiment = (svc.sentiment + fx.sentiment_shift + 0.3 * rng.normal()
            - if complaint { 0.5 } else { 0.0 })
        .clamp(-1.0, 1.0);
        let satisfaction = (3.0 + 2.0 * sentiment + 0.5 * rng.normal())
            .round()
            .clamp(1.0, 5.0);
        let kind = if svc.role == Role::Support && rng.chance(0.5) {
            "ticket"
        } else {
            "feedback"
        };
        let _ = write!(
            s,
            r#","kind":"{kind}","satisfaction":{satisfaction},"sentiment":{sentiment:.3},"complaint":{complaint}"#
        );
        if let (true, Some(c)) = (complaint, fx.complaint_category) {
            let _ = write!(s, r#","category":"{}""#, c.as_str());
        }
        if kind == "ticket" {
            let latency =
                svc.latency_ms * fx.latency_factor * (svc.latency_sigma * rng.normal()).exp();
            let _ = write!(s, r#","latency_ms":{latency:.0},"sla_ms":{}"#, svc.sla_ms);
        }
    } else {
        let kind = match svc.role {
            Role::Stock => "stock",
            // Support handles tickets: its latency is the time to first response.
            Role::Support => "ticket",
            _ => "request",
        };
        let latency = svc.latency_ms * fx.latency_factor * (svc.latency_sigma * rng.normal()).exp();
        let failed = rng.chance((svc.error_rate + fx.extra_errors).min(0.95));
        let outcome = match (failed, fx.extra_errors > 0.0 && rng.chance(0.5)) {
            (false, _) => "ok",
            (true, true) => "timeout",
            (true, false) => "error",
        };
        let _ = write!(
            s,
            r#","kind":"{kind}","outcome":"{outcome}","latency_ms":{latency:.0},"sla_ms":{}"#,
            svc.sla_ms
        );
        if failed {
            let category = fx.error_category.unwrap_or(Category::System);
            let _ = write!(s, r#","category":"{}""#, category.as_str());
        }
    }
    let region = if rng.chance(0.6) {
        "eu-west"
    } else {
        "us-east"
    };
    let channel = if rng.chance(0.7) { "app" } else { "web" };
    let _ = write!(
        s,
        r#","labels":{{"region":"{region}","channel":"{channel}"}}}}"#
    );
    s
}
