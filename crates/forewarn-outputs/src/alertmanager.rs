//! Alertmanager output: firing and resolved alerts are POSTed to
//! `/api/v2/alerts` of every configured Alertmanager (an HA set deduplicates
//! among itself). Firing alerts are re-sent every `resend_interval` with `endsAt`
//! a few intervals ahead, so they stay active while forewarn runs and expire on
//! their own if it dies; a resolved alert is sent with its `endsAt`.
//!
//! During an outage nothing is lost: the queue keeps the latest state of each
//! alert (a resolve replaces the firing it follows) and is retried with backoff
//! (100 ms doubling to 10 s) until an Alertmanager accepts it. The queue is
//! bounded (`max_queue` distinct alerts); if it ever overflows, the oldest entry
//! is dropped and counted.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use forewarn_core::time::format_rfc3339;
use forewarn_core::Alert;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Where and how to notify.
#[derive(Debug, Clone)]
pub struct AlertmanagerOptions {
    /// Base URLs, e.g. `http://alertmanager:9093`.
    pub urls: Vec<String>,
    /// How often firing alerts are re-sent.
    pub resend_interval: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Most distinct alerts held while no Alertmanager accepts them.
    pub max_queue: usize,
}

impl Default for AlertmanagerOptions {
    fn default() -> Self {
        AlertmanagerOptions {
            urls: Vec::new(),
            resend_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            max_queue: 10_000,
        }
    }
}

/// An alert as Alertmanager's v2 API takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Postable {
    labels: std::collections::BTreeMap<String, String>,
    annotations: std::collections::BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    starts_at: String,
    #[serde(rename = "endsAt")]
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: String,
}

#[derive(Clone)]
struct NotifierMetrics {
    sent: IntCounterVec,
    failed: IntCounterVec,
    dropped: IntCounter,
    queued: IntGauge,
}

impl NotifierMetrics {
    fn new(registry: &Registry) -> NotifierMetrics {
        let sent = IntCounterVec::new(
            Opts::new(
                "forewarn_notifications_sent_total",
                "Alerts accepted by an Alertmanager, by URL.",
            ),
            &["alertmanager"],
        )
        .expect("valid metric");
        let failed = IntCounterVec::new(
            Opts::new(
                "forewarn_notifications_failed_total",
                "Alert batches an Alertmanager refused or did not answer (retried).",
            ),
            &["alertmanager"],
        )
        .expect("valid metric");
        let dropped = IntCounter::new(
            "forewarn_notifications_dropped_total",
            "Alerts dropped because the notification queue was full.",
        )
        .expect("valid metric");
        let queued = IntGauge::new(
            "forewarn_notifications_queued",
            "Alerts waiting to be accepted by an Alertmanager.",
        )
        .expect("valid metric");
        for c in [
            Box::new(sent.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(failed.clone()),
            Box::new(dropped.clone()),
            Box::new(queued.clone()),
        ] {
            // A second notifier in one process keeps the first registration.
            let _ = registry.register(c);
        }
        NotifierMetrics {
            sent,
            failed,
            dropped,
            queued,
        }
    }
}

/// The handle the pipeline calls; the work happens in a tokio task.
pub struct Notifier {
    tx: std::sync::Mutex<Option<mpsc::Sender<Alert>>>,
    dropped: IntCounter,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Notifier {
    /// Starts the notifier task on `runtime`.
    pub fn start(
        options: AlertmanagerOptions,
        registry: &Registry,
        runtime: &tokio::runtime::Handle,
    ) -> Notifier {
        let metrics = NotifierMetrics::new(registry);
        let (tx, rx) = mpsc::channel(options.max_queue.max(1));
        let dropped = metrics.dropped.clone();
        let task = runtime.spawn(run(options, rx, metrics));
        Notifier {
            tx: std::sync::Mutex::new(Some(tx)),
            dropped,
            task: std::sync::Mutex::new(Some(task)),
        }
    }

    /// Queues a firing or resolved alert (others are not Alertmanager's
    /// business). Never blocks the pipeline: when the channel is full the alert
    /// is dropped and counted.
    pub fn notify(&self, alert: &Alert) {
        if !matches!(alert.status, "firing" | "resolved") {
            return;
        }
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = tx.as_ref() else {
            return; // closed: shutting down
        };
        if tx.try_send(alert.clone()).is_err() {
            self.dropped.inc();
            tracing::error!(fingerprint = %alert.fingerprint, "alertmanager queue full; alert dropped");
        }
    }

    /// Stops taking alerts and waits up to `timeout` for the queue to drain.
    pub async fn close(&self, timeout: Duration) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            if tokio::time::timeout(timeout, task).await.is_err() {
                tracing::error!("alertmanager queue not drained at shutdown");
            }
        }
    }
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The queue: latest state per alert, in first-queued order.
#[derive(Default)]
struct Queue {
    order: VecDeque<String>,
    latest: HashMap<String, Postable>,
}

impl Queue {
    /// Queues `p` under `key`, replacing a queued older state. Returns whether
    /// an entry had to be dropped to stay within `max`.
    fn put(&mut self, key: String, p: Postable, max: usize) -> bool {
        if self.latest.insert(key.clone(), p).is_none() {
            self.order.push_back(key);
        }
        if self.order.len() > max {
            if let Some(old) = self.order.pop_front() {
                self.latest.remove(&old);
            }
            return true;
        }
        false
    }

