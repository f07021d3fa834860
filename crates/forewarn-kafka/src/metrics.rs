//! The pipeline's Prometheus metrics. Every consumed message is counted once as
//! consumed and once under exactly one result, so
//! `consumed = applied + dead_lettered + late` holds per topic whenever no message
//! is between the two increments (always, outside the processing of one message).

pub use crate::output::Output;
use prometheus::{
    exponential_buckets, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// What happened to a consumed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventResult {
    /// Applied to its partition's engine shard.
    Applied,
    /// Rejected (undecodable, invalid, too far in the future): sent to the dead-letter topic.
    DeadLettered,
    /// Older than its shard's watermark: counted, not applied.
    Late,
    /// Counted nowhere: every grouping it needed was at its group cap.
    Refused,
}

impl EventResult {
    /// The `result` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            EventResult::Applied => "applied",
            EventResult::DeadLettered => "dead_lettered",
            EventResult::Late => "late",
            EventResult::Refused => "refused",
        }
    }
}

/// The pipeline's metrics, registered in their own [`Registry`].
#[derive(Clone)]
pub struct Metrics {
    /// The registry holding every metric below.
    pub registry: Registry,
    consumed: IntCounterVec,
    events: IntCounterVec,
    dead_letter_reasons: IntCounterVec,
    delivered: IntCounterVec,
    delivery_errors: IntCounterVec,
    dropped: IntCounterVec,
    /// Wall time from consuming the event whose evaluation emitted an alert
    /// transition to the broker acknowledging the alert.
    pub detection_latency: Histogram,
    /// Realised lead of forecasts that came true: first warning to the real
    /// crossing, by rule.
    forecast_lead: HistogramVec,
    /// Settled forecasts by rule and outcome (came_true, did_not).
    forecast_outcomes: IntCounterVec,
    /// Partitions currently assigned to this process.
    pub assigned_partitions: IntGauge,
    /// Offset commits that failed (a later commit supersedes them).
    pub commit_failures: IntCounter,
    /// Consumer errors reported by librdkafka (broker down, fetch errors).
    pub consumer_errors: IntCounter,
    /// Unix time (seconds) the slowest pipeline thread (the consumer thread or a
    /// worker) last moved: readiness fails when it stops (a stalled pipeline).
    pub last_poll: IntGauge,
    /// 1 when the last config reload (or the start) succeeded, 0 after a
    /// refused one.
    pub config_reload_successful: IntGauge,
    /// Unix time of the last successful config load (the start or a reload).
    pub config_reload_time: IntGauge,
    transitions: IntCounterVec,
    alerts: IntGaugeVec,
    /// Wall clock minus the shard's watermark, by topic and partition.
    pub watermark_delay: GaugeVec,
    /// Services on their own event time (clock running ahead), by topic and partition.
    pub services_ahead: IntGaugeVec,
    /// Messages between the consumer's position and the partition's end.
    pub consumer_lag: IntGaugeVec,
    /// Messages taken from the partition queues, by worker thread.
    pub worker_messages: IntCounterVec,
    /// Partitions each worker thread owns.
    pub worker_partitions: IntGaugeVec,
    /// 1 while a worker takes no input because its deliveries are not settling.
    pub worker_paused: IntGaugeVec,
    /// Checkpoints by result: written (every chunk acknowledged) or failed.
    pub checkpoints: IntCounterVec,
    /// Size of each partition's last checkpoint written.
    pub checkpoint_bytes: IntGaugeVec,
    /// Partition restores on assignment by result: restored, none (no
    /// checkpoint yet) or refused (unreadable, partial, corrupt, other version
    /// or config: reprocessed from the committed offset instead).
    pub restores: IntCounterVec,
    /// Seconds the last assignment's checkpoint read and restore took.
    pub restore_seconds: prometheus::Gauge,
    /// Messages below a restored checkpoint's offset: already in the restored
    /// state, so skipped (counted by the run that applied them).
    pub checkpoint_skipped: IntCounter,
    /// Applied events a signal could not track because a new group would exceed
    /// `max_groups` (the cardinality cap).
    pub groups_refused: IntCounter,
    /// Outcomes of entity `open`/`close` events in timer signals.
    pub entity_events: IntCounterVec,
    /// Idle groups released to make room under `max_groups`.
    pub groups_reclaimed: IntCounter,
    /// Time from polling a message to its outputs being queued (decode, apply,
    /// evaluate, render), sampled one message in 64.
    pub processing: Histogram,
    signal_value: GaugeVec,
    slo_burn_rate: GaugeVec,
    slo_budget_remaining: GaugeVec,
    anomaly_score: GaugeVec,
    anomaly_expected: GaugeVec,
    failure_probability: GaugeVec,
    forecast_at_horizon: GaugeVec,
    forecast_eta: GaugeVec,
    risk: GaugeVec,
    rule_threshold: GaugeVec,
    /// The `group_by` label names the per-group gauges carry, in label order.
    group_labels: std::sync::Arc<[String]>,
}

