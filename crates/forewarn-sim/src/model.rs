//! The retail estate: services with their baselines, the daily and weekly load
//! cycle, promotions, benign spikes, and incidents with precursors.

use std::sync::Arc;

use forewarn_core::event::Category;
use forewarn_core::time::Millis;
use serde::Serialize;

const MINUTE: Millis = 60_000;
const HOUR: Millis = 60 * MINUTE;
const DAY: Millis = 24 * HOUR;

/// What kind of traffic a service emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Customer-facing requests (storefront, search, cart, checkout, payment).
    Requests,
    /// Back-office processing measured against a promise (fulfilment).
    Processing,
    /// Support tickets and customer feedback.
    Support,
    /// Stock updates and lookups (inventory).
    Stock,
}

/// One service's normal behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Name (the event's `service`).
    pub name: Arc<str>,
    /// Role.
    pub role: Role,
    /// Events per second at the daily mean load.
    pub rate: f64,
    /// Median latency (ms) of a request or processing step.
    pub latency_ms: f64,
    /// Log-normal spread of latency.
    pub latency_sigma: f64,
    /// The latency promised by the SLA.
    pub sla_ms: f64,
    /// Baseline share of failed requests.
    pub error_rate: f64,
    /// Share of this service's events that are customer feedback.
    pub feedback_share: f64,
    /// Baseline share of feedback that is a complaint.
    pub complaint_rate: f64,
    /// Baseline mean sentiment of feedback.
    pub sentiment: f64,
}

/// How an incident degrades its services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// By category: latency, errors, complaints, sentiment (and, for execution
    /// incidents, slower order processing); `magnitude` (default 1) scales
    /// every symptom.
    #[default]
    Degradation,
    /// Orders stop being dispatched on time while every request stays fast and
    /// successful: only the orders' own timers show it.
    DispatchStall,
    /// Only failures: the share of failed requests rises by `magnitude`
    /// (default 0.03) — a night-time bump below the static levels, or a slow
    /// burn when the ramp is long.
    Errors,
    /// Only latency: it multiplies up to `magnitude` at the SLA breach
    /// (default: the factor that puts the p99 on the service's SLA).
    LatencyCreep,
    /// Requests silently go missing: `magnitude` (default 0.6) of the traffic
    /// is lost, with no error and no slowdown.
    TrafficLoss,
}

/// An injected incident and its ground truth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    /// Stable id.
    pub id: String,
    /// Failure category.
    pub category: Category,
    /// Affected services.
    pub services: Vec<String>,
    /// What happens.
    pub description: String,
    /// Degradation starts (precursors observable from here).
    #[serde(rename = "precursor_start_ms")]
    pub precursor_start: Millis,
    /// The SLA is breached from here.
    #[serde(rename = "sla_breach_ms")]
    pub sla_breach: Millis,
    /// Back to normal.
    #[serde(rename = "end_ms")]
    pub end: Millis,
    /// How it degrades its services.
    pub effect: Effect,
    /// The size of a single-symptom effect (see [`Effect`]); `None`: its default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub magnitude: Option<f64>,
}

impl Incident {
    /// Severity at `t`: 0 before the precursor, rising linearly to 1 at the SLA
    /// breach, 1 until the end, 0 after.
    pub fn severity(&self, t: Millis) -> f64 {
        if t < self.precursor_start || t >= self.end {
            0.0
        } else if t >= self.sla_breach {
            1.0
        } else {
            (t - self.precursor_start) as f64 / (self.sla_breach - self.precursor_start) as f64
        }
    }
}

/// A benign look-alike: more traffic, no failure. Alerts during it are false alarms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spike {
    /// Stable id.
    pub id: String,
    /// Affected services.
    pub services: Vec<String>,
    /// Traffic multiplier.
    pub multiplier: f64,
    /// Extra share of failed requests while it lasts (a deploy blip); 0: none.
    #[serde(skip_serializing_if = "is_zero")]
    pub errors: f64,
    /// Start.
    #[serde(rename = "start_ms")]
    pub start: Millis,
    /// End.
    #[serde(rename = "end_ms")]
    pub end: Millis,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// A named scenario: the estate, its load shape and what goes wrong when.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Name.
    pub name: String,
    /// RNG seed.
    pub seed: u64,
    /// First event time.
    pub start: Millis,
    /// Simulated duration.
    pub duration: Millis,
    /// Multiplies every service's rate (smaller for tests, larger for load).
    pub scale: f64,
    /// The services.
    pub services: Vec<Service>,
    /// Promotion (holiday sale) windows: (start, end, traffic multiplier).
    pub promotions: Vec<(Millis, Millis, f64)>,
    /// Injected incidents.
    pub incidents: Vec<Incident>,
    /// Benign traffic spikes.
    pub spikes: Vec<Spike>,
}

