//! `forewarn run` against a real Kafka-compatible broker (Tansu 0.6.0 on
//! loopback, started per test by `support::Broker`).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rdkafka::message::Message;
use serde_json::Value;
use support::{
    accounting, base_ms, config, consumed_and_accounted, eventually, header, json,
    keyed_by_service, outcomes, requests, Broker, Forewarn, TempDir, ESTATE, FAST_REBALANCE,
};

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios");
const WAIT: Duration = Duration::from_secs(60);

fn topics(broker: &Broker, tag: &str, partitions: u32) {
    broker.create_topic(&format!("{tag}-events"), partitions);
    broker.create_topic(&format!("{tag}-alerts"), 1);
    broker.create_topic(&format!("{tag}-dead"), 1);
}

/// The checkout incident through the broker (one partition, so the engine sees
/// the file's order): the alerts topic carries exactly what `forewarn replay`
/// prints for the same events, keyed by fingerprint, and the golden transitions
/// (firing critical, then resolved, with their values) are among them.
#[test]
fn incident_alerts_reach_the_alerts_topic() {
    let broker = Broker::start();
    let dir = TempDir::new("incident");
    let base =
        std::fs::read_to_string(Path::new(SCENARIOS).join("checkout_incident.toml")).unwrap();
    let cfg = config(&dir.0, &base, &broker.addr, "incident", "");
    topics(&broker, "incident", 1);
    let events =
        std::fs::read_to_string(Path::new(SCENARIOS).join("checkout_incident.ndjson")).unwrap();
    broker.produce("incident-events", &keyed_by_service(&events));

    // What replay prints for the same events and config (no end-of-input flush:
    // a live stream has no end).
    let replay = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args(["replay", "--no-flush", "--config"])
        .arg(&cfg)
        .arg(Path::new(SCENARIOS).join("checkout_incident.ndjson"))
        .output()
        .unwrap();
    assert!(replay.status.success());
    let expected: Vec<Value> = String::from_utf8(replay.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        expected.len() >= 4,
        "the incident fires and resolves: {expected:?}"
    );

    let run = Forewarn::start(&cfg, &dir.0, "run");
    let got = broker.read("incident-alerts", expected.len(), WAIT);
    eventually(WAIT, "offsets committed", || {
        broker.all_committed("incident-group", "incident-events")
    });
    let stderr = run.terminate(WAIT);

    let alerts: Vec<Value> = got.iter().map(json).collect();
    assert_eq!(alerts, expected);
    for (m, a) in got.iter().zip(&alerts) {
        assert_eq!(m.key(), Some(a["fingerprint"].as_str().unwrap().as_bytes()));
    }
    let firing = alerts
        .iter()
        .find(|a| a["status"] == "firing" && a["labels"]["severity"] == "critical")
        .expect("a critical firing alert");
    assert_eq!(firing["labels"]["alertname"], "ErrorRateHigh");
    assert_eq!(firing["labels"]["service"], "checkout");
    assert_eq!(firing["labels"]["category"], "system");
    let resolved = alerts
        .iter()
        .find(|a| a["status"] == "resolved" && a["fingerprint"] == firing["fingerprint"])
        .expect("the critical alert resolves");
    assert!(resolved["endsAt"].is_string());

    let [consumed, applied, dead, late, refused, delivered, _, dropped] = accounting(&stderr);
    assert_eq!(consumed, 2104);
    assert_eq!(consumed, applied + dead + late + refused, "{stderr}");
    assert_eq!(
        (dead, late),
        (3, 1),
        "the scenario's 3 bad lines and 1 late event"
    );
    assert_eq!(delivered, expected.len() as u64);
    assert_eq!(dropped, 0);
    let dead_letters = broker.read("incident-dead", 3, WAIT);
    assert_eq!(dead_letters.len(), 3);
}

/// One partition shared by `checkout`, failing from 60 s to 180 s, and `cart`,
/// one event of which carries a clock 4 minutes ahead (issue 14 §3): `run` on a
/// real broker counts none of checkout's events late and publishes what
/// `replay` prints for checkout's events alone; `replay` of the shared stream
/// prints the same. Before per-service event time (44b84f4), 2,200 of checkout's 2,400
/// events were late and it never paged.
#[test]
fn a_producer_clock_running_ahead_hurts_no_neighbour_in_its_partition() {
    let broker = Broker::start();
    let dir = TempDir::new("skew");
    let cfg = config(&dir.0, ESTATE, &broker.addr, "skew", "");
    // Idle advancement as shipped (30 s), not the hour the other tests use.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("idle_timeout = \"1h\"", "idle_timeout = \"30s\""),
    )
    .unwrap();
    topics(&broker, "skew", 1);
    let t0 = base_ms();
    let alone = requests(t0, &["checkout"], 0, 240, &["checkout"], (60, 180));
    let mut shared = alone.clone();
    let ahead = format!(
        r#"{{"ts":{},"service":"cart","kind":"request","outcome":"ok"}}"#,
        t0 + 20_000 + 240_000
    );
    shared.insert(200, (Some("cart".into()), ahead.into_bytes()));
    let replay = |name: &str, messages: &[(Option<String>, Vec<u8>)]| -> Vec<Value> {
        let path = dir.0.join(name);
        let lines: Vec<&[u8]> = messages.iter().map(|(_, v)| v.as_slice()).collect();
        std::fs::write(&path, lines.join(&b"\n"[..])).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_forewarn"))
            .args(["replay", "--no-flush", "--config"])
            .arg(&cfg)
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let expected = replay("alone.ndjson", &alone);
    assert!(
        expected.iter().any(|a| a["status"] == "firing"),
        "checkout pages: {expected:?}"
    );
    assert_eq!(replay("shared.ndjson", &shared), expected);

    broker.produce("skew-events", &shared);
    let run = Forewarn::start(&cfg, &dir.0, "run");
    let got = broker.read("skew-alerts", expected.len(), WAIT);
    eventually(WAIT, "offsets committed", || {
        broker.all_committed("skew-group", "skew-events")
    });
    let stderr = run.terminate(WAIT);
    let alerts: Vec<Value> = got.iter().map(json).collect();
    assert_eq!(alerts, expected);
    let [consumed, applied, _, late, ..] = accounting(&stderr);
    assert_eq!((consumed, applied, late), (2401, 2401, 0), "{stderr}");
}