/// Handles for one topic's counters, resolved once so counting costs an atomic add.
#[derive(Clone)]
pub struct TopicCounters {
    /// Messages consumed.
    pub consumed: IntCounter,
    /// Messages applied.
    pub applied: IntCounter,
    /// Messages dead-lettered.
    pub dead_lettered: IntCounter,
    /// Messages counted as late.
    pub late: IntCounter,
    /// Messages refused by the group cap.
    pub refused: IntCounter,
}

impl TopicCounters {
    /// Counts one consumed message under `result`.
    pub fn count(&self, result: EventResult) {
        self.consumed.inc();
        match result {
            EventResult::Applied => self.applied.inc(),
            EventResult::DeadLettered => self.dead_lettered.inc(),
            EventResult::Late => self.late.inc(),
            EventResult::Refused => self.refused.inc(),
        }
    }
}

/// A worker's counts for one topic, added to the shared counters once per
/// batch: a shared atomic incremented per event by every worker would bounce
/// its cache line between the cores on every event.
pub struct BatchedCounters {
    counters: TopicCounters,
    /// Applied, dead-lettered, late, refused since the last flush.
    pending: [u64; 4],
}

impl BatchedCounters {
    /// Batches for `counters`.
    pub fn new(counters: TopicCounters) -> BatchedCounters {
        BatchedCounters {
            counters,
            pending: [0; 4],
        }
    }

    /// Counts one consumed message under `result` (visible after [`Self::flush`]).
    pub fn count(&mut self, result: EventResult) {
        let i = match result {
            EventResult::Applied => 0,
            EventResult::DeadLettered => 1,
            EventResult::Late => 2,
            EventResult::Refused => 3,
        };
        self.pending[i] += 1;
    }

    /// Adds the batch to the shared counters: every result first, then
    /// consumed, so `consumed ≤ applied + dead_lettered + late + refused` never
    /// fails for a reader.
    pub fn flush(&mut self) {
        let [applied, dead, late, refused] = std::mem::take(&mut self.pending);
        let c = &self.counters;
        c.applied.inc_by(applied);
        c.dead_lettered.inc_by(dead);
        c.late.inc_by(late);
        c.refused.inc_by(refused);
        c.consumed.inc_by(applied + dead + late + refused);
    }
}

/// Totals over every topic, for the end-of-run report and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accounting {
    /// Messages consumed.
    pub consumed: u64,
    /// Applied to an engine shard.
    pub applied: u64,
    /// Sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Counted as late.
    pub late: u64,
    /// Refused by the group cap (valid, but counted nowhere).
    pub refused: u64,
    /// Alert transitions acknowledged by the broker.
    pub alerts_delivered: u64,
    /// Dead letters acknowledged by the broker.
    pub dead_letters_delivered: u64,
    /// Deliveries given up after the last retry.
    pub dropped: u64,
}

impl Accounting {
    /// Whether every consumed message has exactly one result.
    pub fn balanced(&self) -> bool {
        self.consumed == self.applied + self.dead_lettered + self.late + self.refused
    }
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

/// Every `group_by` label of any signal, sorted, once each.
pub(crate) fn group_label_names(cfg: &forewarn_core::Config) -> Vec<String> {
    let mut names: Vec<String> = cfg
        .signals
        .iter()
        .flat_map(|s| s.group_by.iter().cloned())
        .collect();
    names.sort();
    names.dedup();
    names
}

impl Metrics {
    /// Creates and registers the metrics in a new registry.
    pub fn new() -> Metrics {
        Metrics::with_group_labels(Vec::new())
    }

