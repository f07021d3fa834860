//! Golden replay scenarios: `tests/scenarios/NAME.ndjson` replayed through
//! `forewarn replay --config NAME.toml` must print exactly the transitions listed in
//! `NAME.expected.ndjson` (derived by hand, see each file's comments), in order.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios");

/// The fields compared: enough to pin each transition without freezing wording.
fn project(alert: &Value) -> Value {
    serde_json::json!({
        "transition": alert["transition"],
        "alertname": alert["labels"]["alertname"],
        "service": alert["labels"]["service"],
        "severity": alert["labels"]["severity"],
        "evaluatedAt": alert["evaluatedAt"],
        "value": alert["annotations"].get("value").cloned().unwrap_or(Value::Null),
    })
}

fn replay(name: &str) -> (Vec<Value>, String) {
    let dir = Path::new(DIR);
    let out = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .arg("replay")
        .arg("--config")
        .arg(dir.join(format!("{name}.toml")))
        .arg(dir.join(format!("{name}.ndjson")))
        .args(["--now", "2026-11-21T00:00:00Z"])
        .output()
        .expect("run forewarn");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "replay failed: {stderr}");
    let alerts = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("each stdout line is a JSON alert"))
        .collect();
    (alerts, stderr)
}

fn expected(name: &str) -> Vec<Value> {
    std::fs::read_to_string(Path::new(DIR).join(format!("{name}.expected.ndjson")))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

macro_rules! scenario {
    ($($name:ident),+ $(,)?) => {
        $(#[test]
        fn $name() {
            let (alerts, stderr) = replay(stringify!($name));
            let got: Vec<Value> = alerts.iter().map(project).collect();
            assert_eq!(got, expected(stringify!($name)), "stderr: {stderr}");
        })+

        /// Every scenario file in the folder has a test above.
        #[test]
        fn every_scenario_file_is_tested() {
            let listed = [$(stringify!($name)),+];
            for entry in std::fs::read_dir(DIR).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                if let Some(stem) = name.strip_suffix(".expected.ndjson") {
                    assert!(listed.contains(&stem), "scenario {stem} has no test");
                }
            }
        }
    };
}

scenario!(
    checkout_incident,
    flapping_for_versus_m_of_n,
    hysteresis_holds_until_clear,
    late_event_within_lateness,
    slo_fast_burn_pages_within_minutes,
    slo_slow_burn_pages_on_the_6h_pair,
    slo_blip_does_not_page,
    overdue_orders_page,
);

#[test]
fn checkout_incident_accounts_for_every_line() {
    let (alerts, stderr) = replay("checkout_incident");
    // 2104 lines: 2100 applied, 1 late, 3 rejected (bad timestamp, not JSON, future).
    assert!(stderr.contains("2104 events: 2100 applied, 3 rejected (bad_timestamp=1, invalid_json=1, too_far_in_future=1), 1 late; 7 transitions"), "{stderr}");
    let firing = &alerts[1];
    assert_eq!(firing["status"], "firing");
    assert_eq!(firing["labels"]["category"], "system");
    assert_eq!(
        firing["startsAt"], "2026-11-20T10:08:10.000Z",
        "startsAt is the start of the episode (pending)"
    );
    let resolved = alerts
        .iter()
        .find(|a| a["status"] == "resolved" && a["labels"]["severity"] == "warning")
        .unwrap();
    assert_eq!(resolved["endsAt"], "2026-11-20T10:13:10.000Z");
    assert_eq!(
        resolved["episode"], firing["episode"],
        "one episode id from pending to resolved"
    );
    assert_eq!(resolved["fingerprint"], firing["fingerprint"]);
}

#[test]
fn check_refuses_a_bad_config_with_location() {
    let dir = std::env::temp_dir().join(format!("forewarn-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[[signals]]\nname = \"e\"\naggregate = \"rate\"\nwindow = \"1m\"\nslide = \"2m\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml:5:9: signal `e`: slide (2m) is longer than the window (1m)"),
        "{stderr}"
    );
    assert!(stderr.contains("help:"), "{stderr}");
    let ok = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args([
            "check",
            concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/forewarn.example.toml"),
        ])
        .output()
        .unwrap();
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("16 rule(s)"));
}