/// Offline results match production on several partitions: `forewarn replay
/// --partitions 4` (each service placed by the key hash a librdkafka producer
/// uses, one engine per partition) prints the same transitions that `run`
/// publishes from a four-partition topic, as a multiset (partitions interleave
/// differently), even where one engine for all would not; and `backtest
/// --partitions 4` over the events gives the figures `backtest --recorded`
/// gives over what `run` published.
#[test]
fn offline_runs_split_into_partitions_match_run_on_four_partitions() {
    let tag = "split";
    let broker = Broker::start();
    let dir = TempDir::new(tag);
    let cfg = config(&dir.0, ESTATE, &broker.addr, tag, "");
    topics(&broker, tag, 4);
    let base = base_ms();
    let failing = ["s1", "s2", "s5", "s6"];
    // s5 and s7 (partition 1 of 4 by CRC-32) come from a producer running a
    // minute behind: on time in their own partition, all late in an engine
    // shared with the others (so `--partitions 1` would differ from `run`).
    let on_time = requests(
        base,
        &["s0", "s1", "s2", "s3", "s4", "s6"],
        0,
        400,
        &failing,
        (100, 250),
    );
    let behind = requests(base - 60_000, &["s5", "s7"], 0, 400, &failing, (100, 250));
    let events: Vec<_> = on_time
        .chunks(3)
        .zip(behind.chunks(1))
        .flat_map(|(a, b)| a.iter().chain(b).cloned())
        .collect();
    assert_eq!(events.len(), on_time.len() + behind.len());
    let file = dir.0.join("events.ndjson");
    let mut text = String::new();
    for (_, line) in &events {
        text.push_str(std::str::from_utf8(line).unwrap());
        text.push('\n');
    }
    std::fs::write(&file, text).unwrap();
    broker.produce(&format!("{tag}-events"), &events);

    let replay = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args(["replay", "--no-flush", "--partitions", "4", "--config"])
        .arg(&cfg)
        .arg(&file)
        .output()
        .unwrap();
    assert!(replay.status.success());
    let mut expected: Vec<String> = String::from_utf8(replay.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let paged: std::collections::BTreeSet<&str> = expected
        .iter()
        .filter_map(|l| {
            failing
                .iter()
                .copied()
                .find(|s| l.contains(&format!("\"service\":\"{s}\"")))
        })
        .collect();
    assert_eq!(
        paged.len(),
        failing.len(),
        "every failing service alerts offline"
    );

    let run = Forewarn::start(&cfg, &dir.0, "run");
    let got = broker.read(&format!("{tag}-alerts"), expected.len(), WAIT);
    eventually(WAIT, "offsets committed", || {
        broker.all_committed(&format!("{tag}-group"), &format!("{tag}-events"))
    });
    run.terminate(WAIT);
    let mut published: Vec<String> = got.iter().map(|m| json(m).to_string()).collect();
    let normalise = |v: &mut Vec<String>| {
        for l in v.iter_mut() {
            *l = serde_json::from_str::<Value>(l).unwrap().to_string();
        }
        v.sort();
    };
    let recorded = dir.0.join("alerts.ndjson");
    std::fs::write(&recorded, published.join("\n")).unwrap();
    normalise(&mut expected);
    normalise(&mut published);
    assert_eq!(published, expected);

    // The same figures from `backtest` over the events (split as the topic
    // is) and from scoring what `run` published (`backtest --recorded`).
    let incidents = dir.0.join("incidents.json");
    let lag = |s: &str| if ["s5", "s7"].contains(&s) { 60_000 } else { 0 };
    let list: Vec<Value> = failing
        .iter()
        .map(|s| {
            let at = |secs: i64| base - lag(s) + secs * 1000;
            serde_json::json!({"id": s, "service": s, "start": at(100), "end": at(250), "breach": at(200)})
        })
        .collect();
    std::fs::write(&incidents, Value::Array(list).to_string()).unwrap();
    let backtest = |extra: &[&str], input: &Path| -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_forewarn"))
            .args(["backtest", "--format", "json", "--config"])
            .arg(&cfg)
            .arg("--incidents")
            .arg(&incidents)
            .args(extra)
            .arg(input)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
    };
    let offline = backtest(&["--partitions", "4"], &file);
    let online = backtest(&["--recorded"], &recorded);
    assert_eq!(online["incidents"], offline["incidents"]);
    assert_eq!(offline["overall"]["caught"], failing.len());
    for figure in [
        "caught",
        "missed",
        "episodes",
        "false_pages",
        "flaps",
        "lead_seconds",
        "firing_hours",
    ] {
        assert_eq!(
            online["overall"][figure], offline["overall"][figure],
            "{figure}"
        );
    }
}

