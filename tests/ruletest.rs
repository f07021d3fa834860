//! `forewarn test`: the shipped rule tests of the example config pass, a wrong
//! expectation fails with a readable difference, and a broken test file is
//! refused with where it is broken.

use std::path::PathBuf;
use std::process::{Command, Output};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn forewarn_test(files: &[PathBuf]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .arg("test")
        .args(files)
        .output()
        .expect("run forewarn")
}

fn temp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("forewarn-ruletest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(
        &p,
        text.replace("CONFIG", &format!("{ROOT}/deploy/forewarn.example.toml")),
    )
    .unwrap();
    p
}

#[test]
fn the_example_configs_rule_tests_pass() {
    let files: Vec<PathBuf> = std::fs::read_dir(format!("{ROOT}/deploy/tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    assert!(!files.is_empty());
    let out = forewarn_test(&files);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(" 0 failed"), "{stderr}");
}

const WRONG: &str = r#"
config = "CONFIG"

[[test]]
name = "latency"
[[test.series]]
service = "search"
step = "10s"
requests = "100x179"
latency_ms = "200x59 4000x119"
[[test.expect]]
at = "20m"
alertname = "ServiceLatencyP99High"
firing = [{ labels = { service = "cart", severity = "critical" } }]
"#;

#[test]
fn a_wrong_expectation_fails_naming_what_was_missing_and_what_was_there() {
    let out = forewarn_test(&[temp("wrong.toml", WRONG)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("FAIL ") && stderr.contains("wrong.toml › latency: at 20m"),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"missing firing: {service="cart", severity="critical"}"#),
        "{stderr}"
    );
    assert!(
        stderr.contains("unexpected firing: {") && stderr.contains(r#"service="search""#),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 expectations: 0 passed, 1 failed"),
        "{stderr}"
    );
}

#[test]
fn a_broken_test_file_is_refused_with_where_and_why() {
    for (name, text, says, code) in [
        ("unknown.toml", "config = \"CONFIG\"\n[[test]]\nname = \"x\"\nseries_typo = []\n", "unknown field `series_typo`", 2),
        (
            "series.toml",
            "config = \"CONFIG\"\n[[test]]\nname = \"x\"\n[[test.series]]\nservice = \"a\"\nrequests = \"10x\"\n",
            "`requests`: `10x`",
            2,
        ),
        (
            "late.toml",
            "config = \"CONFIG\"\n[[test]]\nname = \"x\"\n[[test.series]]\nservice = \"a\"\nrequests = \"10x9\"\n[[test.expect]]\nat = \"2h\"\nalertname = \"ServiceSilent\"\n",
            "is after the last event",
            2,
        ),
    ] {
        let out = forewarn_test(&[temp(name, text)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{name}: {stderr}");
        assert!(stderr.contains(name) && stderr.contains(says), "{name}: {stderr}");
    }
}
