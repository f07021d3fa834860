//! Faults the real broker cannot easily be made to have, injected with
//! librdkafka's mock cluster (in this test process, on loopback) while real
//! `forewarn run` processes consume from it: a member killed without warning,
//! the broker down and back mid-stream, produce and commit requests failing, an
//! unwritable dead-letter or checkpoint topic. In every case nothing is lost or
//! unaccounted for.

mod support;

use std::time::Duration;

use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use support::{
    accounting, base_ms, config, eventually, outcomes, requests, Forewarn, Mock, TempDir, ESTATE,
    FAST_REBALANCE,
};

const WAIT: Duration = Duration::from_secs(60);

fn topics(mock: &Mock, tag: &str, partitions: i32) {
    mock.create_topic(&format!("{tag}-events"), partitions);
    mock.create_topic(&format!("{tag}-alerts"), 1);
    mock.create_topic(&format!("{tag}-dead"), 1);
}

/// Firing and resolved for each of `services`, sorted as [`outcomes`] returns them.
fn fired_and_resolved(services: &[&str]) -> Vec<(String, String)> {
    let mut w: Vec<(String, String)> = services
        .iter()
        .flat_map(|s| {
            [
                (s.to_string(), "firing".into()),
                (s.to_string(), "resolved".into()),
            ]
        })
        .collect();
    w.sort();
    w
}

/// SIGKILL one of two members (no flush, no commit, no LeaveGroup): once its
/// session expires the survivor gets its partitions, resumes from their last
/// commit, alerts on every service, and commits everything.
#[test]
fn killed_member_partitions_move_to_the_survivor() {
    let mock = Mock::start(1);
    let dir = TempDir::new("kill");
    let cfg = config(&dir.0, ESTATE, &mock.addr, "kill", FAST_REBALANCE);
    topics(&mock, "kill", 4);
    let base = base_ms();
    let services = ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"];
    let a = Forewarn::start(&cfg, &dir.0, "a");
    let b = Forewarn::start(&cfg, &dir.0, "b");
    eventually(WAIT, "both members have partitions", || {
        a.assigned() && b.assigned()
    });
    let phase1 = requests(base, &services, 0, 120, &[], (0, 0));
    mock.produce("kill-events", &phase1);
    eventually(WAIT, "phase 1 committed", || {
        mock.all_committed("kill-group", "kill-events")
    });
    b.kill();

    let phase2 = requests(base, &services, 120, 420, &services, (200, 300));
    mock.produce("kill-events", &phase2);
    let want = fired_and_resolved(&services);
    let alerts = mock.read_until("kill-alerts", WAIT, |m| outcomes(m) == want);
    assert_eq!(
        outcomes(&alerts),
        want,
        "the survivor alerts for every service"
    );
    eventually(WAIT, "phase 2 committed", || {
        mock.all_committed("kill-group", "kill-events")
    });
    let stderr = a.terminate(WAIT);
    let [consumed, applied, dead, late, refused, ..] = accounting(&stderr);
    assert_eq!(consumed, applied + dead + late + refused, "{stderr}");
    assert!(
        consumed >= phase2.len() as u64,
        "the survivor consumed all of phase 2"
    );
    assert!(
        consumed < (phase1.len() + phase2.len()) as u64,
        "a did not own every partition in phase 1"
    );
}