/// Malformed, wrongly-typed, oversized, far-future and incomplete events land on
/// the dead-letter topic unchanged, with the reason and their source in headers,
/// while the valid events around them (same partition) are scored normally.
#[test]
fn bad_events_are_dead_lettered_with_reasons() {
    let broker = Broker::start();
    let dir = TempDir::new("dead");
    let cfg = config(&dir.0, ESTATE, &broker.addr, "dead", "");
    topics(&broker, "dead", 3);
    let base = base_ms();
    let services = ["pay", "cart", "search"];
    let mut events = requests(base, &services, 0, 300, &["pay"], (100, 200));
    let future = base + 2 * 86_400_000;
    let bad: Vec<(&str, String)> = vec![
        ("invalid_json", r#"{"ts":17,"service":"pay""#.to_string()),
        (
            "wrong_type",
            format!(r#"{{"ts":{base},"service":"pay","kind":"request","latency_ms":"fast"}}"#),
        ),
        (
            "too_large",
            format!(
                r#"{{"ts":{base},"service":"pay","kind":"request","note":"{}"}}"#,
                "x".repeat(70_000)
            ),
        ),
        (
            "too_far_in_future",
            format!(r#"{{"ts":{future},"service":"pay","kind":"request","outcome":"ok"}}"#),
        ),
        (
            "missing_field",
            format!(r#"{{"ts":{base},"kind":"request"}}"#),
        ),
    ];
    // Spread the bad ones through the stream, on pay's partition.
    for (i, (_, line)) in bad.iter().enumerate() {
        events.insert(
            1000 + i * 1500,
            (Some("pay".into()), line.clone().into_bytes()),
        );
    }
    let total = events.len() as u64;
    broker.produce("dead-events", &events);

    let run = Forewarn::start(&cfg, &dir.0, "run");
    let dead = broker.read("dead-dead", bad.len(), WAIT);
    eventually(WAIT, "offsets committed", || {
        broker.all_committed("dead-group", "dead-events")
    });
    let stderr = run.terminate(WAIT);
    let [consumed, applied, dead_lettered, late, refused, delivered, ..] = accounting(&stderr);
    let alerts = broker.read("dead-alerts", delivered as usize, WAIT);

    assert_eq!(
        dead.len(),
        bad.len(),
        "exactly the bad events are dead-lettered"
    );
    let source = broker.read("dead-events", events.len(), WAIT);
    for (reason, line) in &bad {
        let m = dead
            .iter()
            .find(|m| m.payload() == Some(line.as_bytes()))
            .unwrap_or_else(|| panic!("{reason} event not dead-lettered unchanged"));
        assert_eq!(header(m, "forewarn-reason").as_deref(), Some(*reason));
        assert!(!header(m, "forewarn-error").unwrap().is_empty());
        assert_eq!(
            header(m, "forewarn-source-topic").as_deref(),
            Some("dead-events")
        );
        let original = source
            .iter()
            .find(|s| s.payload() == Some(line.as_bytes()))
            .unwrap();
        assert_eq!(
            header(m, "forewarn-source-partition"),
            Some(original.partition().to_string())
        );
        assert_eq!(
            header(m, "forewarn-source-offset"),
            Some(original.offset().to_string())
        );
        assert_eq!(m.key(), Some(b"pay".as_slice()), "the original key is kept");
    }

    // pay's incident fires and resolves; the healthy services never alert.
    let alerts: Vec<Value> = alerts.iter().map(json).collect();
    let pay: Vec<(String, String)> = alerts
        .iter()
        .filter(|a| a["status"] != "pending" && a["status"] != "inactive")
        .map(|a| {
            assert_eq!(a["labels"]["service"], "pay", "only pay alerts: {a}");
            (
                a["status"].as_str().unwrap().into(),
                a["labels"]["severity"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        pay.contains(&("firing".into(), "critical".into())),
        "{pay:?}"
    );
    assert!(
        pay.contains(&("resolved".into(), "critical".into())),
        "{pay:?}"
    );

    assert_eq!(alerts.len() as u64, delivered);
    assert_eq!(consumed, total);
    assert_eq!(dead_lettered, bad.len() as u64);
    assert_eq!(consumed, applied + dead_lettered + late + refused);
}

/// Two `forewarn run` processes in one group split the partitions; when one
/// stops (SIGTERM: it finishes its deliveries, commits and leaves the group) the
/// other takes its partitions over from the committed offsets, detects the
/// incident on services it did not own before, and between them every message
/// is consumed exactly once. (A member killed with SIGKILL is the mock-cluster
/// test `killed_member_partitions_move_to_the_survivor`: Tansu 0.6.0 never
/// reassigns the partitions of a member whose session expires.)
#[test]
fn group_members_split_partitions_and_a_survivor_takes_over() {
    let broker = Broker::start();
    let dir = TempDir::new("group");
    let cfg = config(&dir.0, ESTATE, &broker.addr, "group", FAST_REBALANCE);
    topics(&broker, "group", 4);
    let base = base_ms();
    let services = ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"];

    let a = Forewarn::start(&cfg, &dir.0, "a");
    let b = Forewarn::start(&cfg, &dir.0, "b");
    eventually(WAIT, "both members have partitions", || {
        a.assigned() && b.assigned()
    });
    let phase1 = requests(base, &services, 0, 120, &[], (0, 0));
    broker.produce("group-events", &phase1);
    eventually(WAIT, "phase 1 committed", || {
        broker.all_committed("group-group", "group-events")
    });
    let b_stderr = b.terminate(WAIT);
    let [b_consumed, ..] = accounting(&b_stderr);
    assert!(b_consumed > 0, "b owned partitions in phase 1");

    // Every service fails from 200 s to 300 s: only a member owning all four
    // partitions can alert on all eight.
    let phase2 = requests(base, &services, 120, 420, &services, (200, 300));
    broker.produce("group-events", &phase2);
    let want: Vec<(String, String)> = {
        let mut w: Vec<(String, String)> = services
            .iter()
            .flat_map(|s| {
                [
                    (s.to_string(), "firing".to_string()),
                    (s.to_string(), "resolved".to_string()),
                ]
            })
            .collect();
        w.sort();
        w
    };
    let alerts = broker.read_until("group-alerts", WAIT, |m| outcomes(m) == want);
    assert_eq!(
        outcomes(&alerts),
        want,
        "the survivor alerts for every service"
    );
    eventually(WAIT, "phase 2 committed", || {
        broker.all_committed("group-group", "group-events")
    });
    let stderr = a.terminate(WAIT);
    let [consumed, applied, dead, late, refused, ..] = accounting(&stderr);
    assert_eq!(consumed, applied + dead + late + refused, "{stderr}");
    assert_eq!(dead, 0);
    assert_eq!(
        consumed + b_consumed,
        (phase1.len() + phase2.len()) as u64,
        "every message consumed exactly once between the two members"
    );
}

/// One member with three workers and four partitions: partitions 0 and 3 go
/// to worker 0, 1 to worker 1, 2 to worker 2. Every worker consumes, every
/// service's incident fires and resolves whichever worker owns it, and every
/// message is accounted for once.
#[test]
fn partitions_spread_over_worker_threads() {
    let broker = Broker::start();
    let dir = TempDir::new("workers");
    let cfg = config(&dir.0, ESTATE, &broker.addr, "workers", "");
    topics(&broker, "workers", 4);
    let services = ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"];
    let events = requests(base_ms(), &services, 0, 420, &services, (200, 300));
    broker.produce("workers-events", &events);
    let run = Forewarn::start_with(&cfg, &dir.0, "run", &["--workers", "3"], &[]);
    let mut want: Vec<(String, String)> = services
        .iter()
        .flat_map(|s| {
            [
                (s.to_string(), "firing".into()),
                (s.to_string(), "resolved".into()),
            ]
        })
        .collect();
    want.sort();
    let alerts = broker.read_until("workers-alerts", WAIT, |m| outcomes(m) == want);
    assert_eq!(
        outcomes(&alerts),
        want,
        "every service, whichever worker owns it"
    );
    eventually(WAIT, "offsets committed", || {
        broker.all_committed("workers-group", "workers-events")
    });
    let addr = run.http_addr().expect("the endpoint's address is logged");
    let metrics = support::http_get(&addr, "/metrics").1;
    let per_worker = |name: &str, w: u32| -> u64 {
        let prefix = format!("{name}{{worker=\"{w}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{prefix} in {metrics}"))
    };
    let taken: Vec<u64> = (0..3)
        .map(|w| per_worker("forewarn_worker_messages_total", w))
        .collect();
    assert!(
        taken.iter().all(|&n| n > 0),
        "every worker consumed: {taken:?}"
    );
    assert_eq!(taken.iter().sum::<u64>(), events.len() as u64);
    let owned: Vec<u64> = (0..3)
        .map(|w| per_worker("forewarn_worker_partitions", w))
        .collect();
    assert_eq!(owned, [2, 1, 1], "partition p goes to worker p % 3");
    let stderr = run.terminate(WAIT);
    let [consumed, applied, dead, late, refused, ..] = accounting(&stderr);
    assert_eq!(consumed, events.len() as u64, "{stderr}");
    assert_eq!(consumed, applied + dead + late + refused);
}

/// Firing transitions for `service` on the alerts topic, by severity.
fn firings(alerts: &[rdkafka::message::OwnedMessage], service: &str) -> Vec<String> {
    let mut v: Vec<String> = alerts
        .iter()
        .map(json)
        .filter(|a| a["status"] == "firing" && a["labels"]["service"] == service)
        .map(|a| a["labels"]["severity"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// Starts a replacement member and waits until it has restored `partitions`
/// partitions from their checkpoints; prints how long that took (measured, not
/// asserted: BENCHMARKS.md, the blind time of a restart).
fn restart_timed(tag: &str, partitions: usize, start: impl FnOnce() -> Forewarn) -> Forewarn {
    let restarted = std::time::Instant::now();
    let run = start();
    eventually(WAIT, "the restarted member restored its partitions", || {
        run.stderr()
            .matches("partition restored from its checkpoint")
            .count()
            == partitions
    });
    eprintln!(
        "{tag}: partitions restored {:?} after the restart",
        restarted.elapsed()
    );
    run
}

/// With checkpoints and static membership (`group.instance.id`, as the
/// Kubernetes manifest sets it), an incident in progress survives the end of a
/// run (by `stop`): the next run restores the partition's state, so the firing alert
/// stays firing in the same episode: no second page, no resolve, and the next
/// run consumes only what came after the checkpoint.
fn alerts_continue_across(tag: &str, stop: fn(Forewarn)) {
    let broker = Broker::start();
    let dir = TempDir::new(tag);
    let extra =
        format!("checkpoint_topic = \"{tag}-checkpoints\"\ncheckpoint_interval = \"500ms\"\nproperties = {{ \"group.instance.id\" = \"{tag}-member\" }}");
    let cfg = config(&dir.0, ESTATE, &broker.addr, tag, &extra);
    topics(&broker, tag, 2);
    broker.create_topic(&format!("{tag}-checkpoints"), 1);
    let (events, alerts_topic) = (format!("{tag}-events"), format!("{tag}-alerts"));
    let group = format!("{tag}-group");
    let base = base_ms();
    let services = ["pay", "cart"];
    // pay fails from 100 s on, through both runs.
    let first = requests(base, &services, 0, 200, &["pay"], (100, 400));
    broker.produce(&events, &first);
    let run = Forewarn::start(&cfg, &dir.0, "first");
    let before = broker.read_until(&alerts_topic, WAIT, |m| {
        firings(m, "pay") == ["critical", "warning"]
    });
    assert_eq!(firings(&before, "pay"), ["critical", "warning"]);
    eventually(WAIT, "first run committed (so checkpointed)", || {
        broker.all_committed(&group, &events)
    });
    stop(run);

    let second = requests(base, &services, 200, 300, &["pay"], (100, 400));
    broker.produce(&events, &second);
    // With static membership the restarted member gets its partitions back
    // without waiting for the session timeout.
    let run = restart_timed(tag, 2, || Forewarn::start(&cfg, &dir.0, "second"));
    eventually(WAIT, "second run committed", || {
        broker.all_committed(&group, &events)
    });
    let stderr = run.terminate(WAIT);
    assert!(
        stderr.contains("partition restored from its checkpoint"),
        "{stderr}"
    );
    let after = broker.read_all(&alerts_topic, WAIT);
    assert_eq!(
        firings(&after, "pay"),
        ["critical", "warning"],
        "still the first run's pages: the restored alerts kept firing"
    );
    let resolved = after
        .iter()
        .map(json)
        .filter(|a| a["status"] == "resolved" && a["labels"]["service"] == "pay")
        .count();
    assert_eq!(resolved, 0, "no resolve while pay still fails");
    let [consumed, applied, dead, late, refused, ..] = accounting(&stderr);
    assert_eq!(consumed, applied + dead + late + refused);
    assert!(
        consumed <= second.len() as u64 + first.len() as u64 / 10,
        "the second run resumed near the checkpoint: consumed {consumed}, new {}",
        second.len()
    );
}

#[test]
fn alerts_stay_firing_across_a_graceful_restart() {
    alerts_continue_across("ckterm", |run| {
        run.terminate(WAIT);
    });
}

#[test]
fn alerts_stay_firing_across_a_crash() {
    alerts_continue_across("ckkill", Forewarn::kill);
}

/// Every service was paged once (critical and warning) and never resolved:
/// its incident outlived whatever stopped or moved in between.
fn assert_paged_once_never_resolved(alerts: &[rdkafka::message::OwnedMessage], services: &[&str]) {
    for s in services {
        assert_eq!(
            firings(alerts, s),
            ["critical", "warning"],
            "{s}: paged once"
        );
        let resolved = alerts
            .iter()
            .map(json)
            .filter(|a| a["status"] == "resolved" && a["labels"]["service"] == *s)
            .count();
        assert_eq!(resolved, 0, "{s}: no resolve while it still fails");
    }
}

/// Produces the first 200 s of an incident on every service (each fails from
/// 100 s on, through whatever phase comes next) and waits until each is paged
/// and every event is committed, so checkpointed. Returns the base time.
fn page_everyone_and_checkpoint(broker: &Broker, tag: &str, services: &[&str]) -> i64 {
    let base = base_ms();
    let first = requests(base, services, 0, 200, services, (100, 400));
    broker.produce(&format!("{tag}-events"), &first);
    broker.read_until(&format!("{tag}-alerts"), WAIT, |m| {
        services
            .iter()
            .all(|s| firings(m, s) == ["critical", "warning"])
    });
    eventually(WAIT, "phase 1 committed (so checkpointed)", || {
        broker.all_committed(&format!("{tag}-group"), &format!("{tag}-events"))
    });
    base
}

/// Scale-in of a three-member group mid-incident: two members stop; the
/// survivor takes over their partitions with their checkpoints, so every
/// service's firing alerts stay firing in their episodes: no second page, no
/// resolve, whichever member first raised them.
#[test]
fn three_members_lose_two_and_the_survivor_keeps_every_alert_firing() {
    let tag = "trio";
    let broker = Broker::start();
    let dir = TempDir::new(tag);
    let extra = format!(
        "checkpoint_topic = \"{tag}-checkpoints\"\ncheckpoint_interval = \"500ms\"\n{FAST_REBALANCE}"
    );
    let cfg = config(&dir.0, ESTATE, &broker.addr, tag, &extra);
    topics(&broker, tag, 6);
    broker.create_topic(&format!("{tag}-checkpoints"), 1);
    let (events, alerts_topic, group) = (
        format!("{tag}-events"),
        format!("{tag}-alerts"),
        format!("{tag}-group"),
    );
    let services = ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"];
    let members: Vec<Forewarn> = ["a", "b", "c"]
        .iter()
        .map(|m| Forewarn::start(&cfg, &dir.0, m))
        .collect();
    eventually(WAIT, "all three members have partitions", || {
        members.iter().all(Forewarn::assigned)
    });
    let base = page_everyone_and_checkpoint(&broker, tag, &services);
    let [a, b, c]: [Forewarn; 3] = members.try_into().ok().unwrap();
    // Both leave gracefully, one rebalance after the other: Tansu 0.6 never
    // reassigns the partitions of a member whose session expires (the
    // killed-member hand-over is the mock-cluster test
    // `killed_member_partitions_move_to_the_survivor`), and a member that
    // leaves while a rebalance is still gathering joins leaves that round
    // waiting for it until the rebalance timeout (CI saw > 60 s).
    let a_stderr = a.terminate(WAIT);
    eventually(WAIT, "the two left hold all six partitions", || {
        b.partitions_held() + c.partitions_held() == 6
    });
    let b_stderr = b.terminate(WAIT);
    eventually(WAIT, "the survivor holds all six partitions", || {
        c.partitions_held() == 6
    });

    let second = requests(base, &services, 200, 300, &services, (100, 400));
    broker.produce(&events, &second);
    eventually(WAIT, "the survivor committed everything", || {
        broker.all_committed(&group, &events)
    });
    let c_stderr = c.terminate(WAIT);
    assert!(
        c_stderr.contains("partition restored from its checkpoint"),
        "{c_stderr}"
    );
    let alerts = broker.read_all(&alerts_topic, WAIT);
    assert_paged_once_never_resolved(&alerts, &services);
    for stderr in [&a_stderr, &b_stderr, &c_stderr] {
        let [consumed, applied, dead, late, refused, ..] = accounting(stderr);
        assert_eq!(consumed, applied + dead + late + refused, "{stderr}");
    }
}

/// Scale-out mid-incident: a second member joins the group; the partitions it
/// is given arrive with their state (drained and checkpointed by the first
/// member, restored by the second before any message), so every service's
/// alerts stay firing in their episodes whichever member now owns it.
#[test]
fn a_joining_member_takes_partitions_over_with_their_state() {
    let tag = "join";
    let broker = Broker::start();
    let dir = TempDir::new(tag);
    let extra = format!(
        "checkpoint_topic = \"{tag}-checkpoints\"\ncheckpoint_interval = \"500ms\"\n{FAST_REBALANCE}"
    );
    let cfg = config(&dir.0, ESTATE, &broker.addr, tag, &extra);
    topics(&broker, tag, 4);
    broker.create_topic(&format!("{tag}-checkpoints"), 1);
    let services = ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"];
    let a = Forewarn::start(&cfg, &dir.0, "a");
    eventually(WAIT, "the first member holds all four partitions", || {
        a.partitions_held() == 4
    });
    let base = page_everyone_and_checkpoint(&broker, tag, &services);
    let b = Forewarn::start(&cfg, &dir.0, "b");
    eventually(WAIT, "the partitions are split between the two", || {
        a.partitions_held() + b.partitions_held() == 4 && b.assigned()
    });
    let held = b.partitions_held();
    eventually(
        WAIT,
        "the joiner restored every partition it was given",
        || {
            b.stderr()
                .matches("partition restored from its checkpoint")
                .count()
                == held
        },
    );
    let second = requests(base, &services, 200, 300, &services, (100, 400));
    broker.produce(&format!("{tag}-events"), &second);
    eventually(WAIT, "both committed everything", || {
        broker.all_committed(&format!("{tag}-group"), &format!("{tag}-events"))
    });
    for stderr in [a.terminate(WAIT), b.terminate(WAIT)] {
        let [consumed, applied, dead, late, refused, ..] = accounting(&stderr);
        assert_eq!(consumed, applied + dead + late + refused, "{stderr}");
    }
    let alerts = broker.read_all(&format!("{tag}-alerts"), WAIT);
    assert_paged_once_never_resolved(&alerts, &services);
}

/// Two members with fixed shares (`--member 0/2`, `--member 1/2`) split four
/// partitions without the group's rebalances; one is killed mid-incident and
/// started again: it restores its two partitions at once (no join round, no
/// session timeout), the other member never stops consuming, and every
/// service's firing alerts stay firing in their episodes.
#[test]
fn a_member_with_a_fixed_share_resumes_at_once_after_a_crash() {
    let tag = "share";
    let broker = Broker::start();
    let dir = TempDir::new(tag);
    let extra =
        format!("checkpoint_topic = \"{tag}-checkpoints\"\ncheckpoint_interval = \"500ms\"");
    let cfg = config(&dir.0, ESTATE, &broker.addr, tag, &extra);
    broker.create_topic(&format!("{tag}-checkpoints"), 1);
    let (events, alerts_topic, group) = (
        format!("{tag}-events"),
        format!("{tag}-alerts"),
        format!("{tag}-group"),
    );
    let services = ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"];
    let member = |share: &str, name: &str| {
        Forewarn::start_with(&cfg, &dir.0, name, &["--member", share], &[])
    };
    let (zero, one) = (member("0/2", "zero"), member("1/2", "one"));
    // Started before the events topic exists: they look again until it does.
    eventually(WAIT, "the missing topic is reported", || {
        zero.stderr().contains("cannot list the topic's partitions")
    });
    topics(&broker, tag, 4);
    eventually(WAIT, "each member took two partitions", || {
        zero.partitions_held() == 2 && one.partitions_held() == 2
    });
    let base = page_everyone_and_checkpoint(&broker, tag, &services);
    one.kill();

    let second = requests(base, &services, 200, 300, &services, (100, 400));
    broker.produce(&events, &second);
    let one = restart_timed(tag, 2, || member("1/2", "one-again"));
    eventually(WAIT, "both members committed everything", || {
        broker.all_committed(&group, &events)
    });
    let (zero_err, one_err) = (zero.terminate(WAIT), one.terminate(WAIT));
    for err in [&zero_err, &one_err] {
        assert!(!err.contains("subscribed"), "no group membership: {err}");
        assert!(!err.contains("partitions revoked"), "no rebalance: {err}");
        let [consumed, applied, dead, late, refused, ..] = accounting(err);
        assert_eq!(consumed, applied + dead + late + refused, "{err}");
    }
    let alerts = broker.read_all(&alerts_topic, WAIT);
    assert_paged_once_never_resolved(&alerts, &services);
}

/// A checkpoint topic that does not exist: the operator is told at start-up
/// what to create, the restore is refused (not guessed) and counted, and
/// every message is still applied from the committed offsets.
#[test]
fn a_missing_checkpoint_topic_is_reported_and_nothing_is_lost() {
    let tag = "nockpt";
    let broker = Broker::start();
    let dir = TempDir::new(tag);
    let extra = format!("checkpoint_topic = \"{tag}-absent\"\n{FAST_REBALANCE}");
    let cfg = config(&dir.0, ESTATE, &broker.addr, tag, &extra);
    topics(&broker, tag, 2);
    let run = Forewarn::start(&cfg, &dir.0, "only");
    eventually(WAIT, "partitions assigned", || run.assigned());
    let base = base_ms();
    let events = requests(base, &["pay"], 0, 100, &[], (0, 0));
    broker.produce(&format!("{tag}-events"), &events);
    let addr = run.http_addr().expect("the endpoint's address is logged");
    let sum = |prefix: &str| support::metric_sum(&addr, prefix);
    // Commits wait for a checkpoint, so consumption is what can be awaited.
    eventually(WAIT, "every event consumed", || {
        sum("forewarn_worker_messages_total{") == events.len() as u64
    });
    assert!(
        sum("forewarn_restores_total{result=\"refused\"}") >= 1,
        "the failed restore is counted"
    );
    let stderr = run.terminate(WAIT);
    assert!(
        stderr.contains("checkpoint topic not ready") && stderr.contains("cleanup.policy=compact"),
        "{stderr}"
    );
    assert!(stderr.contains("checkpoint refused"), "{stderr}");
    let [consumed, applied, dead, late, refused, ..] = accounting(&stderr);
    assert_eq!(consumed, applied + dead + late + refused, "{stderr}");
    assert_eq!(applied, events.len() as u64, "{stderr}");
}

/// Every checkpoint slot of every partition overwritten with chunks whose
/// checksum does not hold (a torn or tampered write): the next run refuses
/// them with the reason, counts it, reprocesses each partition from its
/// committed offset (the incident in progress is detected again: nothing is
/// lost), and writes fresh checkpoints that the run after it restores.
#[test]
fn corrupt_checkpoints_are_refused_reprocessed_and_replaced() {
    let tag = "ckbad";
    let broker = Broker::start();
    let dir = TempDir::new(tag);
    let checkpoints = format!("{tag}-checkpoints");
    let extra = format!(
        "checkpoint_topic = \"{checkpoints}\"\ncheckpoint_interval = \"500ms\"\n{FAST_REBALANCE}"
    );
    let cfg = config(&dir.0, ESTATE, &broker.addr, tag, &extra);
    topics(&broker, tag, 2);
    broker.create_topic(&checkpoints, 1);
    let (events, alerts_topic) = (format!("{tag}-events"), format!("{tag}-alerts"));
    let group = format!("{tag}-group");
    let base = base_ms();
    let services = ["pay", "cart"];
    let first = requests(base, &services, 0, 200, &["pay"], (100, 500));
    broker.produce(&events, &first);
    let run = Forewarn::start(&cfg, &dir.0, "first");
    eventually(WAIT, "first run committed (so checkpointed)", || {
        broker.all_committed(&group, &events)
    });
    run.terminate(WAIT);
    let pay_pages = |alerts: &[rdkafka::message::OwnedMessage]| {
        alerts
            .iter()
            .map(json)
            .filter(|a| a["status"] == "firing" && a["labels"]["service"] == "pay")
            .count()
    };
    let pages_before = pay_pages(&broker.read_all(&alerts_topic, WAIT));
    assert!(pages_before > 0, "the first run paged for pay");

    let written = broker.read_all(&checkpoints, WAIT);
    let newest = written
        .iter()
        .filter_map(|m| {
            header(m, "forewarn-checkpoint-generation")?
                .parse::<u64>()
                .ok()
        })
        .max()
        .expect("the first run wrote checkpoints");
    for partition in 0..2 {
        let prefix = format!("{group}/{events}/{partition}");
        // Two newer generations, one per slot, both failing their checksum.
        for generation in [newest + 1, newest + 2] {
            let headers = [
                ("forewarn-checkpoint-version", "1".to_string()),
                ("forewarn-checkpoint-generation", generation.to_string()),
                ("forewarn-checkpoint-chunk", "0/1".to_string()),
                ("forewarn-checkpoint-offset", "0".to_string()),
                (
                    "forewarn-checkpoint-checksum",
                    "0123456789abcdef".to_string(),
                ),
            ]
            .map(|(k, v)| (k.to_string(), v));
            let key = format!("{prefix}#{}.0", generation % 2);
            broker.produce_with_headers(&checkpoints, &key, b"not a snapshot", &headers);
        }
    }

    let second = requests(base, &services, 200, 300, &["pay"], (100, 500));
    broker.produce(&events, &second);
    let run = Forewarn::start(&cfg, &dir.0, "second");
    eventually(WAIT, "second run committed", || {
        broker.all_committed(&group, &events)
    });
    let stderr = run.terminate(WAIT);
    assert_eq!(stderr.matches("checkpoint refused").count(), 2, "{stderr}");
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
    assert!(
        !stderr.contains("partition restored from its checkpoint"),
        "{stderr}"
    );
    assert_eq!(
        consumed_and_accounted(&stderr),
        second.len() as u64,
        "reprocessed from the committed offsets: {stderr}"
    );
    assert!(
        pay_pages(&broker.read_all(&alerts_topic, WAIT)) > pages_before,
        "the state was lost, the incident is not: detected again from the reprocessed events"
    );

    // The second run's checkpoints supersede the corrupt ones.
    let run = Forewarn::start(&cfg, &dir.0, "third");
    eventually(WAIT, "the third run restored both partitions", || {
        run.stderr()
            .matches("partition restored from its checkpoint")
            .count()
            == 2
    });
    let stderr = run.terminate(WAIT);
    assert!(!stderr.contains("checkpoint refused"), "{stderr}");
}

/// Each input partition's checkpoints are written to its home partition of
/// the checkpoint topic (input partition mod its partition count), so a
/// restore reads that one only; checkpoints found elsewhere (an older layout
/// placed them by key hash, or the partition count changed) still restore.
#[test]
fn checkpoints_live_in_their_home_partition_and_elsewhere_still_restore() {
    let tag = "ckhome";
    let broker = Broker::start();
    let dir = TempDir::new(tag);
    let (home, moved) = (format!("{tag}-checkpoints"), format!("{tag}-moved"));
    let with_topic = |topic: &str| {
        let extra = format!(
            "checkpoint_topic = \"{topic}\"\ncheckpoint_interval = \"500ms\"\n{FAST_REBALANCE}"
        );
        config(&dir.0, ESTATE, &broker.addr, tag, &extra)
    };
    topics(&broker, tag, 4);
    broker.create_topic(&home, 2);
    let services = ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"];
    let cfg = with_topic(&home);
    let run = Forewarn::start(&cfg, &dir.0, "first");
    let base = page_everyone_and_checkpoint(&broker, tag, &services);
    run.terminate(WAIT);

    let written = broker.read_all(&home, WAIT);
    let mut inputs = std::collections::BTreeSet::new();
    for m in &written {
        let key = std::str::from_utf8(m.key().expect("keyed")).unwrap();
        let (prefix, _) = key.rsplit_once('#').expect("prefix#slot.chunk");
        let input: i32 = prefix.rsplit('/').next().unwrap().parse().unwrap();
        assert_eq!(m.partition(), input % 2, "{key} is in its home partition");
        inputs.insert(input);
    }
    assert_eq!(inputs.into_iter().collect::<Vec<_>>(), [0, 1, 2, 3]);

    // Every chunk in the last of eight partitions: no input partition's home.
    broker.create_topic(&moved, 8);
    broker.copy_to_partition(&written, &moved, 7);
    let cfg = with_topic(&moved);
    let second = requests(base, &services, 200, 300, &services, (100, 400));
    broker.produce(&format!("{tag}-events"), &second);
    let run = Forewarn::start(&cfg, &dir.0, "second");
    eventually(WAIT, "second run committed", || {
        broker.all_committed(&format!("{tag}-group"), &format!("{tag}-events"))
    });
    let stderr = run.terminate(WAIT);
    assert_eq!(
        stderr
            .matches("partition restored from its checkpoint")
            .count(),
        4,
        "{stderr}"
    );
    assert_paged_once_never_resolved(&broker.read_all(&format!("{tag}-alerts"), WAIT), &services);
    assert_eq!(
        consumed_and_accounted(&stderr),
        second.len() as u64,
        "resumed at the checkpoints: {stderr}"
    );
}

/// A restart after SIGTERM resumes from the committed offsets: the second run
/// consumes only what was produced while it was down.
#[test]
fn restart_after_sigterm_resumes_from_committed_offsets() {
    let broker = Broker::start();
    let dir = TempDir::new("restart");
    let cfg = config(&dir.0, ESTATE, &broker.addr, "restart", "");
    topics(&broker, "restart", 2);
    let base = base_ms();
    let services = ["pay", "cart", "search"];
    let first = requests(base, &services, 0, 100, &[], (0, 0));
    broker.produce("restart-events", &first);
    let run = Forewarn::start(&cfg, &dir.0, "first");
    eventually(WAIT, "first batch committed", || {
        broker.all_committed("restart-group", "restart-events")
    });
    let [consumed, ..] = accounting(&run.terminate(WAIT));
    assert_eq!(consumed, first.len() as u64);

    let second = requests(base, &services, 100, 160, &[], (0, 0));
    broker.produce("restart-events", &second);
    let run = Forewarn::start(&cfg, &dir.0, "second");
    eventually(WAIT, "second batch committed", || {
        broker.all_committed("restart-group", "restart-events")
    });
    let stderr = run.terminate(WAIT);
    let [consumed, applied, dead, late, refused, ..] = accounting(&stderr);
    assert_eq!(
        consumed,
        second.len() as u64,
        "only the new events are consumed: {stderr}"
    );
    assert_eq!(consumed, applied + dead + late + refused);
}

/// The HTTP endpoint of `forewarn run`: liveness, readiness once partitions are
/// assigned, Prometheus metrics whose counters match what was consumed, and the
/// alert still firing at the end of the stream in `/api/v1/alerts`.
/// A flood of distinct `service` values (a buggy producer, or an attack) is held
/// to `max_groups`: refused events are counted and logged (not once per event),
/// memory stays flat however long the flood goes on, and once the flood's
/// windows have passed its groups are reclaimed, so a real service that appears
/// afterwards is tracked and pages.
#[test]
fn a_flood_of_services_is_capped_and_a_later_newcomer_still_pages() {
    let broker = Broker::start();
    let dir = TempDir::new("flood");
    let base = format!("[limits]\nmax_groups = 100\n{ESTATE}");
    // A small prefetch queue, so the consumer's buffers do not blur the memory
    // measurement.
    let cfg = config(
        &dir.0,
        &base,
        &broker.addr,
        "flood",
        "properties = { \"queued.max.messages.kbytes\" = 2048 }",
    );
    topics(&broker, "flood", 1);
    let t0 = base_ms();
    const FLOOD: usize = 100_000;
    // Phase k: a minute of steady traffic from pay and cart, then FLOOD distinct
    // services at its end (all at one timestamp: one partition, no lateness).
    let phase = |k: i64| {
        let mut m = requests(t0, &["pay", "cart"], 60 * k, 60 * (k + 1), &[], (0, 0));
        let at = t0 + 60_000 * (k + 1);
        m.extend((0..FLOOD).map(|i| {
            let svc = format!("bogus-{k}-{i:06}");
            let line =
                format!(r#"{{"ts":{at},"service":"{svc}","kind":"request","outcome":"ok"}}"#);
            (Some(svc), line.into_bytes())
        }));
        m
    };
    let run = Forewarn::start(&cfg, &dir.0, "run");
    let mut rss = Vec::new();
    for k in 0..3 {
        broker.produce("flood-events", &phase(k));
        eventually(WAIT, "flood phase consumed and committed", || {
            broker.all_committed("flood-group", "flood-events")
        });
        rss.push(run.rss_kib());
    }
    println!("resident memory after each flood phase (KiB): {rss:?}");
    // 200,000 more distinct services between the first and last measurement:
    // tracked, they would take ≥ 400 bytes each (80 MB); capped, nothing grows.
    assert!(
        rss[2] < rss[0] + 16 * 1024,
        "resident memory grew from {} KiB to {} KiB over the flood: {rss:?}",
        rss[0],
        rss[2]
    );

    // After the flood, a new service that fails from 300 s on must page.
    broker.produce(
        "flood-events",
        &requests(
            t0,
            &["pay", "cart", "newcomer"],
            180,
            420,
            &["newcomer"],
            (300, 420),
        ),
    );
    let alerts = broker.read_until("flood-alerts", WAIT, |got| {
        outcomes(got).contains(&("newcomer".to_string(), "firing".to_string()))
    });
    eventually(WAIT, "offsets committed", || {
        broker.all_committed("flood-group", "flood-events")
    });
    let addr = run.http_addr().expect("endpoint address");
    let (_, metrics) = support::http_get(&addr, "/metrics");
    let stderr = run.terminate(WAIT);

    let services: Vec<String> = outcomes(&alerts).into_iter().map(|o| o.0).collect();
    assert_eq!(
        services,
        vec!["newcomer".to_string()],
        "only the newcomer pages"
    );
    let counter = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last()?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert!(
        counter("forewarn_groups_refused_total") >= (3 * FLOOD - 300) as f64,
        "{metrics}"
    );
    assert!(
        counter("forewarn_groups_reclaimed_total") >= 98.0,
        "{metrics}"
    );
    let risk_series = metrics
        .lines()
        .filter(|l| l.starts_with("forewarn_risk_score{"))
        .count();
    assert!(
        (3..=100).contains(&risk_series),
        "risk score series stay within max_groups: {risk_series}"
    );
    let warnings = stderr.matches("max_groups reached").count();
    assert!(
        (1..=5).contains(&warnings),
        "refusals are logged, but not per event: {warnings} warnings"
    );
    let [consumed, applied, dead, late, refused, ..] = accounting(&stderr);
    assert_eq!(consumed, applied + dead + late + refused, "{stderr}");
    assert_eq!((dead, late), (0, 0), "{stderr}");
    // The flood's events beyond the cap are counted as refused, not applied.
    assert!(
        refused >= (3 * FLOOD - 300) as u64 && applied + refused == consumed,
        "refused {refused}, applied {applied}, consumed {consumed}"
    );
}

#[test]
fn http_endpoint_serves_metrics_health_and_current_alerts() {
    let broker = Broker::start();
    let dir = TempDir::new("http");
    let cfg = config(
        &dir.0,
        ESTATE,
        &broker.addr,
        "http",
        "properties = { \"statistics.interval.ms\" = 200 }",
    );
    topics(&broker, "http", 2);
    // pay fails from 100 s to the end: its alert is still firing when the stream stops.
    let events = requests(base_ms(), &["pay", "cart"], 0, 200, &["pay"], (100, 200));
    broker.produce("http-events", &events);
    let run = Forewarn::start(&cfg, &dir.0, "run");
    eventually(WAIT, "offsets committed", || {
        broker.all_committed("http-group", "http-events")
    });
    let addr = run.http_addr().expect("the endpoint's address is logged");

    assert_eq!(support::http_get(&addr, "/healthz").0, 200);
    assert_eq!(support::http_get(&addr, "/readyz").0, 200);
    let (status, metrics) = support::http_get(&addr, "/metrics");
    assert_eq!(status, 200);
    let consumed: u64 = metrics
        .lines()
        .find(|l| l.starts_with("forewarn_events_consumed_total{topic=\"http-events\"}"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert_eq!(consumed, events.len() as u64);
    assert!(
        metrics.contains("forewarn_build_info{version="),
        "{metrics}"
    );
    assert!(
        metrics.contains("forewarn_detection_latency_seconds_bucket"),
        "{metrics}"
    );
    let value = |metrics: &str, series: &str| -> Option<f64> {
        metrics
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    let series = |name: &str, labels: &[(&str, &str)]| {
        let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        format!("{name}{{{}}} ", l.join(","))
    };
    let critical = [("alertname", "ErrorRateHigh"), ("severity", "critical")];
    let firing_transitions = series(
        "forewarn_transitions_total",
        &[
            critical[0],
            ("category", "system"),
            critical[1],
            ("status", "firing"),
        ],
    );
    assert_eq!(value(&metrics, &firing_transitions), Some(1.0), "{metrics}");
    let firing_now = series(
        "forewarn_alerts",
        &[
            critical[0],
            ("alertstate", "firing"),
            ("category", "system"),
            ("service", "pay"),
            critical[1],
        ],
    );
    assert_eq!(value(&metrics, &firing_now), Some(1.0), "{metrics}");
    assert!(value(&metrics, "forewarn_event_processing_seconds_count").unwrap() > 0.0);
    assert!(
        value(&metrics, "process_resident_memory_bytes").unwrap() > 1e6,
        "{metrics}"
    );
    assert!(
        value(&metrics, "process_cpu_seconds_total").is_some(),
        "{metrics}"
    );
    // Risk per service: pay's critical alert is firing; cart is healthy.
    assert_eq!(
        value(&metrics, "forewarn_risk_score{service=\"pay\"} "),
        Some(1.0),
        "{metrics}"
    );
    assert!(value(&metrics, "forewarn_risk_score{service=\"cart\"} ").unwrap() < 0.1);
    // The latest error rate per service: half of pay's requests fail.
    let pay = value(
        &metrics,
        "forewarn_signal_value{rule=\"ErrorRateHigh\",service=\"pay\",signal=\"error_rate\"} ",
    )
    .unwrap_or_else(|| panic!("{metrics}"));
    assert!((0.45..=0.55).contains(&pay), "pay error rate {pay}");
    // Per-partition gauges: watermark delay (from the 1 s tick) and consumer lag
    // (from librdkafka's statistics, every 200 ms here).
    let mut last = String::new();
    eventually(WAIT, "watermark delay and consumer lag exported", || {
        last = support::http_get(&addr, "/metrics").1;
        last.contains("forewarn_watermark_delay_seconds{")
            && last.contains("forewarn_consumer_lag{")
    });
    // The exposition passes Prometheus's own linter.
    let mut lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus)");
    use std::io::Write;
    lint.stdin
        .take()
        .unwrap()
        .write_all(last.as_bytes())
        .unwrap();
    let lint = lint.wait_with_output().unwrap();
    assert!(
        lint.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    let delay = value(&last, "forewarn_watermark_delay_seconds{").unwrap();
    // The stream's event time ends about 2 h ago (base_ms), lateness is zero.
    assert!(
        (6_000.0..8_000.0).contains(&delay),
        "watermark delay {delay}"
    );

    let (status, body) = support::http_get(&addr, "/api/v1/alerts");
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    let alerts = v["data"]["alerts"].as_array().unwrap();
    assert!(
        alerts.iter().any(|a| a["labels"]["service"] == "pay"
            && a["labels"]["severity"] == "critical"
            && a["status"] == "firing"),
        "{body}"
    );
    // generatorURL resolves to the rule on forewarn's own endpoint.
    let url = alerts[0]["generatorURL"].as_str().unwrap();
    let path = &url[url.find("/rules/").unwrap()..];
    let (status, body) = support::http_get(&addr, path);
    assert_eq!(status, 200, "{path}: {body}");
    let rule: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rule["name"], "ErrorRateHigh", "{body}");
    assert_eq!(rule["state"], "firing", "{body}");
    assert!(
        rule["query"].as_str().unwrap().contains("threshold"),
        "{body}"
    );
    let (status, _) = support::http_get(&addr, "/rules/NoSuchRule");
    assert_eq!(status, 404);
    // The paging service tops the risk list, its firing rule first.
    let (status, body) = support::http_get(&addr, "/api/v1/risk");
    assert_eq!(status, 200, "{body}");
    let risk: Value = serde_json::from_str(&body).unwrap();
    let top = &risk["data"]["services"][0];
    assert_eq!(top["service"], "pay", "{body}");
    assert_eq!(top["score"], 1.0, "{body}");
    assert_eq!(top["contributions"][0]["rule"], "ErrorRateHigh", "{body}");
    let (_, body) = support::http_get(&addr, "/api/v1/risk?service=pay");
    let one: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        one["data"]["services"].as_array().unwrap().len(),
        1,
        "{body}"
    );
    let (status, body) = support::http_get(&addr, "/api/v1/rules");
    assert_eq!(status, 200);
    let rules: Value = serde_json::from_str(&body).unwrap();
    let listed = rules["data"]["groups"][0]["rules"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .any(|r| r["name"] == "ErrorRateHigh" && r["type"] == "alerting"),
        "{body}"
    );
    // Prometheus's alert shape, with the value filled in (also in the summary).
    for a in alerts {
        assert!(
            matches!(a["state"].as_str(), Some("firing" | "pending")),
            "{a}"
        );
        assert!(
            a["activeAt"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{a}"
        );
        let value = a["value"].as_str().unwrap();
        assert!(value.parse::<f64>().is_ok(), "{a}");
        assert!(
            a["annotations"]["summary"]
                .as_str()
                .unwrap()
                .contains(value),
            "{a}"
        );
    }
    assert!(
        alerts.iter().all(|a| a["labels"]["service"] == "pay"),
        "{body}"
    );
    run.terminate(WAIT);
}

/// `forewarn simulate --brokers` produces exactly the events it would write as
/// NDJSON, keyed by service, so each service's events share one partition.
#[test]
fn simulate_produces_to_kafka_keyed_by_service() {
    let broker = Broker::start();
    broker.create_topic("sim-events", 3);
    let args = [
        "simulate",
        "--duration",
        "10m",
        "--scale",
        "0.05",
        "--seed",
        "7",
    ];
    let ndjson = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args(args)
        .output()
        .unwrap();
    assert!(ndjson.status.success());
    let lines: Vec<String> = String::from_utf8(ndjson.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(lines.len() > 100);
    let out = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args(args)
        .args(["--brokers", &broker.addr, "--topic", "sim-events"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = broker.read("sim-events", lines.len(), WAIT);
    let mut payloads: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8(m.payload().unwrap().to_vec()).unwrap())
        .collect();
    let mut want = lines.clone();
    payloads.sort();
    want.sort();
    assert_eq!(payloads, want);
    let mut partition_of = std::collections::HashMap::new();
    for m in &got {
        let v: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        let service = v["service"].as_str().unwrap().to_string();
        assert_eq!(m.key(), Some(service.as_bytes()));
        let p = *partition_of.entry(service.clone()).or_insert(m.partition());
        assert_eq!(p, m.partition(), "{service} spans partitions");
    }
}

/// `forewarn demo --brokers` runs the demo against a real broker: it creates
/// its topics, and the short scenario's incident is detected before its breach.
#[test]
fn demo_runs_against_a_real_broker() {
    let broker = Broker::start();
    let out = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args([
            "demo",
            "--json",
            "--speed",
            "0",
            "--duration",
            "1h",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--brokers", &broker.addr, "--partitions", "3"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let card: Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("scorecard-json "))
        .map(|c| serde_json::from_str(c).unwrap())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(card["scorecard"]["detected_early"], 2, "{card}");
    assert_eq!(
        card["scorecard"]["false_alarms"].as_array().unwrap().len(),
        0
    );
}
