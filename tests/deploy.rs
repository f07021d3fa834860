//! The shipped deploy/ files load in the real tools: Alertmanager's routing
//! example passes `amtool check-config`, the Prometheus config (with its rule
//! files) passes `promtool check config`, and the meta-alert rules pass their
//! `promtool test rules` unit tests.

use std::path::Path;
use std::process::Command;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");

fn tool(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(Path::new(DEPLOY))
        .output()
        .unwrap_or_else(|e| {
            panic!("{cmd} (Debian packages prometheus, prometheus-alertmanager): {e}")
        });
    assert!(
        out.status.success(),
        "{cmd} {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alertmanager_routing_example_is_valid() {
    tool("amtool", &["check-config", "alertmanager/alertmanager.yml"]);
}

#[test]
fn prometheus_config_and_rules_are_valid() {
    tool(
        "promtool",
        &["check", "config", "prometheus/prometheus.yml"],
    );
}

#[test]
fn meta_alert_rules_pass_their_unit_tests() {
    tool(
        "promtool",
        &["test", "rules", "prometheus/rules/forewarn-meta.test.yml"],
    );
}
