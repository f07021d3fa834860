//! `forewarn detect` speaks NAB's runner protocol: one score in [0, 1] per
//! input row, each written as its row arrives, on a real NAB file from
//! `../shared/data/nab-dev`. (Its NAB scores are in BENCHMARKS.md.)

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn nab_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/nab-dev/data")
        .join(rel)
}

/// The file's rows as `timestamp,value` lines, without the header.
fn rows(rel: &str) -> Vec<String> {
    let path = nab_file(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (the shared NAB data)", path.display()));
    text.lines().skip(1).map(str::to_string).collect()
}

/// `forewarn detect` with piped stdin and stdout.
fn detect() -> Child {
    Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .arg("detect")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn one_score_in_range_per_row_of_a_nab_file() {
    let rows = rows("realKnownCause/ec2_request_latency_system_failure.csv");
    let mut child = detect();
    let mut stdin = child.stdin.take().unwrap();
    let input = rows.join("\n") + "\n";
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success());
    let scores: Vec<f64> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(scores.len(), rows.len());
    assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
    // Not a constant: the file's incidents stand out from its noise.
    let top = scores.iter().copied().fold(0.0, f64::max);
    assert!(top > 0.3, "highest score {top}");
}

#[test]
fn each_score_is_written_before_the_next_row_is_sent() {
    let rows = rows("realAdExchange/exchange-2_cpc_results.csv");
    let mut child = detect();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    // Lock-step: a detector that buffers its output never answers row 1.
    for row in rows.iter().take(50) {
        writeln!(stdin, "{row}").unwrap();
        stdin.flush().unwrap();
        let score: f64 = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a score for the row just sent")
            .parse()
            .unwrap();
        assert!((0.0..=1.0).contains(&score));
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_bad_line_is_named_and_exits_3() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .arg("detect")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"2014-04-10 07:15:00,1\n2014-04-10 07:20:00,oops\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2") && err.contains("oops"), "{err}");
}
