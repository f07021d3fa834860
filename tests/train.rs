//! `forewarn train` → model file → `model` rule, end to end through the
//! binary: two simulated runs back to back, a model trained on them, loaded by
//! `check` and run by `backtest`; a config whose signals changed refuses it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const EXAMPLE: &str = include_str!("../deploy/forewarn.example.toml");
const MODEL_RULE: &str = "\n[[rules]]\nname = \"FailureLikely\"\nkind = \"model\"\nmodel = \"model.json\"\nfor = \"1m\"\n";

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("forewarn-train-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn forewarn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args(args)
        .output()
        .expect("runs forewarn")
}

fn ok(out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    String::from_utf8(out.stdout).unwrap()
}

/// Seed `seed` of the default scenario, three hours from `start`.
fn simulate(dir: &Dir, seed: u32, start: &str) -> (PathBuf, PathBuf) {
    let (events, truth) = (
        dir.path(&format!("s{seed}.ndjson")),
        dir.path(&format!("t{seed}.json")),
    );
    let s = seed.to_string();
    let args = ["simulate", "--seed", &s, "--start", start, "--scale", "0.1"];
    let out = [events.to_str().unwrap(), truth.to_str().unwrap()];
    ok(forewarn(
        &[&args[..], &["--out", out[0], "--truth", out[1]]].concat(),
    ));
    (events, truth)
}

fn train(dir: &Dir) -> Value {
    train_with(dir, &[])
}

/// Trains on two seeds with `extra` arguments; returns the model file.
fn train_with(dir: &Dir, extra: &[&str]) -> Value {
    let (e1, t1) = simulate(dir, 1, "2026-11-20T00:00:00Z");
    let (e2, t2) = simulate(dir, 2, "2026-11-20T03:00:00Z");
    std::fs::write(dir.path("forewarn.toml"), EXAMPLE).unwrap();
    let model = dir.path("model.json");
    let stdout = ok(forewarn(
        &[
            "train",
            "--config",
            dir.path("forewarn.toml").to_str().unwrap(),
            "--incidents",
            t1.to_str().unwrap(),
            "--incidents",
            t2.to_str().unwrap(),
            "--out",
            model.to_str().unwrap(),
            "--no-progress",
            // Two time blocks keep the debug-build test quick.
            "--folds",
            "2",
        ]
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .chain([e1.to_str().unwrap(), e2.to_str().unwrap()])
        .collect::<Vec<_>>(),
    ));
    assert!(stdout.contains("out-of-fold AUC"), "{stdout}");
    assert!(
        stdout.contains("times a day outside incidents (budget 1)"),
        "{stdout}"
    );
    serde_json::from_str(&std::fs::read_to_string(model).unwrap()).unwrap()
}

#[test]
fn a_trained_model_loads_as_a_rule_pages_in_backtest_and_refuses_changed_signals() {
    let dir = Dir::new("round-trip");
    let model = train(&dir);
    assert_eq!(model["format"], "forewarn-model");
    assert_eq!(model["version"], 2);
    let signals: Vec<&str> = model["schema"]["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(signals.contains(&"request_error_rate") && signals.contains(&"orders_overdue_rate"));
    let auc = model["validation"]["auc"].as_f64().unwrap();
    assert!(
        auc > 0.6,
        "the simulated precursors are learnable: AUC {auc}"
    );

    let config = dir.path("with-model.toml");
    std::fs::write(&config, format!("{EXAMPLE}{MODEL_RULE}")).unwrap();
    let described = ok(forewarn(&["check", config.to_str().unwrap()]));
    assert!(
        described.contains("model model.json: P(SLA breach within 30m)"),
        "{described}"
    );

    let rule = backtest_model(&dir);
    assert!(rule["caught"].as_u64().unwrap() > 0, "{rule}");

    let changed = EXAMPLE.replacen("window = \"5m\"", "window = \"6m\"", 1);
    std::fs::write(&config, format!("{changed}{MODEL_RULE}")).unwrap();
    let out = forewarn(&["check", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("definitions of its signals changed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("forewarn train"),
        "says how to fix it: {stderr}"
    );
}

/// Runs `backtest` of the example plus the model rule over seed 2 and
/// returns the model rule's figures.
fn backtest_model(dir: &Dir) -> Value {
    let config = dir.path("with-model.toml");
    std::fs::write(&config, format!("{EXAMPLE}{MODEL_RULE}")).unwrap();
    let out = forewarn(&[
        "backtest",
        "--config",
        config.to_str().unwrap(),
        "--incidents",
        dir.path("t2.json").to_str().unwrap(),
        "--format",
        "json",
        "--no-progress",
        dir.path("s2.ndjson").to_str().unwrap(),
    ]);
    assert!(matches!(out.status.code(), Some(0 | 4)), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "FailureLikely")
        .unwrap_or_else(|| panic!("no FailureLikely in {report}"))
        .clone()
}

#[test]
fn a_forest_model_round_trips_and_pages_in_backtest() {
    let dir = Dir::new("forest");
    let model = train_with(&dir, &["--classifier", "forest"]);
    assert_eq!(model["classifier"]["type"], "forest");
    assert_eq!(model["validation"]["chosen"]["classifier"], "forest");
    let trees = model["classifier"]["trees"].as_array().unwrap();
    // The union of the two fold forests the level was chosen on.
    assert_eq!(model["validation"]["rows"]["folds"], 2);
    assert_eq!(trees.len(), 2 * 60);
    // No tree reads the time of day (the last two features).
    let width = model["schema"]["features"].as_array().unwrap().len() as u64;
    for t in trees {
        for n in t["nodes"].as_array().unwrap() {
            if n["left"] != n["right"] {
                assert!(n["feature"].as_u64().unwrap() < width - 2, "{n}");
            }
        }
    }
    let rule = backtest_model(&dir);
    assert!(rule["caught"].as_u64().unwrap() > 0, "{rule}");
}

#[test]
fn train_refuses_an_incident_file_it_cannot_read() {
    let dir = Dir::new("bad-incidents");
    std::fs::write(dir.path("forewarn.toml"), EXAMPLE).unwrap();
    std::fs::write(dir.path("bad.json"), "[{\"id\": 1}]").unwrap();
    std::fs::write(dir.path("e.ndjson"), "").unwrap();
    let out = forewarn(&[
        "train",
        "--config",
        dir.path("forewarn.toml").to_str().unwrap(),
        "--incidents",
        dir.path("bad.json").to_str().unwrap(),
        "--out",
        dir.path("m.json").to_str().unwrap(),
        dir.path("e.ndjson").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!Path::new(&dir.path("m.json")).exists());
}

#[test]
fn train_refuses_events_with_nothing_to_learn_and_says_why() {
    let dir = Dir::new("nothing-to-learn");
    std::fs::write(dir.path("forewarn.toml"), EXAMPLE).unwrap();
    std::fs::write(
        dir.path("i.json"),
        r#"[{"id":"x","service":"pay","start":"2026-11-20T00:10:00Z","end":"2026-11-20T00:20:00Z"}]"#,
    )
    .unwrap();
    std::fs::write(dir.path("e.ndjson"), "not json\n").unwrap();
    let out = forewarn(&[
        "train",
        "--config",
        dir.path("forewarn.toml").to_str().unwrap(),
        "--incidents",
        dir.path("i.json").to_str().unwrap(),
        "--out",
        dir.path("m.json").to_str().unwrap(),
        "--no-progress",
        dir.path("e.ndjson").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("training needs both classes"), "{stderr}");
    assert!(stderr.contains("1 lines rejected"), "{stderr}");
    assert!(!Path::new(&dir.path("m.json")).exists());
}
