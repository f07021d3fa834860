//! `forewarn backtest` on a hand-checked history: one service, four error bursts
//! against a tumbling one-minute count, whose every figure can be worked out on
//! paper (see `history`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// 2026-03-02T00:00:00Z.
const T0: i64 = 1_772_409_600_000;
const MIN: i64 = 60_000;

const CONFIG: &str = r#"
[time]
allowed_lateness = "0s"

[[signals]]
name = "errors"
aggregate = "count"
filter = { kind = "request", outcome = "error" }
window = "1m"

[[rules]]
name = "ErrorsHigh"
kind = "threshold"
signal = "errors"
critical = { value = 10 }
"#;

/// Two hours of `cart`: an ok request every 10 s, and 20 errors in each of
/// minutes 10, 30, 32 and 80. Each burst's window [m, m+1) closes at m+1 with
/// 20 > 10 errors, so `ErrorsHigh` fires at m+1 and resolves at m+2 (the next
/// window is empty): episodes at 11, 31, 33 and 81 min, one minute each.
fn history() -> String {
    let mut events: Vec<(i64, &str)> = (0..=720).map(|s| (T0 + s * 10_000, "ok")).collect();
    for m in [10, 30, 32, 80] {
        events.extend((1..=20).map(|k| (T0 + m * MIN + k * 1000 + 500, "error")));
    }
    events.sort();
    events
        .iter()
        .map(|(ts, outcome)| {
            format!(
                r#"{{"v":1,"ts":{ts},"service":"cart","kind":"request","outcome":"{outcome}"}}"#
            ) + "\n"
        })
        .collect()
}

/// A: caught at 11 min, 2 min after its start and 4 before its breach. B:
/// caught at 31 min, 90 s after its start, 1 min before its breach; the episode
/// at 33 min is B's too, and a flap (1 min after the resolve at 32). C is on a
/// service with no events: missed. The episode at 81 min matches nothing
/// (B's grace ends at 50): a false page.
fn incidents(with_d: bool) -> String {
    let at = |m: f64| T0 + (m * MIN as f64) as i64;
    let mut list = vec![
        serde_json::json!({"id": "INC-A", "service": "cart", "start": at(9.0), "end": at(20.0), "breach": at(15.0)}),
        serde_json::json!({"id": "INC-B", "service": "cart", "start": at(29.5), "end": at(40.0), "breach": at(32.0)}),
    ];
    if with_d {
        list.push(serde_json::json!({"id": "INC-D", "service": "cart", "start": "2026-03-02T01:19:00Z", "end": at(90.0)}));
    } else {
        list.push(serde_json::json!({"id": "INC-C", "service": "payment", "start": at(50.0), "end": at(60.0)}));
    }
    Value::Array(list).to_string()
}