/// The only broker goes down while forewarn consumes and comes back: forewarn
/// reports the outage, reconnects, and consumes, alerts and commits as if
/// nothing happened — every message exactly once.
#[test]
fn broker_down_and_up_mid_stream_loses_nothing() {
    let mock = Mock::start(1);
    let dir = TempDir::new("outage");
    let cfg = config(&dir.0, ESTATE, &mock.addr, "outage", "");
    topics(&mock, "outage", 2);
    let base = base_ms();
    let services = ["pay", "cart", "search"];
    // JSON logs, and a secret from the environment that must never be logged.
    let run = Forewarn::start_with(
        &cfg,
        &dir.0,
        "run",
        &["--log-format", "json"],
        &[("FOREWARN_KAFKA_SASL_PASSWORD", "hunter2-secret")],
    );
    eventually(WAIT, "assigned", || run.assigned());
    let phase1 = requests(base, &services, 0, 150, &["pay"], (100, 200));
    mock.produce("outage-events", &phase1);
    eventually(WAIT, "phase 1 committed", || {
        mock.all_committed("outage-group", "outage-events")
    });

    mock.cluster.broker_down(1).unwrap();
    eventually(WAIT, "forewarn notices the outage", || {
        run.stderr().contains("kafka client error")
    });
    mock.cluster.broker_up(1).unwrap();

    let phase2 = requests(base, &services, 150, 400, &["pay"], (100, 200));
    mock.produce("outage-events", &phase2);
    eventually(WAIT, "phase 2 committed", || {
        mock.all_committed("outage-group", "outage-events")
    });
    let stderr = run.terminate(WAIT);
    assert!(
        !stderr.contains("hunter2-secret"),
        "a secret was logged: {stderr}"
    );
    assert!(
        stderr.contains("sasl.password") && stderr.contains("***"),
        "{stderr}"
    );
    for line in stderr.lines().filter(|l| !l.starts_with("run: ")) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
    let [consumed, applied, dead, late, refused, delivered, _, dropped] = accounting(&stderr);
    assert_eq!(consumed, (phase1.len() + phase2.len()) as u64, "{stderr}");
    assert_eq!(consumed, applied + dead + late + refused);
    assert_eq!(dropped, 0);
    let alerts = mock.read("outage-alerts", delivered as usize, WAIT);
    assert_eq!(outcomes(&alerts), fired_and_resolved(&["pay"]));
}

/// Started while the broker is down, forewarn is alive but not ready (so an
/// orchestrator keeps traffic and rollouts waiting), serves its metrics, and
/// becomes ready by itself once the broker is back.
#[test]
fn not_ready_until_the_broker_is_reachable() {
    let mock = Mock::start(1);
    let dir = TempDir::new("unready");
    let cfg = config(&dir.0, ESTATE, &mock.addr, "unready", "");
    topics(&mock, "unready", 2);
    mock.cluster.broker_down(1).unwrap();
    let run = Forewarn::start(&cfg, &dir.0, "run");
    eventually(WAIT, "the endpoint is up", || run.http_addr().is_some());
    let addr = run.http_addr().unwrap();
    assert_eq!(support::http_get(&addr, "/healthz").0, 200);
    let (status, text) = support::http_get(&addr, "/readyz");
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("no partitions assigned"), "{text}");
    let (status, metrics) = support::http_get(&addr, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("forewarn_assigned_partitions 0"),
        "{metrics}"
    );

    mock.cluster.broker_up(1).unwrap();
    eventually(WAIT, "ready once the broker is back", || {
        support::http_get(&addr, "/readyz").0 == 200
    });
    let events = requests(base_ms(), &["pay"], 0, 30, &[], (0, 0));
    mock.produce("unready-events", &events);
    eventually(WAIT, "consumed and committed", || {
        mock.all_committed("unready-group", "unready-events")
    });
    let stderr = run.terminate(WAIT);
    let [consumed, applied, ..] = accounting(&stderr);
    assert_eq!(
        (consumed, applied),
        (events.len() as u64, events.len() as u64)
    );
}

