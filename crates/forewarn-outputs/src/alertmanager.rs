//! Alertmanager output: firing and resolved alerts are POSTed to
//! `/api/v2/alerts` of every configured Alertmanager (an HA set deduplicates
//! among itself). Firing alerts are re-sent every `resend_interval` with `endsAt`
//! a few intervals ahead, so they stay active while forewarn runs and expire on
//! their own if it dies; a resolved alert is sent with its `endsAt`.
//!
//! Each Alertmanager has its own worker and queue, so an instance that is down
//! or hangs neither delays the others nor loses what it missed. During an outage
//! nothing is lost: the queue keeps the latest state of each alert (a resolve
//! replaces the firing it follows) and is retried with backoff (100 ms doubling
//! to 10 s) until that Alertmanager accepts it. Each queue is bounded
//! (`max_queue` distinct alerts); if one ever overflows, its oldest entry is
//! dropped and counted.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use forewarn_core::time::{format_rfc3339, parse_rfc3339};
use forewarn_core::Alert;
use prometheus::{IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};
use serde::Serialize;
use tokio::sync::mpsc;

/// Where and how to notify.
#[derive(Debug, Clone)]
pub struct AlertmanagerOptions {
    /// Base URLs, e.g. `http://alertmanager:9093`.
    pub urls: Vec<String>,
    /// How often firing alerts are re-sent.
    pub resend_interval: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Most distinct alerts held per Alertmanager while it does not accept them.
    pub max_queue: usize,
    /// Credentials sent with every request.
    pub auth: Auth,
    /// TLS settings for `https://` URLs.
    pub tls: Tls,
}

/// How forewarn authenticates to Alertmanager (or the proxy in front of it).
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// No credentials.
    #[default]
    None,
    /// HTTP basic authentication.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer(String),
}

impl std::fmt::Debug for Auth {
    // Secrets never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Basic { user, .. } => {
                write!(f, "Basic {{ user: {user:?}, password: <redacted> }}")
            }
            Auth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// TLS settings: extra trusted CA, a client certificate (mutual TLS), or no
/// verification at all (testing only).
#[derive(Clone, Default)]
pub struct Tls {
    /// PEM certificates trusted besides the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate and its PKCS#8 key, both PEM.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
    /// Accept any server certificate.
    pub insecure_skip_verify: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("ca", &self.ca_pem.is_some())
            .field("client_certificate", &self.client.is_some())
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .finish()
    }
}

/// Most alerts in one request: what Prometheus sends per batch.
const MAX_BATCH: usize = 64;

/// The HTTP client for `options`: forewarn's User-Agent, the timeout, TLS.
fn client(options: &AlertmanagerOptions) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .timeout(options.timeout)
        .user_agent(concat!("forewarn/", env!("CARGO_PKG_VERSION")));
    let tls = &options.tls;
    if let Some(pem) = &tls.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("the CA file holds no readable PEM certificate: {e}"))?;
        if certs.is_empty() {
            return Err("the CA file holds no PEM certificate".into());
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if let Some((cert, key)) = &tls.client {
        let id = reqwest::Identity::from_pkcs8_pem(cert, key).map_err(|e| {
            format!(
                "the client certificate or key is not readable PEM (the key must be PKCS#8): {e}"
            )
        })?;
        b = b.identity(id);
    }
    if tls.insecure_skip_verify {
        b = b.danger_accept_invalid_certs(true);
    }
    b.build().map_err(|e| e.to_string())
}

/// `request` with the configured credentials.
fn authorize(request: reqwest::RequestBuilder, auth: &Auth) -> reqwest::RequestBuilder {
    match auth {
        Auth::None => request,
        Auth::Basic { user, password } => request.basic_auth(user, Some(password)),
        Auth::Bearer(token) => request.bearer_auth(token),
    }
}

