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

/// A running Tansu broker, killed on drop.
pub struct Broker {
    child: Child,
    pub addr: String,
    pub dir: TempDir,
    /// One past the highest offset produced, by (topic, partition), from the
    /// delivery reports: Tansu 0.6.0's ListOffsets answers with the base offset
    /// of the last batch + 1, so watermarks cannot tell where a partition ends.
    ends: Arc<Mutex<HashMap<(String, i32), i64>>>,
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
                        addr,
                        dir,
                        ends: Arc::default(),
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
        let c: BaseConsumer = self
            .client()
            .set("group.id", "forewarn-test-reader")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in self.partitions(&c, topic) {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).unwrap();
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        while !done(&got) && Instant::now() < deadline {
            if let Some(r) = c.poll(Duration::from_millis(100)) {
                got.push(r.expect("read").detach());
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
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_forewarn"))
            .args(["run", "--config"])
            .arg(config)
            .args(["--commit-interval", "200ms"])
            .env("FOREWARN_LOG", "info,librdkafka=warn")
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
        let err = self.stderr();
        let last = err
            .lines()
            .rev()
            .find(|l| l.contains("partitions assigned") || l.contains("partitions revoked"));
        last.is_some_and(|l| {
            l.contains("partitions assigned")
                && l.split("partitions=")
                    .nth(1)
                    .is_some_and(|p| !p.trim().is_empty())
        })
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
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

    /// SIGKILL: no chance to flush or commit.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Forewarn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The accounting line `forewarn run` prints on exit:
/// `[consumed, applied, dead_lettered, late, alerts, dead_letters, dropped]`.
pub fn accounting(stderr: &str) -> [u64; 7] {
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