/// With the broker down, the errors keep coming (every reconnect), but the log
/// does not grow with them: each noisy site passes a burst per 10 s window and
/// then says how many lines it held back.
#[test]
fn logging_under_a_broker_outage_is_rate_limited() {
    let mock = Mock::start(1);
    let dir = TempDir::new("noisy");
    let cfg = config(&dir.0, ESTATE, &mock.addr, "noisy", "");
    topics(&mock, "noisy", 2);
    mock.cluster.broker_down(1).unwrap();
    let started = std::time::Instant::now();
    let run = Forewarn::start(&cfg, &dir.0, "run");
    eventually(WAIT, "the endpoint is up", || run.http_addr().is_some());
    let addr = run.http_addr().unwrap();
    let errors = || {
        let (_, text) = support::http_get(&addr, "/metrics");
        text.lines()
            .find(|l| l.starts_with("forewarn_consumer_errors_total "))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // A window later, the first line that passes says how many were held back.
    let held = |stderr: &str| {
        stderr.lines().any(|l| {
            l.split("held_back=")
                .nth(1)
                .is_some_and(|n| n.starts_with(|c: char| ('1'..='9').contains(&c)))
        })
    };
    eventually(WAIT, "a line reports lines held back", || {
        held(&run.stderr())
    });
    let noisy = |stderr: &str| {
        stderr
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains("ERROR"))
            .count()
    };
    let (lines, errors) = (noisy(&run.stderr()), errors());
    let windows = started.elapsed().as_secs() / 10 + 1;
    // Five throttled sites (librdkafka consumer and producer lines, both
    // clients' error callbacks, consume errors) at 5 lines per window, plus a
    // few one-off start-up lines; unthrottled, each error was a line or more.
    let bound = 5 * 5 * windows as usize + 10;
    assert!(
        errors > bound as f64,
        "the outage must out-talk the bound: {errors} errors"
    );
    assert!(
        lines <= bound,
        "{lines} warning lines for {errors} consumer errors in {:?} (bound {bound}):\n{}",
        started.elapsed(),
        run.stderr()
    );
    mock.cluster.broker_up(1).unwrap();
    let _ = run.terminate(WAIT);
}

/// Produce requests fail (retriable errors that librdkafka retries, then errors
/// it reports, which forewarn retries itself) and offset commits fail: every
/// alert and dead letter is still delivered, nothing is dropped, and the
/// offsets reach the end.
#[test]
fn produce_and_commit_errors_are_retried() {
    let mock = Mock::start(1);
    let dir = TempDir::new("errors");
    // One produce request in flight: the mock broker does not check idempotent
    // sequence gaps, so with several in flight a later batch's success makes
    // librdkafka count an earlier, failed one as persisted (librdkafka #2501)
    // and the topic ends up a message short. A real broker refuses the gap.
    let cfg = config(
        &dir.0,
        ESTATE,
        &mock.addr,
        "errors",
        "properties = { \"max.in.flight.requests.per.connection\" = 1 }",
    );
    topics(&mock, "errors", 1);
    let base = base_ms();
    let mut events = requests(base, &["pay"], 0, 300, &["pay"], (100, 200));
    events.insert(500, (Some("pay".into()), b"not json".to_vec()));
    use RDKafkaRespErr::*;
    mock.produce("errors-events", &events);
    // Errors for the next requests after this point: the test's own produce is done.
    mock.cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
            RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
        ],
    );
    mock.cluster.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[
            RD_KAFKA_RESP_ERR_UNKNOWN,
            RD_KAFKA_RESP_ERR_UNKNOWN,
            RD_KAFKA_RESP_ERR_UNKNOWN,
        ],
    );
    let run = Forewarn::start(&cfg, &dir.0, "run");
    eventually(WAIT, "all committed", || {
        mock.all_committed("errors-group", "errors-events")
    });
    let stderr = run.terminate(WAIT);
    assert!(
        stderr.contains("delivery failed; will retry"),
        "forewarn retried: {stderr}"
    );
    let [consumed, applied, dead, late, refused, delivered, dead_delivered, dropped] =
        accounting(&stderr);
    assert_eq!(consumed, events.len() as u64);
    assert_eq!(consumed, applied + dead + late + refused);
    assert_eq!((dead, dead_delivered, dropped), (1, 1, 0), "{stderr}");
    let alerts = mock.read("errors-alerts", delivered as usize, WAIT);
    assert_eq!(outcomes(&alerts), fired_and_resolved(&["pay"]));
    assert_eq!(mock.read("errors-dead", 1, WAIT).len(), 1);
}

