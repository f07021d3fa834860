//! Config reload of a running `forewarn run` (SIGHUP and `POST /-/reload`)
//! against a real Kafka-compatible broker (Tansu on loopback).

mod support;

use std::time::Duration;

use support::{
    accounting, base_ms, config, eventually, http_get, http_post, json, requests, Broker, Forewarn,
    TempDir, ESTATE,
};

const WAIT: Duration = Duration::from_secs(60);

const ANY_ERRORS: &str = r#"
[[rules]]
name = "ErrorRateAny"
kind = "threshold"
signal = "error_rate"
warning = { value = 0.01 }
min_events = 10
"#;

const MOSTLY_ERRORS: &str = r#"
[[rules]]
name = "ErrorRateMostly"
kind = "threshold"
signal = "error_rate"
critical = { value = 0.3 }
min_events = 10
"#;

/// (alertname, severity, status, episode) of `service`'s firing and resolved
/// transitions.
fn pages(alerts: &[rdkafka::message::OwnedMessage], service: &str) -> Vec<[String; 4]> {
    alerts
        .iter()
        .map(json)
        .filter(|a| a["labels"]["service"] == service)
        .filter(|a| a["status"] == "firing" || a["status"] == "resolved")
        .map(|a| {
            ["alertname", "severity"]
                .map(|l| a["labels"][l].as_str().unwrap_or("").to_string())
                .into_iter()
                .chain(["status", "episode"].map(|f| a[f].as_str().unwrap_or("").to_string()))
                .collect::<Vec<_>>()
                .try_into()
                .unwrap()
        })
        .collect()
}

fn count(pages: &[[String; 4]], rule: &str, status: &str) -> usize {
    pages
        .iter()
        .filter(|p| p[0] == rule && p[2] == status)
        .count()
}