    fn take(&mut self, n: usize) -> Vec<(String, Postable)> {
        let mut out = Vec::new();
        while out.len() < n {
            let Some(k) = self.order.pop_front() else {
                break;
            };
            if let Some(p) = self.latest.remove(&k) {
                out.push((k, p));
            }
        }
        out
    }

    /// Puts a batch back at the front (after a failed attempt), unless a newer
    /// state was queued meanwhile.
    fn requeue(&mut self, batch: Vec<(String, Postable)>) {
        for (k, p) in batch.into_iter().rev() {
            if !self.latest.contains_key(&k) {
                self.latest.insert(k.clone(), p);
                self.order.push_front(k);
            }
        }
    }

    fn len(&self) -> usize {
        self.order.len()
    }
}

async fn run(options: AlertmanagerOptions, mut rx: mpsc::Receiver<Alert>, m: NotifierMetrics) {
    let client = match reqwest::Client::builder().timeout(options.timeout).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot create the Alertmanager client");
            return;
        }
    };
    let urls: Vec<String> = options
        .urls
        .iter()
        .map(|u| format!("{}/api/v2/alerts", u.trim_end_matches('/')))
        .collect();
    let hold = options.resend_interval * 4;
    let ends_at_for_firing = || format_rfc3339(wall_ms() + hold.as_millis() as i64);
    let mut firing: HashMap<String, Postable> = HashMap::new();
    let mut queue = Queue::default();
    let mut resend = tokio::time::interval(options.resend_interval);
    resend.tick().await;
    let mut backoff = Duration::ZERO;
    let mut next_attempt = Instant::now();
    let mut open = true;
    while open || queue.len() > 0 {
        tokio::select! {
            got = rx.recv(), if open => match got {
                Some(a) => {
                    let resolved = a.status == "resolved";
                    let p = Postable {
                        ends_at: if resolved {
                            a.ends_at.clone().unwrap_or_else(|| format_rfc3339(wall_ms()))
                        } else {
                            ends_at_for_firing()
                        },
                        labels: a.labels,
                        annotations: a.annotations,
                        starts_at: a.starts_at,
                        generator_url: a.generator_url,
                    };
                    if resolved {
                        firing.remove(&a.fingerprint);
                    } else {
                        firing.insert(a.fingerprint.clone(), p.clone());
                    }
                    if queue.put(a.fingerprint, p, options.max_queue) {
                        m.dropped.inc();
                    }
                }
                None => open = false,
            },
            _ = resend.tick() => {
                let ends = ends_at_for_firing();
                for (k, p) in firing.iter_mut() {
                    p.ends_at = ends.clone();
                    if queue.put(k.clone(), p.clone(), options.max_queue) {
                        m.dropped.inc();
                    }
                }
            }
            _ = tokio::time::sleep_until(next_attempt), if queue.len() > 0 => {
                let batch = queue.take(500);
                let body: Vec<&Postable> = batch.iter().map(|(_, p)| p).collect();
                let mut accepted = false;
                for url in &urls {
                    match client.post(url).json(&body).send().await {
                        Ok(r) if r.status().is_success() => {
                            accepted = true;
                            m.sent.with_label_values(&[url]).inc_by(body.len() as u64);
                        }
                        Ok(r) => {
                            m.failed.with_label_values(&[url]).inc();
                            tracing::warn!(url, status = %r.status(), "alertmanager refused alerts");
                        }
                        Err(e) => {
                            m.failed.with_label_values(&[url]).inc();
                            tracing::warn!(url, error = %e, "alertmanager unreachable");
                        }
                    }
                }
                if accepted {
                    backoff = Duration::ZERO;
                } else {
                    queue.requeue(batch);
                    backoff = (backoff * 2).clamp(Duration::from_millis(100), Duration::from_secs(10));
                }
                next_attempt = Instant::now() + backoff;
            }
        }
        m.queued.set(queue.len() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &str) -> Postable {
        Postable {
            labels: [("v".to_string(), v.to_string())].into(),
            annotations: Default::default(),
            starts_at: String::new(),
            ends_at: String::new(),
            generator_url: String::new(),
        }
    }

    #[test]
    fn queue_keeps_the_latest_state_per_alert_in_order_and_is_bounded() {
        let mut q = Queue::default();
        assert!(!q.put("a".into(), p("firing"), 2));
        assert!(!q.put("b".into(), p("firing"), 2));
        assert!(!q.put("a".into(), p("resolved"), 2), "replaces, no growth");
        assert_eq!(q.len(), 2);
        let batch = q.take(10);
        assert_eq!(batch[0], ("a".to_string(), p("resolved")));
        assert_eq!(batch[1].0, "b");
        // A failed batch goes back in front, unless a newer state arrived.
        q.put("b".into(), p("resolved"), 2);
        q.requeue(batch);
        let again = q.take(10);
        assert_eq!(again[0], ("a".to_string(), p("resolved")));
        assert_eq!(again[1], ("b".to_string(), p("resolved")));
        assert!(q.put("x".into(), p("1"), 2) || q.len() <= 2);
        q.put("y".into(), p("1"), 2);
        assert!(
            q.put("z".into(), p("1"), 2),
            "a third distinct alert overflows"
        );
        assert_eq!(q.len(), 2);
    }
}