/// A dead-letter topic that refuses every write: each dead letter is retried
/// `--max-attempts` times, then given up with an error and counted as dropped;
/// the partition does not stall (offsets reach the end) and alerts still flow.
#[test]
fn unwritable_dead_letter_topic_is_bounded_and_counted() {
    let mock = Mock::start(1);
    let dir = TempDir::new("refuse");
    let cfg = config(&dir.0, ESTATE, &mock.addr, "refuse", "");
    topics(&mock, "refuse", 1);
    mock.cluster
        .topic_error(
            "refuse-dead",
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        )
        .unwrap();
    let base = base_ms();
    let mut events = requests(base, &["pay"], 0, 300, &["pay"], (100, 200));
    events.insert(100, (Some("pay".into()), b"{".to_vec()));
    events.insert(2000, (Some("pay".into()), b"[]".to_vec()));
    mock.produce("refuse-events", &events);
    let run = Forewarn::start_with(&cfg, &dir.0, "run", &["--max-attempts", "2"], &[]);
    eventually(WAIT, "all committed", || {
        mock.all_committed("refuse-group", "refuse-events")
    });
    let stderr = run.terminate(WAIT);
    let [consumed, applied, dead, late, refused, delivered, dead_delivered, dropped] =
        accounting(&stderr);
    assert_eq!(consumed, applied + dead + late + refused);
    assert_eq!((dead, dead_delivered, dropped), (2, 0, 2), "{stderr}");
    assert!(stderr.contains("delivery failed on the last attempt; message dropped"));
    let alerts = mock.read("refuse-alerts", delivered as usize, WAIT);
    assert_eq!(outcomes(&alerts), fired_and_resolved(&["pay"]));
}