    /// The metrics for `cfg`: per-group gauges carry one label per `group_by`
    /// label of any signal (empty where a rule does not group by it, which
    /// Prometheus reads as absent).
    pub fn for_config(cfg: &forewarn_core::Config) -> Metrics {
        let m = Metrics::with_group_labels(group_label_names(cfg));
        m.set_rule_levels(cfg);
        m
    }

    /// Replaces `forewarn_rule_threshold` with the levels of `cfg`'s rules
    /// (those with a fixed level: threshold, forecast), so dashboards can draw
    /// each level over its signal.
    pub fn set_rule_levels(&self, cfg: &forewarn_core::Config) {
        self.rule_threshold.reset();
        for rule in &cfg.rules {
            for i in 0..rule.spec.levels() {
                let level = rule.spec.level(i);
                if level.threshold.is_finite() {
                    self.rule_threshold
                        .with_label_values(&[rule.name.as_str(), level.severity.as_str()])
                        .set(level.threshold);
                }
            }
        }
    }

    fn with_group_labels(group_labels: Vec<String>) -> Metrics {
        // A group_by label spelled like one of the gauges' own labels is
        // exported with a prefix.
        let exported: Vec<String> = group_labels
            .iter()
            .map(|n| match n.as_str() {
                "rule" | "signal" | "bound" | "slo" | "window" => format!("label_{n}"),
                n if n.starts_with("__") => format!("label{n}"),
                n => n.to_string(),
            })
            .collect();
        let with = |fixed: &[&'static str], tail: &[&'static str]| -> Vec<String> {
            fixed
                .iter()
                .map(|s| s.to_string())
                .chain(exported.iter().cloned())
                .chain(tail.iter().map(|s| s.to_string()))
                .collect()
        };
        let signal_labels = with(&["rule", "signal", "service"], &[]);
        let score_labels = with(&["rule", "service"], &[]);
        let expected_labels = with(&["rule", "service"], &["bound"]);
        let registry = Registry::new();
        let consumed = counter_vec(
            &registry,
            "forewarn_events_consumed_total",
            "Messages consumed from the event topics.",
            &["topic"],
        );
        let events = counter_vec(
            &registry,
            "forewarn_events_total",
            "Consumed messages by result: applied, dead_lettered, late or refused (every grouping the event needed was at its group cap).",
            &["topic", "result"],
        );
        let dead_letter_reasons = counter_vec(
            &registry,
            "forewarn_dead_letters_total",
            "Messages sent to the dead-letter topic, by reason.",
            &["reason"],
        );
        let delivered = counter_vec(
            &registry,
            "forewarn_output_delivered_total",
            "Messages acknowledged by the broker, by output (alerts, dead_letters).",
            &["output"],
        );
        let delivery_errors = counter_vec(
            &registry,
            "forewarn_output_errors_total",
            "Failed delivery attempts (each is retried until the attempt limit).",
            &["output"],
        );
        let dropped = counter_vec(
            &registry,
            "forewarn_output_dropped_total",
            "Messages given up after the last delivery attempt (alerts, dead letters; a checkpoint given up loses nothing and is counted in forewarn_checkpoints_total{result=\"failed\"}).",
            &["output"],
        );
        let detection_latency = Histogram::with_opts(
            HistogramOpts::new(
                "forewarn_detection_latency_seconds",
                "Wall time from consuming the event that closed a breaching window to the broker acknowledging the alert.",
            )
            .buckets(exponential_buckets(0.0005, 2.0, 16).expect("valid buckets")),
        )
        .expect("valid metric");
        registry
            .register(Box::new(detection_latency.clone()))
            .expect("unique metric");
        let forecast_lead = HistogramVec::new(
            HistogramOpts::new(
                "forewarn_forecast_lead_seconds",
                "Forecasts that came true: event time from the first warning to the real crossing of the level, by rule.",
            )
            .buckets(vec![
                30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0, 7200.0,
            ]),
            &["rule"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(forecast_lead.clone()))
            .expect("unique metric");
        let forecast_outcomes = counter_vec(
            &registry,
            "forewarn_forecast_outcomes_total",
            "Settled forecasts by rule and outcome: came_true (the level was crossed) or did_not (a horizon passed after the last warning without a crossing).",
            &["rule", "outcome"],
        );
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let assigned_partitions = gauge(
            "forewarn_assigned_partitions",
            "Event-topic partitions assigned to this process.",
        );
        let last_poll = gauge(
            "forewarn_last_poll_timestamp_seconds",
            "Unix time the slowest pipeline thread (consumer or worker) last moved; readiness fails when it stalls.",
        );
        let config_reload_successful = gauge(
            "forewarn_config_last_reload_successful",
            "1 when the last config reload (or the start) succeeded, 0 after a refused one.",
        );
        config_reload_successful.set(1);
        let config_reload_time = gauge(
            "forewarn_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config load: the start or a reload.",
        );
        config_reload_time.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        );
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let commit_failures = counter(
            "forewarn_commit_failures_total",
            "Offset commits that failed.",
        );
        let consumer_errors = counter(
            "forewarn_consumer_errors_total",
            "Errors reported by the Kafka consumer.",
        );
        let transitions = counter_vec(
            &registry,
            "forewarn_transitions_total",
            "Alert transitions emitted, by rule, failure category, severity and new status (pending, firing, resolved, inactive).",
            &["alertname", "category", "severity", "status"],
        );
        let alerts = IntGaugeVec::new(
            Opts::new(
                "forewarn_alerts",
                "Alert instances currently pending or firing, by rule, service, failure category and severity; alertstate as in Prometheus's ALERTS.",
            ),
            &["alertname", "service", "category", "severity", "alertstate"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(alerts.clone()))
            .expect("unique metric");
        let watermark_delay = GaugeVec::new(
            Opts::new(
                "forewarn_watermark_delay_seconds",
                "Wall clock minus the partition shard's event-time watermark.",
            ),
            &["topic", "partition"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(watermark_delay.clone()))
            .expect("unique metric");
        let services_ahead = IntGaugeVec::new(
            Opts::new(
                "forewarn_services_ahead",
                "Services whose clock runs ahead of their partition's event time, judged on their own time so they cannot make other services' events late.",
            ),
            &["topic", "partition"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(services_ahead.clone()))
            .expect("unique metric");
        let consumer_lag = IntGaugeVec::new(
            Opts::new(
                "forewarn_consumer_lag",
                "Messages between the consumer's position and the end of the partition (librdkafka statistics).",
            ),
            &["topic", "partition"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(consumer_lag.clone()))
            .expect("unique metric");
        let worker_messages = counter_vec(
            &registry,
            "forewarn_worker_messages_total",
            "Messages taken from the partition queues, by worker thread (shows how evenly partitions spread).",
            &["worker"],
        );
        let worker_partitions = IntGaugeVec::new(
            Opts::new(
                "forewarn_worker_partitions",
                "Partitions each worker thread owns.",
            ),
            &["worker"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(worker_partitions.clone()))
            .expect("unique metric");
        let worker_paused = IntGaugeVec::new(
            Opts::new(
                "forewarn_worker_paused",
                "1 while a worker takes no input because its unsettled deliveries exceed the bound (backpressure).",
            ),
            &["worker"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(worker_paused.clone()))
            .expect("unique metric");
        let checkpoints = counter_vec(
            &registry,
            "forewarn_checkpoints_total",
            "Partition checkpoints by result: written (every chunk acknowledged) or failed.",
            &["result"],
        );
        let restores = counter_vec(
            &registry,
            "forewarn_restores_total",
            "Partition restores on assignment: restored, none (no checkpoint yet) or refused (reprocessed from the committed offset).",
            &["result"],
        );
        let checkpoint_bytes = IntGaugeVec::new(
            Opts::new(
                "forewarn_checkpoint_bytes",
                "Size of each partition's last checkpoint.",
            ),
            &["topic", "partition"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(checkpoint_bytes.clone()))
            .expect("unique metric");
        let restore_seconds = prometheus::Gauge::new(
            "forewarn_restore_seconds",
            "Seconds the last assignment's checkpoint read and restore took.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(restore_seconds.clone()))
            .expect("unique metric");
        let checkpoint_skipped = IntCounter::new(
            "forewarn_checkpoint_skipped_total",
            "Messages below a restored checkpoint's offset, already in the restored state: skipped.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(checkpoint_skipped.clone()))
            .expect("unique metric");
        let entity_events = IntCounterVec::new(
            Opts::new(
                "forewarn_entity_events_total",
                "Outcomes of entity open/close events in timer signals: opened, closed, closed_late, duplicate_open, close_before_open, unknown_close, refused (max_entities), without_deadline, expired.",
            ),
            &["result"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(entity_events.clone()))
            .expect("unique metric");
        let groups_refused = counter(
            "forewarn_groups_refused_total",
            "Events a signal could not track because a new group would exceed max_groups.",
        );
        let groups_reclaimed = counter(
            "forewarn_groups_reclaimed_total",
            "Idle groups (no data in open windows, no active alert) released to make room under max_groups.",
        );
        let processing = Histogram::with_opts(
            HistogramOpts::new(
                "forewarn_event_processing_seconds",
                "Time from polling a message to its outputs being queued (decode, apply, evaluate), sampled 1 in 64.",
            )
            .buckets(exponential_buckets(0.000_000_25, 2.0, 20).expect("valid buckets")),
        )
        .expect("valid metric");
        registry
            .register(Box::new(processing.clone()))
            .expect("unique metric");
        let signal_value = GaugeVec::new(
            Opts::new(
                "forewarn_signal_value",
                "Latest window value of each rule's signal, per service and group_by label.",
            ),
            &refs(&signal_labels),
        )
        .expect("valid metric");
        registry
            .register(Box::new(signal_value.clone()))
            .expect("unique metric");
        let anomaly_score = GaugeVec::new(
            Opts::new(
                "forewarn_anomaly_score",
                "Anomaly score (0-1) of each anomaly rule per service and group_by label: how rare the signal's latest window is for that group at that hour.",
            ),
            &refs(&score_labels),
        )
        .expect("valid metric");
        registry
            .register(Box::new(anomaly_score.clone()))
            .expect("unique metric");
        let anomaly_expected = GaugeVec::new(
            Opts::new(
                "forewarn_anomaly_expected",
                "Edges of the band an anomaly rule expects its signal in (bound: lower, upper), per service and group_by label; outside it the rule pages.",
            ),
            &refs(&expected_labels),
        )
        .expect("valid metric");
        registry
            .register(Box::new(anomaly_expected.clone()))
            .expect("unique metric");
        let slo_burn_rate = GaugeVec::new(
            Opts::new(
                "forewarn_slo_burn_rate",
                "Error-budget burn rate of each SLO rule per service and window (error ratio over the budget's; 1 spends the budget exactly over the period).",
            ),
            &["slo", "service", "window"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(slo_burn_rate.clone()))
            .expect("unique metric");
        let slo_budget_remaining = GaugeVec::new(
            Opts::new(
                "forewarn_slo_error_budget_remaining_ratio",
                "Share of each SLO's error budget left over its period, per service (negative: overspent).",
            ),
            &["slo", "service"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(slo_budget_remaining.clone()))
            .expect("unique metric");
        let failure_probability = GaugeVec::new(
            Opts::new(
                "forewarn_failure_probability",
                "Per model rule and service: the learned probability of an SLA breach within the model's horizon.",
            ),
            &["rule", "service"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(failure_probability.clone()))
            .expect("unique metric");
        let risk = GaugeVec::new(
            Opts::new(
                "forewarn_risk_score",
                "0-1 risk per service: 1 critical firing, 0.7 critical pending, 0.5 warning firing, 0.3 warning pending, up to 0.25 approaching the warning level.",
            ),
            &["service"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(risk.clone()))
            .expect("unique metric");
        let forecast_at_horizon = GaugeVec::new(
            Opts::new(
                "forewarn_forecast_at_horizon",
                "Per forecast rule and group: the signal's value projected to the rule's horizon along its robust trend (draw it beside forewarn_signal_value).",
            ),
            &refs(&score_labels),
        )
        .expect("valid metric");
        registry
            .register(Box::new(forecast_at_horizon.clone()))
            .expect("unique metric");
        let forecast_eta = GaugeVec::new(
            Opts::new(
                "forewarn_forecast_eta_seconds",
                "Per forecast rule and group: seconds until the signal is forecast to cross the rule's level at the confident slope (0: past it; absent: not heading there).",
            ),
            &refs(&score_labels),
        )
        .expect("valid metric");
        registry
            .register(Box::new(forecast_eta.clone()))
            .expect("unique metric");
        let rule_threshold = GaugeVec::new(
            Opts::new(
                "forewarn_rule_threshold",
                "The fixed level of each rule level (threshold and forecast rules), by rule and severity, in its signal's unit.",
            ),
            &["rule", "severity"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(rule_threshold.clone()))
            .expect("unique metric");
        for output in [Output::Alerts, Output::DeadLetters] {
            for c in [&delivered, &delivery_errors, &dropped] {
                c.with_label_values(&[output.as_str()]);
            }
        }
        Metrics {
            registry,
            signal_value,
            slo_burn_rate,
            anomaly_score,
            anomaly_expected,
            slo_budget_remaining,
            failure_probability,
            forecast_at_horizon,
            forecast_eta,
            risk,
            rule_threshold,
            group_labels: group_labels.into(),
            transitions,
            alerts,
            watermark_delay,
            services_ahead,
            consumer_lag,
            worker_messages,
            worker_partitions,
            worker_paused,
            checkpoints,
            checkpoint_bytes,
            restores,
            restore_seconds,
            checkpoint_skipped,
            groups_refused,
            entity_events,
            groups_reclaimed,
            processing,
            consumed,
            events,
            dead_letter_reasons,
            delivered,
            delivery_errors,
            dropped,
            detection_latency,
            forecast_lead,
            forecast_outcomes,
            assigned_partitions,
            commit_failures,
            consumer_errors,
            last_poll,
            config_reload_successful,
            config_reload_time,
        }
    }

    /// The `group_by` labels the per-group gauges carry.
    pub(crate) fn group_labels(&self) -> &[String] {
        &self.group_labels
    }

    /// The counters of `topic`.
    pub fn topic(&self, topic: &str) -> TopicCounters {
        let result = |r: EventResult| self.events.with_label_values(&[topic, r.as_str()]);
        TopicCounters {
            consumed: self.consumed.with_label_values(&[topic]),
            applied: result(EventResult::Applied),
            dead_lettered: result(EventResult::DeadLettered),
            late: result(EventResult::Late),
            refused: result(EventResult::Refused),
        }
    }

    /// Counts a dead letter by reason.
    pub fn dead_letter_reason(&self, reason: &str) {
        self.dead_letter_reasons.with_label_values(&[reason]).inc();
    }

    /// Counts a settled forecast of `rule` (and its lead, if it came true).
    pub fn prediction(&self, rule: &str, p: forewarn_core::rules::Prediction) {
        let outcome = if p.came_true { "came_true" } else { "did_not" };
        self.forecast_outcomes
            .with_label_values(&[rule, outcome])
            .inc();
        if p.came_true {
            self.forecast_lead
                .with_label_values(&[rule])
                .observe(p.lead as f64 / 1000.0);
        }
    }

    /// Counts one message acknowledged by the broker.
    pub fn delivered(&self, output: Output) {
        self.delivered.with_label_values(&[output.as_str()]).inc();
    }

    /// Counts a failed delivery attempt.
    pub fn delivery_error(&self, output: Output) {
        self.delivery_errors
            .with_label_values(&[output.as_str()])
            .inc();
    }

    /// Counts a delivery given up.
    pub fn dropped(&self, output: Output) {
        self.dropped.with_label_values(&[output.as_str()]).inc();
    }

    /// Counts an alert transition.
    pub fn transition(&self, alert: &forewarn_core::Alert) {
        let label = |k: &str| alert.labels.get(k).map_or("", String::as_str);
        self.transitions
            .with_label_values(&[
                label("alertname"),
                label("category"),
                label("severity"),
                alert.status,
            ])
            .inc();
    }

    /// Replaces the current-alerts gauge with `alerts` (pending and firing ones).
    pub fn set_active(&self, alerts: &[forewarn_core::Alert]) {
        self.alerts.reset();
        for a in alerts {
            let label = |k: &str| a.labels.get(k).map_or("", String::as_str);
            self.alerts
                .with_label_values(&[
                    label("alertname"),
                    label("service"),
                    label("category"),
                    label("severity"),
                    a.status,
                ])
                .inc();
        }
    }

    /// Replaces the signal-value and risk gauges with `readings` (NaN values
    /// are left out; a service's risk is the largest of its rules').
    pub fn set_readings(&self, readings: &[crate::view::GroupReading]) {
        self.signal_value.reset();
        self.slo_burn_rate.reset();
        self.slo_budget_remaining.reset();
        self.anomaly_score.reset();
        self.anomaly_expected.reset();
        self.failure_probability.reset();
        self.forecast_at_horizon.reset();
        self.forecast_eta.reset();
        self.risk.reset();
        let mut risk: std::collections::HashMap<&str, f64> = std::collections::HashMap::new();
        let mut values: Vec<&str> = Vec::new();
        for r in readings {
            let service = r.labels.first().map_or("", |l| l.1.as_str());
            // [rule, signal, service, group labels…]; the score and band
            // gauges take the same minus `signal`, and the band adds `bound`.
            values.clear();
            values.extend([r.rule.as_str(), r.signal.as_str(), service]);
            for name in self.group_labels.iter() {
                let v = r.labels.iter().skip(1).find(|(k, _)| k == name);
                values.push(v.map_or("", |(_, v)| v.as_str()));
            }
            if r.value.is_finite() {
                self.signal_value.with_label_values(&values).set(r.value);
            }
            let mut without_signal: Vec<&str> = Vec::with_capacity(values.len() + 1);
            without_signal.push(values[0]);
            without_signal.extend_from_slice(&values[2..]);
            for s in &r.series {
                match (s.name, s.window) {
                    ("slo_burn_rate", Some(w)) => self
                        .slo_burn_rate
                        .with_label_values(&[
                            r.rule.as_str(),
                            service,
                            &forewarn_core::time::format_duration(w),
                        ])
                        .set(s.value),
                    ("anomaly_score", _) => self
                        .anomaly_score
                        .with_label_values(&without_signal)
                        .set(s.value),
                    ("forecast_at_horizon", _) => self
                        .forecast_at_horizon
                        .with_label_values(&without_signal)
                        .set(s.value),
                    ("forecast_eta_seconds", _) => self
                        .forecast_eta
                        .with_label_values(&without_signal)
                        .set(s.value),
                    ("anomaly_expected_lower" | "anomaly_expected_upper", _) => {
                        let mut labels = without_signal.clone();
                        labels.push(s.name.trim_start_matches("anomaly_expected_"));
                        self.anomaly_expected
                            .with_label_values(&labels)
                            .set(s.value)
                    }
                    ("slo_error_budget_remaining_ratio", _) => self
                        .slo_budget_remaining
                        .with_label_values(&[r.rule.as_str(), service])
                        .set(s.value),
                    ("failure_probability", _) => self
                        .failure_probability
                        .with_label_values(&[r.rule.as_str(), service])
                        .set(s.value),
                    _ => {}
                }
            }
            let e = risk.entry(service).or_insert(0.0);
            *e = e.max(r.risk);
        }
        for (service, r) in risk {
            self.risk.with_label_values(&[service]).set(r);
        }
    }

    /// Forgets the per-partition gauges of a partition this process no longer owns.
    pub fn forget_partition(&self, topic: &str, partition: i32) {
        let p = partition.to_string();
        let _ = self.watermark_delay.remove_label_values(&[topic, &p]);
        let _ = self.services_ahead.remove_label_values(&[topic, &p]);
        let _ = self.consumer_lag.remove_label_values(&[topic, &p]);
        let _ = self.checkpoint_bytes.remove_label_values(&[topic, &p]);
    }

    /// Totals over every topic.
    pub fn accounting(&self) -> Accounting {
        let mut a = Accounting::default();
        for family in self.registry.gather() {
            let sum = |want: Option<(&str, &str)>| -> u64 {
                family
                    .get_metric()
                    .iter()
                    .filter(|m| {
                        want.is_none_or(|(k, v)| {
                            m.get_label()
                                .iter()
                                .any(|l| l.name() == k && l.value() == v)
                        })
                    })
                    .map(|m| m.get_counter().get_value() as u64)
                    .sum()
            };
            match family.name() {
                "forewarn_events_consumed_total" => a.consumed = sum(None),
                "forewarn_events_total" => {
                    a.applied = sum(Some(("result", "applied")));
                    a.dead_lettered = sum(Some(("result", "dead_lettered")));
                    a.late = sum(Some(("result", "late")));
                    a.refused = sum(Some(("result", "refused")));
                }
                "forewarn_output_delivered_total" => {
                    a.alerts_delivered = sum(Some(("output", "alerts")));
                    a.dead_letters_delivered = sum(Some(("output", "dead_letters")));
                }
                "forewarn_output_dropped_total" => a.dropped = sum(None),
                _ => {}
            }
        }
        a
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounting_sums_every_topic_and_balances() {
        let m = Metrics::new();
        let a = m.topic("a");
        let b = m.topic("b");
        a.count(EventResult::Applied);
        a.count(EventResult::Late);
        b.count(EventResult::DeadLettered);
        b.count(EventResult::Applied);
        b.count(EventResult::Refused);
        m.delivered(Output::Alerts);
        m.dropped(Output::DeadLetters);
        let acc = m.accounting();
        assert_eq!(
            acc,
            Accounting {
                consumed: 5,
                applied: 2,
                dead_lettered: 1,
                late: 1,
                refused: 1,
                alerts_delivered: 1,
                dead_letters_delivered: 0,
                dropped: 1,
            }
        );
        assert!(acc.balanced());
    }

    #[test]
    fn settled_forecasts_are_counted_and_their_lead_observed() {
        use forewarn_core::rules::Prediction;
        let m = Metrics::new();
        m.prediction(
            "Heading",
            Prediction {
                came_true: true,
                lead: 600_000,
            },
        );
        m.prediction(
            "Heading",
            Prediction {
                came_true: false,
                lead: 60_000,
            },
        );
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&m.registry.gather())
            .unwrap();
        assert!(
            text.contains(
                r#"forewarn_forecast_outcomes_total{outcome="came_true",rule="Heading"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"forewarn_forecast_outcomes_total{outcome="did_not",rule="Heading"} 1"#
            ),
            "{text}"
        );
        // Only the forecast that came true has a lead: 600 s, in the 600 s bucket.
        assert!(
            text.contains(r#"forewarn_forecast_lead_seconds_bucket{rule="Heading",le="300"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"forewarn_forecast_lead_seconds_bucket{rule="Heading",le="600"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"forewarn_forecast_lead_seconds_count{rule="Heading"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn every_fixed_rule_level_is_a_threshold_gauge() {
        let cfg = forewarn_core::Config::parse(
            "[[signals]]\nname = \"errors\"\naggregate = \"count\"\nwindow = \"1m\"\nslide = \"10s\"\n\
             [[rules]]\nname = \"Errors\"\nkind = \"threshold\"\nsignal = \"errors\"\nwarning = { value = 5 }\ncritical = { value = 20 }\n\
             [[rules]]\nname = \"Unusual\"\nkind = \"anomaly\"\nsignal = \"errors\"\n",
            "t.toml",
        )
        .unwrap();
        let m = Metrics::for_config(&cfg);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&m.registry.gather())
            .unwrap();
        let levels: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("forewarn_rule_threshold{"))
            .collect();
        assert_eq!(
            levels,
            [
                r#"forewarn_rule_threshold{rule="Errors",severity="critical"} 20"#,
                r#"forewarn_rule_threshold{rule="Errors",severity="warning"} 5"#,
            ],
            "an anomaly rule has no fixed level"
        );
    }

    #[test]
    fn group_by_labels_are_labels_of_their_own() {
        let cfg = forewarn_core::Config::parse(
            "[[signals]]\nname = \"errors\"\naggregate = \"count\"\nwindow = \"1m\"\nslide = \"10s\"\ngroup_by = [\"region\", \"rule\"]\n\
             [[signals]]\nname = \"all\"\naggregate = \"count\"\nwindow = \"1m\"\nslide = \"10s\"\n\
             [[rules]]\nname = \"ByRegion\"\nkind = \"threshold\"\nsignal = \"errors\"\nwarning = { value = 1 }\n\
             [[rules]]\nname = \"Overall\"\nkind = \"threshold\"\nsignal = \"all\"\nwarning = { value = 1 }\n",
            "t.toml",
        )
        .unwrap();
        let m = Metrics::for_config(&cfg);
        let reading =
            |rule: &str, signal: &str, labels: &[(&str, &str)]| crate::view::GroupReading {
                rule: rule.into(),
                signal: signal.into(),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                value: 2.0,
                risk: 0.0,
                series: Vec::new(),
            };
        m.set_readings(&[
            reading(
                "ByRegion",
                "errors",
                &[("service", "pay"), ("region", "eu"), ("rule", "r1")],
            ),
            reading("Overall", "all", &[("service", "pay")]),
        ]);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&m.registry.gather())
            .unwrap();
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("forewarn_signal_value{"))
            .collect();
        assert!(
            series.iter().any(|l| l.contains(r#"region="eu""#)
                && l.contains(r#"label_rule="r1""#)
                && l.contains(r#"rule="ByRegion""#)
                && !l.contains("group=")),
            "{series:?}"
        );
        assert!(
            series.iter().any(|l| l.contains(r#"rule="Overall""#)),
            "{series:?}"
        );
    }
}