#[test]
fn replay_text_format_is_one_readable_line_per_transition() {
    let dir = Path::new(DIR);
    let out = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args([
            "replay",
            "--format",
            "text",
            "--now",
            "2026-11-20T12:00:00Z",
            "--config",
        ])
        .arg(dir.join("hysteresis_holds_until_clear.toml"))
        .arg(dir.join("hysteresis_holds_until_clear.ndjson"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with(
            "2026-11-20T10:00:10.000Z  FIRING    critical ErrHysteresis service=pay value=0.6 | "
        ),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with(
            "2026-11-20T10:00:40.000Z  RESOLVED  critical ErrHysteresis service=pay value=0.1 | "
        ),
        "{}",
        lines[1]
    );
}

#[test]
fn simulate_writes_events_and_ground_truth_deterministically() {
    let dir = std::env::temp_dir().join(format!("forewarn-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |name: &str, seed: &str| {
        let out = dir.join(format!("{name}.ndjson"));
        let truth = dir.join(format!("{name}.json"));
        let status = Command::new(env!("CARGO_BIN_EXE_forewarn"))
            .args([
                "simulate",
                "--seed",
                seed,
                "--duration",
                "25m",
                "--scale",
                "0.2",
                "--out",
            ])
            .arg(&out)
            .arg("--truth")
            .arg(&truth)
            .status()
            .unwrap();
        assert!(status.success());
        (
            std::fs::read(&out).unwrap(),
            std::fs::read_to_string(&truth).unwrap(),
        )
    };
    let (a, truth) = run("a", "5");
    let (b, _) = run("b", "5");
    let (c, _) = run("c", "6");
    assert!(!a.is_empty());
    assert_eq!(a, b, "same seed, same events");
    assert_ne!(a, c, "different seed, different events");
    let truth: Value = serde_json::from_str(&truth).unwrap();
    // 25 minutes reach only the first incident (its precursors start at 20m).
    let incidents = truth["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["id"], "system-payment");
    // Every simulated line is a valid event for replay.
    let replayed = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args([
            "replay",
            "--now",
            "2026-11-21T00:00:00Z",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/forewarn.example.toml"),
        ])
        .arg(dir.join("a.ndjson"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&replayed.stderr);
    assert!(stderr.contains(" 0 rejected"), "{stderr}");
}

#[test]
fn simulate_paces_output_without_changing_it() {
    let dir = std::env::temp_dir().join(format!("forewarn-pace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |name: &str, extra: &[&str]| {
        let out = dir.join(name);
        let started = std::time::Instant::now();
        let status = Command::new(env!("CARGO_BIN_EXE_forewarn"))
            .args([
                "simulate",
                "--seed",
                "9",
                "--duration",
                "10s",
                "--scale",
                "0.1",
                "--out",
            ])
            .arg(&out)
            .args(extra)
            .status()
            .unwrap();
        assert!(status.success());
        (std::fs::read(&out).unwrap(), started.elapsed())
    };
    let (fast, _) = run("fast.ndjson", &[]);
    let (paced, elapsed) = run("paced.ndjson", &["--speed", "10"]);
    assert_eq!(fast, paced, "pacing changes timing, not content");
    // 10 simulated seconds at 10x: about a second of wall time, never less than
    // the last event's due time (sleeps only ever add time).
    assert!(
        elapsed >= std::time::Duration::from_millis(800),
        "{elapsed:?}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args(["simulate", "--speed", "0", "--out", "-"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--speed must be a positive number"));
}

#[test]
fn entity_oddities_have_defined_outcomes_and_counters() {
    let (_, stderr) = replay("overdue_orders_page");
    assert!(
        stderr.contains("361 opened, 359 closed (120 after their deadline)")
            && stderr.contains("1 duplicate opens, 1 closes before their open, 1 unknown closes"),
        "{stderr}"
    );
}

fn forewarn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_forewarn"))
}

#[test]
fn exit_codes_tell_config_input_and_runtime_failures_apart() {
    let dir = Path::new(DIR);
    let cfg = dir.join("checkout_incident.toml");
    let events = dir.join("checkout_incident.ndjson");
    // Rejected lines under --strict: 3 (the file holds malformed and future events).
    let strict = forewarn()
        .args([
            "replay",
            "--strict",
            "--now",
            "2026-11-21T00:00:00Z",
            "--config",
        ])
        .arg(&cfg)
        .arg(&events)
        .output()
        .unwrap();
    assert_eq!(
        strict.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&strict.stderr)
    );
    // A missing events file is a runtime failure: 1, naming the path.
    let missing = forewarn()
        .args(["replay", "--config"])
        .arg(&cfg)
        .arg("/nonexistent/events.ndjson")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/events.ndjson"));
}

#[test]
fn replay_ends_with_a_json_summary() {
    let dir = Path::new(DIR);
    let out = forewarn()
        .args(["replay", "--now", "2026-11-21T00:00:00Z", "--config"])
        .arg(dir.join("checkout_incident.toml"))
        .arg(dir.join("checkout_incident.ndjson"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last: Value = serde_json::from_str(stderr.lines().last().unwrap()).expect("JSON summary");
    assert_eq!(last["events"], 2104, "{stderr}");
    assert_eq!(last["applied"], 2100);
    assert_eq!(last["rejected"], 3);
    assert_eq!(last["late"], 1);
}

#[test]
fn a_closed_pipe_ends_replay_quietly() {
    use std::io::Read;
    let dir = Path::new(DIR);
    let mut child = forewarn()
        .args([
            "replay",
            "--format",
            "text",
            "--now",
            "2026-11-21T00:00:00Z",
            "--config",
        ])
        .arg(dir.join("overdue_orders_page.toml"))
        .arg(dir.join("slo_blip_does_not_page.ndjson"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away at once
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
}

#[test]
fn check_reads_stdin_and_speaks_json() {
    use std::io::Write;
    let example = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/forewarn.example.toml"
    ))
    .unwrap();
    let mut child = forewarn()
        .args(["check", "--format", "json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&example).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["file"], "-");
    assert!(doc["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "AvailabilitySLOBurn"));
    let mut child = forewarn()
        .args(["check", "--format", "json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"[time]\nlateness = \"1s\"\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (doc["ok"].clone(), doc["error"]["line"].clone()),
        (Value::Bool(false), Value::from(2))
    );
    assert_eq!(doc["error"]["file"], "<stdin>");
    assert!(doc["error"]["message"]
        .as_str()
        .unwrap()
        .contains("lateness"));
}

/// Peak resident memory of a running process, from /proc (kB).
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn replay_bounds_a_huge_line_and_classifies_blank_and_padded_ones() {
    use std::io::Write;
    let dir = Path::new(DIR);
    let mut child = forewarn()
        .args(["replay", "--now", "2026-11-21T00:00:00Z", "--config"])
        .arg(dir.join("checkout_incident.toml"))
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let event = br#"{"ts":"2026-11-20T10:00:00Z","service":"checkout","kind":"request","outcome":"ok","latency_ms":12}"#;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(event).unwrap();
    stdin.write_all(b"\n").unwrap();
    // 256 MiB without a newline: the reader must skip it, not hold it.
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..256 {
        stdin.write_all(&chunk).unwrap();
    }
    stdin.write_all(b"\n\n  \t\r\n\x0c").unwrap();
    stdin.write_all(event).unwrap();
    stdin.write_all(b"\n").unwrap();
    stdin.write_all(event).unwrap();
    stdin.write_all(b"\n").unwrap();
    stdin.flush().unwrap();
    // The pipe holds at most 64 KiB, so the child has read the long line by now.
    let peak = peak_rss_kb(child.id());
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        peak < 64 * 1024,
        "peak RSS {peak} kB while a 256 MiB line went by"
    );
    let last: Value = serde_json::from_str(stderr.lines().last().unwrap()).expect("JSON summary");
    assert_eq!(last["events"], 6, "{stderr}");
    assert_eq!(last["applied"], 2, "{stderr}");
    // Kafka payloads classify the same way (the same decode): blank, and a form
    // feed is not JSON whitespace.
    assert_eq!(
        last["rejected_by_reason"],
        serde_json::json!({"too_large": 1, "blank": 2, "invalid_json": 1}),
        "{stderr}"
    );
    assert!(
        stderr.contains("-:2: rejected (too_large): event is 268435456 bytes"),
        "{stderr}"
    );
}

#[test]
fn a_full_stderr_loses_messages_not_the_run() {
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let dir = Path::new(DIR);
    let out = forewarn()
        .args(["replay", "--now", "2026-11-21T00:00:00Z", "--config"])
        .arg(dir.join("checkout_incident.toml"))
        .arg(dir.join("checkout_incident.ndjson"))
        .stderr(full())
        .output()
        .unwrap();
    // Rejected lines and the summary go to stderr; the transitions still come.
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 7);
    // A failure keeps its exit code instead of becoming a panic (101).
    let missing = forewarn()
        .args(["check", "/nonexistent/forewarn.toml"])
        .stderr(full())
        .status()
        .unwrap();
    assert_eq!(missing.code(), Some(1));
}
