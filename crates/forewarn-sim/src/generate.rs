//! Turns a [`Scenario`] into a time-ordered stream of v1 events.

use std::fmt::Write as _;
use std::sync::Arc;

use forewarn_core::event::Category;
use forewarn_core::time::{format_rfc3339, Millis};

use crate::model::{load_cycle, Role, Scenario, Service};
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
}

/// Iterates the events of a scenario in event-time order (deterministic per seed).
pub struct Simulator {
    scenario: Scenario,
    rngs: Vec<Rng>,
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
        Simulator {
            second: scenario.start.div_euclid(1000) * 1000,
            end: scenario.start + scenario.duration,
            rngs,
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
        svc.rate * self.scenario.scale * load_cycle(t) * promo * spike
    }

    fn effects(&self, svc: &Service, t: Millis) -> Effects {
        let mut fx = Effects {
            latency_factor: 1.0,
            feedback_factor: 1.0,
            ..Effects::default()
        };
        for inc in &self.scenario.incidents {
            let s = inc.severity(t);
            if s == 0.0 || !inc.services.iter().any(|n| **n == *svc.name) {
                continue;
            }
            // Failures begin once the degradation is a third of the way to breach.
            let failing = ((s - 0.3) / 0.7).clamp(0.0, 1.0);
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
        out.sort_by_key(|e| e.ts);
        out
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