struct Fixture {
    dir: PathBuf,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let dir =
            std::env::temp_dir().join(format!("forewarn-backtest-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.toml"), CONFIG).unwrap();
        Fixture { dir }
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn backtest(&self, incidents: &Path, events: &[&Path], extra: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_forewarn"))
            .arg("backtest")
            .arg("--config")
            .arg(self.dir.join("config.toml"))
            .arg("--incidents")
            .arg(incidents)
            .args(events)
            .args(extra)
            .output()
            .expect("run forewarn")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn the_hand_checked_history_gives_exactly_the_worked_out_figures() {
    let f = Fixture::new("figures");
    let events = f.file("events.ndjson", history().as_bytes());
    let inc = f.file("incidents.json", incidents(false).as_bytes());
    let out = f.backtest(&inc, &[&events], &["--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "a missed incident fails the backtest"
    );
    let r = json(&out);
    let o = &r["overall"];
    assert_eq!(
        (o["caught"].as_u64(), o["missed"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(o["caught_before_breach"], 2);
    assert_eq!(
        o["delay_seconds"],
        serde_json::json!({"median": 90.0, "p90": 120.0, "worst": 120.0})
    );
    assert_eq!(
        o["lead_seconds"],
        serde_json::json!({"median": 240.0, "p90": 60.0, "worst": 60.0})
    );
    assert_eq!(
        (
            o["episodes"].as_u64(),
            o["false_pages"].as_u64(),
            o["flaps"].as_u64()
        ),
        (Some(4), Some(1), Some(1))
    );
    // Events span two hours: 1/12 of a day.
    assert_eq!(o["false_pages_per_day"], 12.0);
    assert!((o["firing_hours"].as_f64().unwrap() - 4.0 / 60.0).abs() < 1e-9);
    assert_eq!(r["rules"][0]["rule"], "ErrorsHigh");
    assert_eq!(r["rules"][0]["caught"], 2);
    let by_id = |id: &str| {
        r["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id("INC-A")["first_alert"], "2026-03-02T00:11:00.000Z");
    assert_eq!(by_id("INC-A")["lead_seconds"], 240.0);
    assert_eq!(by_id("INC-B")["delay_seconds"], 90.0);
    assert_eq!(by_id("INC-C")["caught_by"], Value::Null);
    assert_eq!(r["passed"], false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("801 events: 801 applied, 0 late, 0 refused, 0 rejected"),
        "{stderr}"
    );
}

#[test]
fn every_incident_caught_without_a_false_page_passes_and_the_table_says_so() {
    let f = Fixture::new("pass");
    let events = f.file("events.ndjson", history().as_bytes());
    let inc = f.file("incidents.json", incidents(true).as_bytes());
    let out = f.backtest(&inc, &[&events], &[]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}");
    assert!(
        table.contains("PASS: 3 of 3 incidents caught (2 before breach), 0 false pages"),
        "{table}"
    );
    assert!(table.contains("INC-D"), "{table}");
}

#[test]
fn gzip_and_split_files_give_the_same_figures_and_bad_lines_are_counted() {
    let f = Fixture::new("inputs");
    let text = history();
    let inc = f.file("incidents.json", incidents(false).as_bytes());
    let plain = f.file("events.ndjson", text.as_bytes());
    let whole = json(&f.backtest(&inc, &[&plain], &["--format", "json"]));
    // The first half gzip'd under a name that does not say so, then the rest
    // with a broken line in front.
    let lines: Vec<&str> = text.lines().collect();
    let (head, tail) = lines.split_at(lines.len() / 2);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all((head.join("\n") + "\n").as_bytes()).unwrap();
    let first = f.file("part1.dat", &gz.finish().unwrap());
    let second = f.file(
        "part2.ndjson",
        format!("{{not json\n{}\n", tail.join("\n")).as_bytes(),
    );
    let out = f.backtest(&inc, &[&first, &second], &["--format", "json"]);
    assert_eq!(json(&out), whole);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("802 events: 801 applied, 0 late, 0 refused, 1 rejected (invalid_json=1)"),
        "{stderr}"
    );
}

#[test]
fn a_sweep_prints_one_row_per_value_from_one_pass() {
    let f = Fixture::new("sweep");
    let events = f.file("events.ndjson", history().as_bytes());
    let inc = f.file("incidents.json", incidents(true).as_bytes());
    let out = f.backtest(
        &inc,
        &[&events],
        &[
            "--sweep",
            "ErrorsHigh.critical.value=10,25",
            "--format",
            "json",
        ],
    );
    // 10 passes; 25 (above every burst's 20) catches nothing: some value passes.
    assert_eq!(out.status.code(), Some(0));
    let doc = json(&out);
    assert_eq!(doc["sweep"], "ErrorsHigh.critical.value");
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["value"], "10");
    assert_eq!(runs[0]["report"]["overall"]["caught"], 3);
    assert_eq!(runs[1]["report"]["overall"]["caught"], 0);
    assert_eq!(runs[1]["report"]["overall"]["episodes"], 0);
    let table = f.backtest(
        &inc,
        &[&events],
        &["--sweep", "ErrorsHigh.critical.value=10,25"],
    );
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("25 ") && l.contains(" 0 ")),
        "{table}"
    );
}

#[test]
fn a_bad_incident_file_or_sweep_is_refused_with_what_to_fix() {
    let f = Fixture::new("refusals");
    let events = f.file("events.ndjson", history().as_bytes());
    let bad = f.file(
        "bad.json",
        br#"[{"id":"X","service":"cart","start":5,"end":1}]"#,
    );
    let out = f.backtest(&bad, &[&events], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.json") && stderr.contains("`end` is before `start`"),
        "{stderr}"
    );
    let inc = f.file("incidents.json", incidents(true).as_bytes());
    let out = f.backtest(&inc, &[&events], &["--sweep", "NoSuchRule.for=1m"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no rule named `NoSuchRule`"), "{stderr}");
    assert_eq!(out.status.code(), Some(2));
}

/// `--recorded` scores published alerts (here what `replay` printed for the
/// hand-checked history, every line twice, as an at-least-once topic may hold
/// them after a crash) with the same figures as the backtest of the events;
/// a line that is not an alert, or names a rule the config lacks, is refused
/// with its file and line.
#[test]
fn recorded_alerts_give_the_backtest_figures_and_repeats_count_once() {
    let f = Fixture::new("recorded");
    let events = f.file("events.ndjson", history().as_bytes());
    let inc = f.file("incidents.json", incidents(false).as_bytes());
    let replay = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args(["replay", "--config"])
        .arg(f.dir.join("config.toml"))
        .arg(&events)
        .output()
        .unwrap();
    assert!(replay.status.success());
    let printed = String::from_utf8(replay.stdout).unwrap();
    let twice: String = printed.lines().flat_map(|l| [l, "\n", l, "\n"]).collect();
    let alerts = f.file("alerts.ndjson", twice.as_bytes());
    let from_events = json(&f.backtest(&inc, &[&events], &["--format", "json"]));
    let out = f.backtest(&inc, &[&alerts], &["--format", "json", "--recorded"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "the missed incident still fails it"
    );
    let from_alerts = json(&out);
    assert_eq!(from_alerts["incidents"], from_events["incidents"]);
    for figure in [
        "caught",
        "missed",
        "delay_seconds",
        "lead_seconds",
        "episodes",
        "false_pages",
        "flaps",
        "firing_hours",
    ] {
        assert_eq!(
            from_alerts["overall"][figure], from_events["overall"][figure],
            "{figure}"
        );
    }
    assert_eq!(
        from_alerts["overall"]["episodes"], 4,
        "repeats counted once"
    );

    let foreign = printed.replace(
        "\"alertname\":\"ErrorsHigh\"",
        "\"alertname\":\"Elsewhere\"",
    );
    let foreign = f.file("foreign.ndjson", foreign.as_bytes());
    let out = f.backtest(&inc, &[&foreign], &["--recorded"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("foreign.ndjson:") && stderr.contains("`Elsewhere`"),
        "{stderr}"
    );
    let junk = f.file("junk.ndjson", b"{\"ts\":1}\n");
    let out = f.backtest(&inc, &[&junk], &["--recorded"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("junk.ndjson:1: not a published alert"),
        "{stderr}"
    );
}