/// A live stream whose fetches stall (the broker answers 6 s late) for longer
/// than `idle_timeout` (2 s): the partition is not idle, only slow, so its
/// watermark must not follow the wall clock — the delayed events are applied,
/// none counted late.
#[test]
fn stalled_fetch_does_not_turn_the_backlog_late() {
    let mock = Mock::start(1);
    let dir = TempDir::new("stall");
    topics(&mock, "stall", 1);
    let cfg = dir.0.join("stall.toml");
    std::fs::write(
        &cfg,
        format!(
            "{}\n[kafka]\nbrokers = \"{}\"\ngroup_id = \"stall-group\"\ntopics = [\"stall-events\"]\nalerts_topic = \"stall-alerts\"\ndead_letter_topic = \"stall-dead\"\n",
            ESTATE.replace("[time]\n", "[time]\nidle_timeout = \"2s\"\n"),
            mock.addr
        ),
    )
    .unwrap();
    let run = Forewarn::start(&cfg, &dir.0, "run");
    eventually(WAIT, "assigned", || run.assigned());
    // 10 s of live traffic (event time = wall time), 100 events/s.
    let addr = mock.addr.clone();
    let producer = std::thread::spawn(move || {
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        let p: BaseProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &addr)
            .set("linger.ms", "5")
            .create()
            .unwrap();
        let start = std::time::Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < Duration::from_secs(10) {
            let ts = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis();
            let line = format!(r#"{{"ts":{ts},"service":"pay","kind":"request","outcome":"ok"}}"#);
            while p
                .send(
                    BaseRecord::<str, str>::to("stall-events")
                        .key("pay")
                        .payload(&line),
                )
                .is_err()
            {
                p.poll(Duration::from_millis(5));
            }
            sent += 1;
            p.poll(Duration::ZERO);
            std::thread::sleep(Duration::from_millis(10)); // pacing the live stream
        }
        p.flush(Duration::from_secs(60)).unwrap();
        sent
    });
    std::thread::sleep(Duration::from_secs(3)); // fault timing: stall mid-stream
    mock.cluster
        .broker_round_trip_time(1, Duration::from_secs(6))
        .unwrap();
    std::thread::sleep(Duration::from_secs(4)); // longer than idle_timeout
    mock.cluster
        .broker_round_trip_time(1, Duration::from_millis(0))
        .unwrap();
    let sent = producer.join().unwrap();
    let addr = run.http_addr().unwrap();
    eventually(WAIT, "everything consumed", || {
        support::http_get(&addr, "/metrics")
            .1
            .lines()
            .find(|l| l.starts_with("forewarn_events_consumed_total{"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            == Some(sent)
    });
    let stderr = run.terminate(WAIT);
    let [consumed, applied, dead, late, refused, ..] = accounting(&stderr);
    assert_eq!(consumed, sent, "{stderr}");
    assert_eq!(
        (applied, dead, late, refused),
        (sent, 0, 0, 0),
        "nothing late: {stderr}"
    );
}

/// A checkpoint topic that refuses every write, then heals: while it refuses,
/// events are still applied and alerts still flow, each failed checkpoint is
/// counted and given up after `--max-attempts` (no queue grows), and no offset
/// is committed past what a checkpoint covers; once writes succeed again the
/// next checkpoint lands and the offsets reach the end. Nothing is lost.
#[test]
fn unwritable_checkpoint_topic_holds_commits_and_recovers() {
    let tag = "ckfail";
    let mock = Mock::start(1);
    let dir = TempDir::new(tag);
    let checkpoints = format!("{tag}-checkpoints");
    // Attempts bounded at 3 s, so a refused write is given up within the test.
    let extra = format!(
        "checkpoint_topic = \"{checkpoints}\"\ncheckpoint_interval = \"500ms\"\nproperties = {{ \"message.timeout.ms\" = \"3000\" }}\n"
    );
    let cfg = config(&dir.0, ESTATE, &mock.addr, tag, &extra);
    topics(&mock, tag, 1);
    mock.create_topic(&checkpoints, 1);
    let (events_topic, group) = (format!("{tag}-events"), format!("{tag}-group"));
    let base = base_ms();
    let events = requests(base, &["pay"], 0, 300, &["pay"], (100, 200));
    // The mock applies a topic error to metadata requests: the producer never
    // learns where to write the checkpoints.
    mock.cluster
        .topic_error(
            &checkpoints,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        )
        .unwrap();
    let run = Forewarn::start_with(&cfg, &dir.0, "run", &["--max-attempts", "2"], &[]);
    mock.produce(&events_topic, &events);
    let addr = run.http_addr().expect("the endpoint's address is logged");
    let metric = |prefix: &str| support::metric_sum(&addr, prefix);
    eventually(WAIT, "every event consumed", || {
        metric("forewarn_worker_messages_total{") == events.len() as u64
    });
    let written = metric("forewarn_checkpoints_total{result=\"written\"}");
    eventually(WAIT, "two checkpoints failed after the last event", || {
        metric("forewarn_checkpoints_total{result=\"failed\"}") >= 2
    });
    assert_eq!(
        metric("forewarn_checkpoints_total{result=\"written\"}"),
        written,
        "no checkpoint lands while the topic refuses writes"
    );
    assert!(
        !mock.all_committed(&group, &events_topic),
        "offsets wait for a checkpoint that covers them: {:?}",
        mock.offsets(&group, &events_topic)
    );

    mock.cluster
        .topic_error(&checkpoints, RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR)
        .unwrap();
    eventually(WAIT, "committed to the end once checkpoints land", || {
        mock.all_committed(&group, &events_topic)
    });
    assert!(metric("forewarn_checkpoints_total{result=\"written\"}") > written);
    let stderr = run.terminate(WAIT);
    assert!(
        stderr.contains("checkpoint not written; offsets stay at the previous one"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("message dropped"),
        "a checkpoint given up is not a dropped output: {stderr}"
    );
    let [consumed, applied, dead, late, refused, delivered, _, dropped] = accounting(&stderr);
    assert_eq!(consumed, events.len() as u64);
    assert_eq!(consumed, applied + dead + late + refused);
    assert_eq!(dropped, 0, "{stderr}");
    let alerts = mock.read(&format!("{tag}-alerts"), delivered as usize, WAIT);
    assert_eq!(outcomes(&alerts), fired_and_resolved(&["pay"]));
}
