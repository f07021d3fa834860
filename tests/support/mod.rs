//! Test harness for the Kafka integration tests: a real Tansu broker on a free
//! loopback port (memory storage, one per test so tests stay independent), topic
//! creation, producing and reading messages, committed offsets, and `forewarn
//! run` as a child process.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

/// Polls `cond` every 50 ms until it holds; panics with `what` after `timeout`.
pub fn eventually(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The tansu binary: `FOREWARN_TANSU`, else the cache `scripts/install-tansu.sh`
/// fills (running it when empty: the first build takes minutes).
fn tansu() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("FOREWARN_TANSU") {
            return PathBuf::from(p);
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install-tansu.sh");
        let out = Command::new("bash")
            .arg(script)
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/install-tansu.sh");
        assert!(out.status.success(), "scripts/install-tansu.sh failed");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("forewarn-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Client-side helpers for one cluster (Tansu or librdkafka's mock cluster).
pub struct Kafka {
    pub addr: String,
    /// One past the highest offset produced, by (topic, partition), from the
    /// delivery reports: Tansu 0.6.0's ListOffsets answers with the base offset
    /// of the last batch + 1, so watermarks cannot tell where a partition ends.
    ends: Arc<Mutex<HashMap<(String, i32), i64>>>,
}

/// A running Tansu broker, killed on drop.
pub struct Broker {
    child: Child,
    pub dir: TempDir,
    kafka: Kafka,
}

impl std::ops::Deref for Broker {
    type Target = Kafka;

    fn deref(&self) -> &Kafka {
        &self.kafka
    }
}

/// librdkafka's in-process mock cluster, listening on loopback: for faults the
/// real broker cannot be made to have.
pub struct Mock {
    pub cluster: rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    kafka: Kafka,
}

impl std::ops::Deref for Mock {
    type Target = Kafka;

    fn deref(&self) -> &Kafka {
        &self.kafka
    }
}

impl Mock {
    pub fn start(brokers: i32) -> Mock {
        let cluster = rdkafka::mocking::MockCluster::new(brokers).expect("mock cluster");
        let addr = cluster.bootstrap_servers();
        Mock {
            cluster,
            kafka: Kafka {
                addr,
                ends: Arc::default(),
            },
        }
    }

    pub fn create_topic(&self, name: &str, partitions: i32) {
        self.cluster
            .create_topic(name, partitions, 1)
            .expect("mock topic");
    }
}

/// Records where each delivered message landed.
struct Ends(Arc<Mutex<HashMap<(String, i32), i64>>>);

impl ClientContext for Ends {}

impl ProducerContext for Ends {
    type DeliveryOpaque = ();

    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        let m = r.as_ref().expect("test message delivered");
        let mut ends = self.0.lock().unwrap();
        let end = ends
            .entry((m.topic().to_string(), m.partition()))
            .or_insert(0);
        *end = (*end).max(m.offset() + 1);
    }
}

impl Broker {
    pub fn start() -> Broker {
        let dir = TempDir::new("tansu");
        for _ in 0..5 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let url = format!("tcp://{addr}");
            let log = File::create(dir.0.join("tansu.log")).unwrap();
            let mut child = Command::new(tansu())
                .args([
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                ])
                .args(["--storage-engine", "memory://tansu/"])
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start tansu");
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if TcpStream::connect(&addr).is_ok() {
                    return Broker {
                        child,
                        dir,
                        kafka: Kafka {
                            addr,
                            ends: Arc::default(),
                        },
                    };
                }
                if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break; // port taken meanwhile, or a slow start: try another port
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!(
            "tansu did not start; see {}",
            dir.0.join("tansu.log").display()
        );
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new(tansu())
            .args([
                "topic",
                "create",
                "--broker",
                &format!("tcp://{}", self.addr),
            ])
            .args(["--partitions", &partitions.to_string(), name])
            .output()
            .expect("run tansu topic create");
        assert!(
            out.status.success(),
            "topic create {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Kafka {
    fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.addr);
        c
    }

    /// Produces `(key, value)` messages and waits until all are acknowledged.
    pub fn produce(&self, topic: &str, messages: &[(Option<String>, Vec<u8>)]) {
        let p: BaseProducer<Ends> = self
            .client()
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create_with_context(Ends(Arc::clone(&self.ends)))
            .unwrap();
        for (k, v) in messages {
            loop {
                let mut r = BaseRecord::<str, [u8]>::to(topic).payload(v);
                if let Some(k) = k {
                    r = r.key(k.as_str());
                }
                match p.send(r) {
                    Ok(()) => break,
                    Err(_) => {
                        p.poll(Duration::from_millis(10));
                    }
                }
            }
        }
        p.flush(Duration::from_secs(30)).expect("produce");
    }

    /// Produces one message with `headers` and waits until it is acknowledged.
    pub fn produce_with_headers(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: &[(String, String)],
    ) {
        let p: BaseProducer = self.client().create().unwrap();
        let mut h = rdkafka::message::OwnedHeaders::new();
        for (k, v) in headers {
            h = h.insert(rdkafka::message::Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let r = BaseRecord::<str, [u8]>::to(topic)
            .key(key)
            .payload(payload)
            .headers(h);
        p.send(r).map_err(|(e, _)| e).expect("send");
        p.flush(Duration::from_secs(30)).expect("produce");
    }

    /// Produces copies of `messages` (keys, payloads, headers, in order) to
    /// `partition` of `topic`, whatever their keys would hash to.
    pub fn copy_to_partition(&self, messages: &[OwnedMessage], topic: &str, partition: i32) {
        let p: BaseProducer = self.client().create().unwrap();
        for m in messages {
            let mut r = BaseRecord::<[u8], [u8]>::to(topic).partition(partition);
            if let Some(key) = m.key() {
                r = r.key(key);
            }
            if let Some(payload) = m.payload() {
                r = r.payload(payload);
            }
            if let Some(h) = m.headers() {
                r = r.headers(h.clone());
            }
            p.send(r).map_err(|(e, _)| e).expect("send");
            p.poll(Duration::ZERO);
        }
        p.flush(Duration::from_secs(30)).expect("produce");
    }

    fn partitions(&self, consumer: &BaseConsumer, topic: &str) -> Vec<i32> {
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        md.topics()[0].partitions().iter().map(|p| p.id()).collect()
    }

    /// Reads every message of `topic` from the beginning until `want` have
    /// arrived (panics after `timeout`).
    pub fn read(&self, topic: &str, want: usize, timeout: Duration) -> Vec<OwnedMessage> {
        let got = self.read_until(topic, timeout, |m| m.len() >= want);
        assert!(
            got.len() >= want,
            "read {} of {want} from {topic}",
            got.len()
        );
        got
    }

    /// Reads `topic` from the beginning until `done(messages so far)` holds or
    /// `timeout` passes; returns what was read.
    pub fn read_until(
        &self,
        topic: &str,
        timeout: Duration,
        mut done: impl FnMut(&[OwnedMessage]) -> bool,
    ) -> Vec<OwnedMessage> {
        let (c, _) = self.reader(topic);
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        while !done(&got) && Instant::now() < deadline {
            if let Some(r) = c.poll(Duration::from_millis(100)) {
                got.push(r.expect("read").detach());
            }
        }
        got
    }

    /// A consumer assigned to every partition of `topic` from the beginning,
    /// and those partitions.
    fn reader(&self, topic: &str) -> (BaseConsumer, Vec<i32>) {
        let c: BaseConsumer = self
            .client()
            .set("group.id", "forewarn-test-reader")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let partitions = self.partitions(&c, topic);
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition_offset(topic, *p, Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).unwrap();
        (c, partitions)
    }

    /// Every message of `topic` written so far (when nothing writes to it any
    /// more). Tansu's watermark is the last batch's base offset + 1, so after
    /// reaching it the rest of that batch, already fetched, is drained too.
    pub fn read_all(&self, topic: &str, timeout: Duration) -> Vec<OwnedMessage> {
        let (c, partitions) = self.reader(topic);
        let at_least: i64 = partitions
            .into_iter()
            .map(|p| {
                let (low, high) = c
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .unwrap();
                high - low
            })
            .sum();
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        while Instant::now() < deadline {
            let wait = if got.len() as i64 >= at_least {
                500
            } else {
                100
            };
            match c.poll(Duration::from_millis(wait)) {
                Some(r) => got.push(r.expect("read").detach()),
                None if got.len() as i64 >= at_least => break,
                None => {}
            }
        }
        got
    }

    /// Committed offset of `group` and end (from the producer's delivery
    /// reports) for each partition of `topic`; -1 where nothing is committed.
    pub fn offsets(&self, group: &str, topic: &str) -> Vec<(i64, i64)> {
        let c: BaseConsumer = self.client().set("group.id", group).create().unwrap();
        let parts = self.partitions(&c, topic);
        let mut tpl = TopicPartitionList::new();
        for p in &parts {
            tpl.add_partition(topic, *p);
        }
        let committed = c
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed offsets");
        let ends = self.ends.lock().unwrap();
        parts
            .iter()
            .map(|p| {
                let at = match committed.find_partition(topic, *p).unwrap().offset() {
                    Offset::Offset(o) => o,
                    _ => -1,
                };
                let end = ends.get(&(topic.to_string(), *p)).copied().unwrap_or(-1);
                (at, end)
            })
            .collect()
    }

    /// Whether `group` has committed every message produced to `topic`.
    pub fn all_committed(&self, group: &str, topic: &str) -> bool {
        self.offsets(group, topic).iter().all(|(c, e)| c == e)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A header's value as text.
pub fn header(m: &OwnedMessage, name: &str) -> Option<String> {
    let h = m.headers()?;
    h.iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
}

/// A `forewarn run` child process with its stderr in a file.
pub struct Forewarn {
    child: Child,
    pub log: PathBuf,
}

impl Forewarn {
    pub fn start(config: &Path, dir: &Path, name: &str) -> Forewarn {
        Forewarn::start_with(config, dir, name, &[], &[])
    }

    /// With extra command-line arguments and environment variables.
    pub fn start_with(
        config: &Path,
        dir: &Path,
        name: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Forewarn {
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_forewarn"))
            .args(["run", "--config"])
            .arg(config)
            .args(["--commit-interval", "200ms"])
            .args(args)
            .envs(envs.iter().copied())
            .env("FOREWARN_LOG", "info,librdkafka=warn")
            // Tests run in parallel: every endpoint on a free port.
            .env("FOREWARN_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("start forewarn run");
        Forewarn { child, log }
    }

    pub fn stderr(&self) -> String {
        let mut s = String::new();
        File::open(&self.log)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        s
    }

    /// Whether its latest rebalance gave it at least one partition.
    pub fn assigned(&self) -> bool {
        self.partitions_held() > 0
    }

    /// How many partitions its latest rebalance gave it (0 after a revoke).
    pub fn partitions_held(&self) -> usize {
        let err = self.stderr();
        let last = err
            .lines()
            .rev()
            .find(|l| l.contains("partitions assigned") || l.contains("partitions revoked"));
        let Some(l) = last.filter(|l| l.contains("partitions assigned")) else {
            return 0;
        };
        let listed = match serde_json::from_str::<Value>(l) {
            Ok(v) => v["partitions"].as_str().map(str::to_string), // --log-format json
            Err(_) => l.split("partitions=").nth(1).map(str::to_string),
        };
        listed.map_or(0, |p| p.split(',').filter(|t| !t.trim().is_empty()).count())
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    /// SIGHUP: re-read the config.
    pub fn hangup(&self) {
        self.signal("-HUP");
    }

    /// SIGTERM, then waits for exit (panics after `timeout`); returns stderr.
    pub fn terminate(mut self, timeout: Duration) -> String {
        self.signal("-TERM");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let err = self.stderr();
                assert!(status.success(), "forewarn run exited with {status}: {err}");
                return err;
            }
            assert!(
                Instant::now() < deadline,
                "no exit {timeout:?} after SIGTERM: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory of the process, in KiB (Linux `/proc`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in {status}"))
    }

    /// SIGKILL: no chance to flush or commit.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Forewarn {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {} ---\n{}", self.log.display(), self.stderr());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The accounting line `forewarn run` prints on exit:
/// `[consumed, applied, dead_lettered, late, refused, alerts, dead_letters, dropped]`.
pub fn accounting(stderr: &str) -> [u64; 8] {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("run: consumed"))
        .unwrap_or_else(|| panic!("no accounting line in: {stderr}"));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    nums.try_into()
        .unwrap_or_else(|_| panic!("accounting line: {line}"))
}

/// The events a run consumed, once its accounting line shows each of them
/// applied, dead-lettered, late or refused.
pub fn consumed_and_accounted(stderr: &str) -> u64 {
    let [consumed, applied, dead, late, refused, ..] = accounting(stderr);
    assert_eq!(consumed, applied + dead + late + refused, "{stderr}");
    consumed
}

/// `base` (a config file's text) with idle advancement pushed out of the test's
/// way and a `[kafka]` section for this broker and topic names prefixed `tag`.
pub fn config(dir: &Path, base: &str, addr: &str, tag: &str, extra: &str) -> PathBuf {
    let text = format!(
        "{}\n[kafka]\nbrokers = \"{}\"\ngroup_id = \"{tag}-group\"\ntopics = [\"{tag}-events\"]\nalerts_topic = \"{tag}-alerts\"\ndead_letter_topic = \"{tag}-dead\"\n{extra}\n",
        base.replace("[time]\n", "[time]\nidle_timeout = \"1h\"\n"),
        addr
    );
    let path = dir.join(format!("{tag}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Lines of an NDJSON file as messages keyed by their `service`.
pub fn keyed_by_service(lines: &str) -> Vec<(Option<String>, Vec<u8>)> {
    lines
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let key = serde_json::from_str::<Value>(l)
                .ok()
                .and_then(|v| v["service"].as_str().map(str::to_string));
            (key, l.as_bytes().to_vec())
        })
        .collect()
}

pub fn json(m: &rdkafka::message::OwnedMessage) -> Value {
    serde_json::from_slice(m.payload().expect("payload")).expect("alert JSON")
}

/// A small estate config: error rate per service over 1m sliding by 10s.
pub const ESTATE: &str = r#"
[time]
allowed_lateness = "0s"

[[signals]]
name = "error_rate"
aggregate = "rate"
filter = { outcome = ["error", "timeout"] }
of = { kind = "request" }
window = "1m"
slide = "10s"

[[rules]]
name = "ErrorRateHigh"
kind = "threshold"
signal = "error_rate"
warning = { value = 0.05, clear = 0.03 }
critical = { value = 0.20, clear = 0.10 }
for = "30s"
min_events = 10
category = "system"
"#;

/// Start of the synthetic streams: two hours ago, on a minute boundary.
pub fn base_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now - 2 * 3600 * 1000) / 60_000 * 60_000
}

/// Requests from `services` for seconds `from..to` after `base`, 10 per second
/// each, in time order; a service in `failing` during `incident` (seconds) has
/// every second request fail.
pub fn requests(
    base: i64,
    services: &[&str],
    from: i64,
    to: i64,
    failing: &[&str],
    incident: (i64, i64),
) -> Vec<(Option<String>, Vec<u8>)> {
    let mut out = Vec::new();
    for s in from..to {
        for i in 0..10 {
            for svc in services {
                let bad =
                    failing.contains(svc) && (incident.0..incident.1).contains(&s) && i % 2 == 0;
                let line = format!(
                    r#"{{"ts":{},"service":"{svc}","kind":"request","outcome":"{}","latency_ms":{}}}"#,
                    base + s * 1000 + i * 100,
                    if bad { "error" } else { "ok" },
                    40 + i
                );
                out.push((Some(svc.to_string()), line.into_bytes()));
            }
        }
    }
    out
}

/// The firing and resolved alerts per service in `alerts` (pending and
/// cancelled transitions left out).
pub fn outcomes(alerts: &[rdkafka::message::OwnedMessage]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = alerts
        .iter()
        .map(json)
        .filter(|a| a["status"] == "firing" || a["status"] == "resolved")
        .map(|a| {
            (
                a["labels"]["service"].as_str().unwrap().to_string(),
                a["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

pub const FAST_REBALANCE: &str =
    "properties = { \"session.timeout.ms\" = 6000, \"heartbeat.interval.ms\" = 500 }";

/// A plain HTTP GET: (status code, body); panics if the server cannot be read.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    try_http_get(addr, path).unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"))
}

/// A plain HTTP POST without a body: (status code, body).
/// The sum of every sample on `addr`'s `/metrics` whose line starts with
/// `prefix` (a metric name with `{` and perhaps some labels).
pub fn metric_sum(addr: &str, prefix: &str) -> u64 {
    http_get(addr, "/metrics")
        .1
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

pub fn http_post(addr: &str, path: &str) -> (u16, String) {
    use std::io::Write;
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("POST {addr}{path}: {e}"));
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {resp}"));
    let body = resp.split_once("\r\n\r\n").map_or("", |b| b.1).to_string();
    (status, body)
}

/// A plain HTTP GET that reports I/O errors (a server still starting may
/// accept and then reset the connection), for readiness probes.
pub fn try_http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::Write;
    let mut s = TcpStream::connect(addr)?;
    // HTTP/1.0: the whole body, unchunked, then the connection closes.
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, resp.clone()))?;
    let body = resp.split_once("\r\n\r\n").map_or("", |b| b.1).to_string();
    Ok((status, body))
}

impl Forewarn {
    /// The HTTP endpoint's address, once logged.
    pub fn http_addr(&self) -> Option<String> {
        self.stderr()
            .lines()
            .find(|l| l.contains("http endpoint listening"))
            .and_then(|l| l.split("addr=").nth(1))
            .map(|a| a.split_whitespace().next().unwrap_or("").to_string())
    }
}

/// A webhook receiver: every POSTed JSON body, in arrival order.
pub struct Webhook {
    pub url: String,
    pub received: Arc<Mutex<Vec<Value>>>,
}

impl Webhook {
    pub fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let received: Arc<Mutex<Vec<Value>>> = Arc::default();
        let store = Arc::clone(&received);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                if let Some(body) = read_request_body(&mut conn) {
                    if let Ok(v) = serde_json::from_slice(&body) {
                        store.lock().unwrap().push(v);
                    }
                }
                use std::io::Write;
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Webhook { url, received }
    }

    pub fn all(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }
}

/// Reads one HTTP/1.1 request and returns its body (Content-Length framing).
fn read_request_body(conn: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = conn.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(buf[end + 4..end + 4 + len].to_vec());
        }
    }
}

/// A real Alertmanager (Debian's prometheus-alertmanager) on a free loopback
/// port, routing everything to `webhook` with no group wait; stopped on drop.
pub struct Alertmanager {
    child: Option<Child>,
    pub url: String,
    dir: TempDir,
    port: u16,
    /// Alertmanager's `--web.config.file` (TLS, basic auth), if any.
    web_config: Option<PathBuf>,
}

impl Alertmanager {
    pub fn start(webhook: &str) -> Alertmanager {
        Alertmanager::start_with_group_wait(webhook, "0s")
    }

    /// With the route's `group_wait` (Alertmanager's default is 30s).
    pub fn start_with_group_wait(webhook: &str, group_wait: &str) -> Alertmanager {
        let dir = TempDir::new("alertmanager");
        let config = format!(
            "route:\n  receiver: hook\n  group_by: ['alertname', 'service']\n  group_wait: {group_wait}\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: '{webhook}'\n        send_resolved: true\n"
        );
        std::fs::write(dir.0.join("alertmanager.yml"), config).unwrap();
        let port = free_port();
        let mut am = Alertmanager {
            child: None,
            url: format!("http://127.0.0.1:{port}"),
            dir,
            port,
            web_config: None,
        };
        am.restart();
        am
    }

    /// Serving HTTPS with `cert`/`key` (PEM files) and requiring basic auth
    /// `user` with the bcrypt `hash` of its password.
    pub fn start_secured(
        webhook: &str,
        cert: &Path,
        key: &Path,
        user: &str,
        hash: &str,
    ) -> Alertmanager {
        let mut am = Alertmanager::start_with_group_wait(webhook, "0s");
        am.stop();
        let web = am.dir.0.join("web.yml");
        std::fs::write(
            &web,
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  {user}: '{hash}'\n",
                cert.display(),
                key.display()
            ),
        )
        .unwrap();
        am.web_config = Some(web);
        am.url = format!("https://127.0.0.1:{}", am.port);
        am.restart();
        am
    }

    /// (Re)starts the process on the same port and storage.
    pub fn restart(&mut self) {
        let log = File::create(self.dir.0.join("alertmanager.log")).unwrap();
        let child = Command::new("prometheus-alertmanager")
            .arg(format!(
                "--config.file={}",
                self.dir.0.join("alertmanager.yml").display()
            ))
            .arg(format!(
                "--storage.path={}",
                self.dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg("--cluster.listen-address=")
            .args(
                self.web_config
                    .iter()
                    .map(|w| format!("--web.config.file={}", w.display())),
            )
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus-alertmanager (Debian package prometheus-alertmanager)");
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        if self.web_config.is_some() {
            // TLS and auth in front: listening is all this client can check.
            eventually(Duration::from_secs(30), "alertmanager listening", || {
                TcpStream::connect(&addr).is_ok()
            });
            return;
        }
        eventually(Duration::from_secs(30), "alertmanager ready", || {
            try_http_get(&addr, "/-/ready").is_ok_and(|r| r.0 == 200)
        });
    }

    /// SIGTERM (it saves its notification log) and waits for exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A real Prometheus (Debian's package) on a free loopback port with `config`
/// (YAML text); killed on drop.
pub struct Prometheus {
    child: Child,
    pub addr: String,
}

impl Prometheus {
    pub fn start(config: &str, dir: &Path) -> Prometheus {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let log = File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus (Debian package prometheus)");
        let p = Prometheus { child, addr };
        eventually(Duration::from_secs(60), "prometheus ready", || {
            try_http_get(&p.addr, "/-/ready").is_ok_and(|r| r.0 == 200)
        });
        p
    }

    /// An instant query's JSON answer.
    pub fn query(&self, expr: &str) -> Value {
        let (status, body) = http_get(
            &self.addr,
            &format!("/api/v1/query?query={}", percent_encode(expr)),
        );
        assert_eq!(status, 200, "{expr}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query parameter.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