/// The default retail estate.
pub fn retail_services() -> Vec<Service> {
    let svc = |name: &str, role, rate, latency_ms, sla_ms, error_rate, feedback_share| Service {
        name: name.into(),
        role,
        rate,
        latency_ms,
        latency_sigma: 0.45,
        sla_ms,
        error_rate,
        feedback_share,
        complaint_rate: 0.05,
        sentiment: 0.3,
    };
    vec![
        svc(
            "storefront",
            Role::Requests,
            40.0,
            120.0,
            800.0,
            0.004,
            0.01,
        ),
        svc("search", Role::Requests, 30.0, 80.0, 500.0, 0.003, 0.0),
        svc("cart", Role::Requests, 15.0, 90.0, 600.0, 0.003, 0.0),
        svc("checkout", Role::Requests, 6.0, 250.0, 1200.0, 0.005, 0.03),
        svc("payment", Role::Requests, 5.0, 300.0, 1500.0, 0.005, 0.0),
        svc("inventory", Role::Stock, 8.0, 60.0, 400.0, 0.002, 0.0),
        svc(
            "fulfilment",
            Role::Processing,
            3.0,
            400.0,
            2000.0,
            0.002,
            0.0,
        ),
        svc(
            "notifications",
            Role::Requests,
            6.0,
            150.0,
            1000.0,
            0.003,
            0.0,
        ),
        svc("support", Role::Support, 1.5, 600.0, 4000.0, 0.0, 0.5),
    ]
}

/// The default scenario: three hours of a weekday afternoon with one incident of
/// each category (and a second system failure: checkout saturating under the
/// holiday-sale peak; a second execution failure: a dispatch stall only the
/// orders' SLA timers see), a holiday-sale promotion and a benign traffic spike.
pub fn default_scenario(seed: u64, start: Millis) -> Scenario {
    let at = |m: i64| start + m * MINUTE;
    let incident = |id: &str,
                    category,
                    services: &[&str],
                    description: &str,
                    from: i64,
                    breach: i64,
                    end: i64| Incident {
        id: id.into(),
        category,
        services: services.iter().map(|s| s.to_string()).collect(),
        description: description.into(),
        precursor_start: at(from),
        sla_breach: at(breach),
        end: at(end),
        effect: Effect::Degradation,
        magnitude: None,
    };
    Scenario {
        name: "default".into(),
        seed,
        start,
        duration: 3 * HOUR,
        scale: 1.0,
        services: retail_services(),
        promotions: vec![(at(150), at(175), 2.0)],
        incidents: vec![
            incident("system-payment", Category::System, &["payment", "checkout"], "payment gateway degradation: latency creeps, then timeouts and errors", 20, 40, 55),
            Incident {
                effect: Effect::DispatchStall,
                ..incident("execution-dispatch-stall", Category::Execution, &["fulfilment"], "carrier hand-over stalls: orders wait for dispatch and miss their promised time while every request stays fast and successful", 25, 45, 55)
            },
            incident("execution-fulfilment", Category::Execution, &["fulfilment", "support"], "fulfilment backlog: orders miss their promised dispatch time; delivery tickets rise", 65, 85, 100),
            incident("information-storefront", Category::Information, &["storefront"], "wrong prices in the catalogue: complaints and refunds rise", 105, 125, 140),
            incident("communication-support", Category::Communication, &["support", "notifications"], "support understaffed and a notification channel failing: slow responses, negative sentiment", 120, 145, 160),
            incident("system-checkout-saturation", Category::System, &["checkout"], "peak-load saturation: the holiday sale doubles traffic, checkout's queues grow, latency climbs, then timeouts", 150, 162, 175),
        ],
        spikes: vec![Spike {
            id: "benign-storefront-spike".into(),
            services: vec!["storefront".into(), "search".into()],
            multiplier: 3.0,
            errors: 0.0,
            start: at(60),
            end: at(75),
        }],
    }
}

/// Load multiplier from the time of day (peak mid-afternoon, trough at night) and
/// the day of week (weekends busier for retail). `t` is UTC epoch ms.
pub fn load_cycle(t: Millis) -> f64 {
    let hour = (t.rem_euclid(DAY)) as f64 / HOUR as f64;
    let daily = 1.0 + 0.6 * (std::f64::consts::TAU * (hour - 9.0) / 24.0).sin();
    // 1970-01-01 was a Thursday: day 2 and 3 of the week (mod 7) are Sat and Sun.
    let weekday = (t.div_euclid(DAY)).rem_euclid(7);
    let weekend = if weekday == 2 || weekday == 3 {
        1.3
    } else {
        1.0
    };
    daily * weekend
}