/// An incident in progress across two reloads: SIGHUP with an edited rule, an
/// added rule and the rest unchanged, then `POST /-/reload` with a broken
/// file. The unchanged rule keeps firing in its episode (no second page, no
/// resolve); the edited one's episode ends and it fires again in a new one;
/// the added one pages;
/// the broken file is refused with its location, the reload metric says so,
/// and the config before it keeps running.
#[test]
fn reloads_keep_unchanged_rules_firing_and_refuse_a_broken_config() {
    let broker = Broker::start();
    let dir = TempDir::new("reload");
    let path = config(
        &dir.0,
        &format!("{ESTATE}{ANY_ERRORS}"),
        &broker.addr,
        "reload",
        "",
    );
    for (topic, partitions) in [("events", 2), ("alerts", 1), ("dead", 1)] {
        broker.create_topic(&format!("reload-{topic}"), partitions);
    }
    let base = base_ms();
    let services = ["pay", "cart"];
    broker.produce(
        "reload-events",
        &requests(base, &services, 0, 200, &["pay"], (100, 400)),
    );
    let run = Forewarn::start(&path, &dir.0, "run");
    let before = broker.read_until("reload-alerts", WAIT, |m| {
        let p = pages(m, "pay");
        count(&p, "ErrorRateHigh", "firing") == 2 && count(&p, "ErrorRateAny", "firing") == 1
    });
    let before = pages(&before, "pay");

    let original = std::fs::read_to_string(&path).unwrap();
    let edited = original
        .replace("warning = { value = 0.01 }", "warning = { value = 0.02 }")
        .replacen("[kafka]", &format!("{MOSTLY_ERRORS}\n[kafka]"), 1);
    std::fs::write(&path, &edited).unwrap();
    run.hangup();
    eventually(WAIT, "the SIGHUP reload is logged", || {
        run.stderr().contains("config reloaded")
    });
    let log = run.stderr();
    let line = log.lines().find(|l| l.contains("config reloaded")).unwrap();
    assert!(line.contains(r#"kept_rules=["ErrorRateHigh"]"#), "{line}");
    assert!(
        line.contains(r#"restarted_rules=["ErrorRateAny"]"#),
        "{line}"
    );
    assert!(
        line.contains(r#"added_rules=["ErrorRateMostly"]"#),
        "{line}"
    );

    let addr = run.http_addr().expect("the endpoint's address is logged");
    std::fs::write(&path, edited.replace("[[rules]]", "[[rules]\n")).unwrap();
    let (status, body) = http_post(&addr, "/-/reload");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("reload.toml:"),
        "names the file and line: {body}"
    );
    let (_, metrics) = http_get(&addr, "/metrics");
    assert!(
        metrics.contains("forewarn_config_last_reload_successful 0"),
        "{metrics}"
    );

    broker.produce(
        "reload-events",
        &requests(base, &services, 200, 300, &["pay"], (100, 400)),
    );
    eventually(WAIT, "everything committed", || {
        broker.all_committed("reload-group", "reload-events")
    });
    let stderr = run.terminate(WAIT);
    let after = pages(&broker.read_all("reload-alerts", WAIT), "pay");
    assert_eq!(count(&after, "ErrorRateHigh", "firing"), 2, "{after:?}");
    assert_eq!(count(&after, "ErrorRateHigh", "resolved"), 0, "{after:?}");
    let episodes = |p: &[[String; 4]], rule: &str| -> Vec<String> {
        p.iter()
            .filter(|p| p[0] == rule && p[2] == "firing")
            .map(|p| p[3].clone())
            .collect()
    };
    assert_eq!(
        episodes(&after, "ErrorRateHigh"),
        episodes(&before, "ErrorRateHigh")
    );
    let any = episodes(&after, "ErrorRateAny");
    assert_eq!(any.len(), 2, "the edited rule fired again: {after:?}");
    assert_ne!(any[0], any[1], "in a new episode");
    let ended: Vec<&[String; 4]> = after
        .iter()
        .filter(|p| p[0] == "ErrorRateAny" && p[2] == "resolved")
        .collect();
    assert_eq!(ended.len(), 1, "its old episode ended: {after:?}");
    assert_eq!(ended[0][3], any[0]);
    assert!(
        count(&after, "ErrorRateMostly", "firing") >= 1,
        "the added rule runs, though the last reload was refused: {after:?}"
    );
    let [consumed, applied, dead, late, refused, ..] = accounting(&stderr);
    assert_eq!(consumed, applied + dead + late + refused);
}

/// A restart under an edited config restores from the checkpoint what did not
/// change: the unchanged rule stays firing in its episode (no second page, no
/// resolve), and the removed rule's firing alert is resolved in the episode it
/// fired in, though the new config no longer has the rule.
#[test]
fn a_restart_under_an_edited_config_keeps_unchanged_rules_and_ends_removed_ones() {
    let broker = Broker::start();
    let dir = TempDir::new("ckedit");
    let extra = "checkpoint_topic = \"ckedit-checkpoints\"\ncheckpoint_interval = \"500ms\"";
    let path = config(
        &dir.0,
        &format!("{ESTATE}{ANY_ERRORS}"),
        &broker.addr,
        "ckedit",
        extra,
    );
    for (topic, partitions) in [
        ("events", 2),
        ("alerts", 1),
        ("dead", 1),
        ("checkpoints", 1),
    ] {
        broker.create_topic(&format!("ckedit-{topic}"), partitions);
    }
    let base = base_ms();
    let services = ["pay", "cart"];
    broker.produce(
        "ckedit-events",
        &requests(base, &services, 0, 200, &["pay"], (100, 400)),
    );
    let run = Forewarn::start(&path, &dir.0, "first");
    let before = broker.read_until("ckedit-alerts", WAIT, |m| {
        let p = pages(m, "pay");
        count(&p, "ErrorRateHigh", "firing") == 2 && count(&p, "ErrorRateAny", "firing") == 1
    });
    let before = pages(&before, "pay");
    eventually(WAIT, "first run committed (so checkpointed)", || {
        broker.all_committed("ckedit-group", "ckedit-events")
    });
    run.terminate(WAIT);

    let original = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, original.replace(ANY_ERRORS, "")).unwrap();
    broker.produce(
        "ckedit-events",
        &requests(base, &services, 200, 300, &["pay"], (100, 400)),
    );
    let run = Forewarn::start(&path, &dir.0, "second");
    eventually(WAIT, "second run committed", || {
        broker.all_committed("ckedit-group", "ckedit-events")
    });
    let stderr = run.terminate(WAIT);
    assert!(
        stderr.contains("checkpoint written under another config"),
        "{stderr}"
    );
    let after = pages(&broker.read_all("ckedit-alerts", WAIT), "pay");
    assert_eq!(count(&after, "ErrorRateHigh", "firing"), 2, "{after:?}");
    assert_eq!(count(&after, "ErrorRateHigh", "resolved"), 0, "{after:?}");
    let any: Vec<&[String; 4]> = after.iter().filter(|p| p[0] == "ErrorRateAny").collect();
    let fired = before
        .iter()
        .find(|p| p[0] == "ErrorRateAny" && p[2] == "firing")
        .unwrap();
    assert_eq!(any.len(), 2, "fired once, resolved once: {after:?}");
    assert_eq!(any[1][2], "resolved");
    assert_eq!(any[1][3], fired[3], "in the episode it fired in");
    let [consumed, applied, dead, late, refused, ..] = accounting(&stderr);
    assert_eq!(consumed, applied + dead + late + refused);
}