impl Default for AlertmanagerOptions {
    fn default() -> Self {
        AlertmanagerOptions {
            urls: Vec::new(),
            resend_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            max_queue: 10_000,
            auth: Auth::None,
            tls: Tls::default(),
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
    rejected: IntCounterVec,
    dropped: IntCounter,
    queued: IntGaugeVec,
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
        let rejected = IntCounterVec::new(
            Opts::new(
                "forewarn_notifications_rejected_total",
                "Alerts an Alertmanager refused as invalid (HTTP 4xx), by URL: logged with its reason, not retried.",
            ),
            &["alertmanager"],
        )
        .expect("valid metric");
        let dropped = IntCounter::new(
            "forewarn_notifications_dropped_total",
            "Alerts dropped because an Alertmanager's notification queue was full.",
        )
        .expect("valid metric");
        let queued = IntGaugeVec::new(
            Opts::new(
                "forewarn_notifications_queued",
                "Alerts waiting to be accepted, by Alertmanager URL.",
            ),
            &["alertmanager"],
        )
        .expect("valid metric");
        for c in [
            Box::new(sent.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(failed.clone()),
            Box::new(rejected.clone()),
            Box::new(dropped.clone()),
            Box::new(queued.clone()),
        ] {
            // A second notifier in one process keeps the first registration.
            let _ = registry.register(c);
        }
        NotifierMetrics {
            sent,
            failed,
            rejected,
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
    /// Starts the notifier task on `runtime`; refuses TLS material it cannot
    /// read (the message says what is wrong with it).
    pub fn start(
        options: AlertmanagerOptions,
        registry: &Registry,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Notifier, String> {
        let client = client(&options)?;
        let metrics = NotifierMetrics::new(registry);
        let (tx, rx) = mpsc::channel(options.max_queue.max(1));
        let dropped = metrics.dropped.clone();
        let task = runtime.spawn(run(options, client, rx, metrics));
        Ok(Notifier {
            tx: std::sync::Mutex::new(Some(tx)),
            dropped,
            task: std::sync::Mutex::new(Some(task)),
        })
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

/// One Alertmanager's delivery: its endpoint, queue and wake-up.
struct Target {
    url: String,
    queue: Mutex<Queue>,
    wake: tokio::sync::Notify,
}

impl Target {
    fn put(&self, key: &str, p: &Postable, max: usize, m: &NotifierMetrics) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.put(key.to_string(), p.clone(), max) {
            m.dropped.inc();
            tracing::error!(url = %self.url, fingerprint = key, "alertmanager queue full; oldest alert dropped");
        }
        m.queued.with_label_values(&[&self.url]).set(q.len() as i64);
        drop(q);
        self.wake.notify_one();
    }
}

/// The state Alertmanager is sent, with event times clamped to what it
/// accepts: an alert stamped ahead of its clock (a producer's clock, within
/// `max_future_skew`) starts now, and a resolved alert ends no later than now
/// (a future `endsAt` would keep it active) and never before it started.
/// `firing_until` is the `endsAt` of a firing alert.
fn postable(
    labels: std::collections::BTreeMap<String, String>,
    annotations: std::collections::BTreeMap<String, String>,
    starts_at: &str,
    resolved_at: Option<&str>,
    firing_until: Option<String>,
    generator_url: String,
    now: i64,
) -> Postable {
    let starts = parse_rfc3339(starts_at).map_or(now, |s| s.min(now));
    let ends_at = match firing_until {
        Some(until) => until,
        None => {
            let ends = resolved_at.and_then(parse_rfc3339).unwrap_or(now);
            format_rfc3339(ends.clamp(starts, now.max(starts)))
        }
    };
    Postable {
        labels,
        annotations,
        starts_at: format_rfc3339(starts),
        ends_at,
        generator_url,
    }
}

/// Turns pipeline alerts into postable states, keeps the firing ones for
/// re-sending, and hands every state to each Alertmanager's queue; on close,
/// waits for the workers to drain.
async fn run(
    options: AlertmanagerOptions,
    client: reqwest::Client,
    mut rx: mpsc::Receiver<Alert>,
    m: NotifierMetrics,
) {
    let targets: Vec<Arc<Target>> = options
        .urls
        .iter()
        .map(|u| {
            let url = format!("{}/api/v2/alerts", u.trim_end_matches('/'));
            // Every known series from the start: dashboards and rate() see a 0.
            m.queued.with_label_values(&[&url]).set(0);
            m.sent.with_label_values(&[&url]);
            m.failed.with_label_values(&[&url]);
            m.rejected.with_label_values(&[&url]);
            Arc::new(Target {
                url,
                queue: Mutex::new(Queue::default()),
                wake: tokio::sync::Notify::new(),
            })
        })
        .collect();
    let closing = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = targets
        .iter()
        .map(|t| {
            tokio::spawn(deliver(
                Arc::clone(t),
                client.clone(),
                options.auth.clone(),
                m.clone(),
                Arc::clone(&closing),
            ))
        })
        .collect();
    let hold = options.resend_interval * 4;
    let ends_at_for_firing = || format_rfc3339(wall_ms() + hold.as_millis() as i64);
    let mut firing: HashMap<String, Postable> = HashMap::new();
    let mut resend = tokio::time::interval(options.resend_interval);
    resend.tick().await;
    loop {
        tokio::select! {
            got = rx.recv() => {
                let Some(a) = got else { break };
                let resolved = a.status == "resolved";
                let firing_until = (!resolved).then(ends_at_for_firing);
                let p = postable(a.labels, a.annotations, &a.starts_at, a.ends_at.as_deref(), firing_until, a.generator_url, wall_ms());
                for t in &targets {
                    t.put(&a.fingerprint, &p, options.max_queue, &m);
                }
                if resolved {
                    firing.remove(&a.fingerprint);
                } else {
                    firing.insert(a.fingerprint, p);
                }
            }
            _ = resend.tick() => {
                let ends = ends_at_for_firing();
                for (k, p) in firing.iter_mut() {
                    p.ends_at = ends.clone();
                    for t in &targets {
                        t.put(k, p, options.max_queue, &m);
                    }
                }
            }
        }
    }
    closing.store(true, Ordering::Release);
    for t in &targets {
        t.wake.notify_one();
    }
    for w in workers {
        let _ = w.await;
    }
}

/// How Alertmanager answered one request.
enum Posted {
    /// 2xx.
    Accepted,
    /// 4xx other than 408/429: the request is invalid and would be refused
    /// again; Alertmanager's reason.
    Rejected(String),
    /// No answer, 5xx, 408 or 429: worth retrying.
    Failed,
}

async fn post(client: &reqwest::Client, url: &str, auth: &Auth, body: &[&Postable]) -> Posted {
    match authorize(client.post(url), auth).json(body).send().await {
        Ok(r) if r.status().is_success() => Posted::Accepted,
        Ok(r) if r.status().is_client_error() && !matches!(r.status().as_u16(), 408 | 429) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            Posted::Rejected(format!("{status}: {}", text.trim()))
        }
        Ok(r) => {
            tracing::warn!(url, status = %r.status(), "alertmanager refused alerts; will retry");
            Posted::Failed
        }
        Err(e) => {
            tracing::warn!(url, error = %e, "alertmanager unreachable");
            Posted::Failed
        }
    }
}

fn reject(url: &str, p: &Postable, why: &str, m: &NotifierMetrics) {
    m.rejected.with_label_values(&[url]).inc();
    tracing::error!(url, reason = why, labels = ?p.labels, starts_at = %p.starts_at, ends_at = %p.ends_at, "alertmanager rejected an alert as invalid; not retried");
}

/// One Alertmanager's worker: posts its queue in batches, retrying failures
/// with backoff; exits once closing and drained.
async fn deliver(
    target: Arc<Target>,
    client: reqwest::Client,
    auth: Auth,
    m: NotifierMetrics,
    closing: Arc<AtomicBool>,
) {
    let url = target.url.as_str();
    let mut backoff = Duration::ZERO;
    loop {
        let batch = target
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(MAX_BATCH);
        if batch.is_empty() {
            if closing.load(Ordering::Acquire) {
                return;
            }
            // A wake-up sent before this wait is stored, so none is missed.
            target.wake.notified().await;
            continue;
        }
        let body: Vec<&Postable> = batch.iter().map(|(_, p)| p).collect();
        // How many alerts of the batch (from the front) are settled.
        let settled = match post(&client, url, &auth, &body).await {
            Posted::Accepted => {
                m.sent.with_label_values(&[url]).inc_by(body.len() as u64);
                body.len()
            }
            // One invalid alert makes Alertmanager refuse the whole batch:
            // resend one by one so only the invalid ones are given up.
            Posted::Rejected(why) if body.len() == 1 => {
                reject(url, body[0], &why, &m);
                1
            }
            Posted::Rejected(_) => {
                let mut settled = 0;
                for p in &body {
                    match post(&client, url, &auth, &[*p]).await {
                        Posted::Accepted => m.sent.with_label_values(&[url]).inc(),
                        Posted::Rejected(why) => reject(url, p, &why, &m),
                        // Unreachable meanwhile: the rest is retried.
                        Posted::Failed => break,
                    }
                    settled += 1;
                }
                settled
            }
            Posted::Failed => 0,
        };
        drop(body);
        let mut batch = batch;
        let unsettled = batch.split_off(settled);
        if unsettled.is_empty() {
            backoff = Duration::ZERO;
        } else {
            m.failed.with_label_values(&[url]).inc();
            backoff = (backoff * 2).clamp(Duration::from_millis(100), Duration::from_secs(10));
        }
        {
            let mut q = target.queue.lock().unwrap_or_else(|p| p.into_inner());
            if !unsettled.is_empty() {
                q.requeue(unsettled);
            }
            m.queued.with_label_values(&[url]).set(q.len() as i64);
        }
        if !backoff.is_zero() {
            tokio::time::sleep(backoff).await;
        }
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

    /// Reads one HTTP/1.1 request: its lower-cased head and its JSON body.
    fn read_request(conn: &mut std::net::TcpStream) -> (String, serde_json::Value) {
        use std::io::Read;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 65536];
        let (head, start, len) = loop {
            let got = conn.read(&mut chunk).unwrap();
            buf.extend_from_slice(&chunk[..got]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                break (head, end + 4, end + 4 + len);
            }
        };
        while buf.len() < len {
            let got = conn.read(&mut chunk).unwrap();
            buf.extend_from_slice(&chunk[..got]);
        }
        (head, serde_json::from_slice(&buf[start..len]).unwrap())
    }

    /// Requests as a raw server saw them: (head, JSON body).
    fn capture(
        n: usize,
    ) -> (
        String,
        std::thread::JoinHandle<Vec<(String, serde_json::Value)>>,
    ) {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let mut seen: Vec<(String, serde_json::Value)> = Vec::new();
            while seen
                .iter()
                .map(|(_, b)| b.as_array().map_or(0, Vec::len))
                .sum::<usize>()
                < n
            {
                let (mut conn, _) = listener.accept().unwrap();
                let (head, body) = read_request(&mut conn);
                seen.push((head, body));
                conn.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .unwrap();
            }
            seen
        });
        (url, server)
    }

    fn firing(i: usize) -> Alert {
        Alert {
            status: "firing",
            transition: forewarn_core::lifecycle::TransitionKind::Firing,
            labels: [("alertname".to_string(), format!("A{i}"))].into(),
            annotations: Default::default(),
            starts_at: "2026-01-01T00:00:00Z".into(),
            ends_at: None,
            generator_url: String::new(),
            fingerprint: format!("f{i}"),
            episode: String::new(),
            evaluated_at: String::new(),
        }
    }

    /// Every request carries forewarn's User-Agent and the bearer token, and
    /// 100 alerts go in batches of at most 64, as Prometheus sends them.
    #[test]
    fn requests_carry_identity_and_credentials_in_prometheus_sized_batches() {
        let (url, server) = capture(100);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let n = Notifier::start(
            AlertmanagerOptions {
                urls: vec![url],
                auth: Auth::Bearer("t0ken".into()),
                ..Default::default()
            },
            &Registry::new(),
            runtime.handle(),
        )
        .unwrap();
        for i in 0..100 {
            n.notify(&firing(i));
        }
        let seen = server.join().unwrap();
        runtime.block_on(n.close(Duration::from_secs(1)));
        let sizes: Vec<usize> = seen
            .iter()
            .map(|(_, b)| b.as_array().unwrap().len())
            .collect();
        assert!(sizes.iter().all(|&s| s <= MAX_BATCH), "{sizes:?}");
        for (head, _) in &seen {
            assert!(head.starts_with("post /api/v2/alerts "), "{head}");
            assert!(head.contains("user-agent: forewarn/"), "{head}");
            assert!(head.contains("authorization: bearer t0ken"), "{head}");
        }
    }

    #[test]
    fn unreadable_tls_material_is_refused_with_what_is_wrong() {
        let mut options = AlertmanagerOptions::default();
        options.tls.ca_pem = Some(b"not a certificate".to_vec());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = Notifier::start(options, &Registry::new(), runtime.handle())
            .err()
            .expect("refused");
        assert!(err.contains("CA file"), "{err}");
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let basic = Auth::Basic {
            user: "u".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{basic:?} {:?}", Auth::Bearer("t0ken".into()));
        assert!(
            !shown.contains("hunter2") && !shown.contains("t0ken"),
            "{shown}"
        );
    }

    #[test]
    fn times_are_clamped_to_what_alertmanager_accepts() {
        let now = 1_800_000_000_000;
        let at = |ms: i64| format_rfc3339(ms);
        let p = |starts: i64, resolved: Option<i64>| {
            let resolved = resolved.map(at);
            let firing = resolved.is_none().then(|| at(now + 40_000));
            postable(
                Default::default(),
                Default::default(),
                &at(starts),
                resolved.as_deref(),
                firing,
                String::new(),
                now,
            )
        };
        let ahead = p(now + 120_000, None);
        assert_eq!(ahead.starts_at, at(now), "a future start starts now");
        assert_eq!(ahead.ends_at, at(now + 40_000));
        let past = p(now - 60_000, None);
        assert_eq!(past.starts_at, at(now - 60_000), "past starts are kept");
        let resolved_ahead = p(now + 120_000, Some(now + 180_000));
        assert_eq!(
            (
                resolved_ahead.starts_at.as_str(),
                resolved_ahead.ends_at.as_str()
            ),
            (at(now).as_str(), at(now).as_str()),
            "a resolve in the future ends now, not later"
        );
        let resolved = p(now - 60_000, Some(now - 30_000));
        assert_eq!(resolved.ends_at, at(now - 30_000));
    }

    /// An Alertmanager that refuses any request holding an alert labelled
    /// `bad` (as a real one refuses a whole batch for one invalid alert).
    fn picky(good_wanted: usize) -> (String, std::thread::JoinHandle<usize>) {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let mut good = std::collections::BTreeSet::new();
            let mut requests = 0;
            while good.len() < good_wanted {
                let (mut conn, _) = listener.accept().unwrap();
                requests += 1;
                let body = read_request(&mut conn).1;
                let alerts = body.as_array().unwrap();
                let reply: &[u8] = if alerts.iter().any(|a| a["labels"]["bad"] == "yes") {
                    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 35\r\nconnection: close\r\n\r\nstart time must be before end time"
                } else {
                    for a in alerts {
                        good.insert(a["labels"]["alertname"].as_str().unwrap().to_string());
                    }
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                };
                conn.write_all(reply).unwrap();
            }
            requests
        });
        (url, server)
    }

    /// One alert Alertmanager refuses as invalid does not hold back the
    /// others: they are delivered, it is counted as rejected, and it is not
    /// retried (before, the batch was retried forever at the head of the queue).
    #[test]
    fn an_invalid_alert_is_given_up_and_does_not_wedge_the_queue() {
        let (url, server) = picky(3);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let registry = Registry::new();
        let n = Notifier::start(
            AlertmanagerOptions {
                urls: vec![url],
                ..Default::default()
            },
            &registry,
            runtime.handle(),
        )
        .unwrap();
        let mut bad = firing(0);
        bad.labels.insert("bad".into(), "yes".into());
        n.notify(&bad);
        for i in 1..=3 {
            n.notify(&firing(i));
        }
        let requests = server.join().unwrap();
        runtime.block_on(n.close(Duration::from_secs(1)));
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        let value = |name: &str| -> f64 {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.rsplit(' ').next()?.parse().ok())
                .unwrap_or(0.0)
        };
        assert_eq!(
            value("forewarn_notifications_rejected_total"),
            1.0,
            "{text}"
        );
        assert_eq!(value("forewarn_notifications_sent_total"), 3.0, "{text}");
        assert!(
            requests <= 5,
            "the invalid alert is not retried: {requests} requests"
        );
    }
}
