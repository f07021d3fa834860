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

use yaml_rust2::{Yaml, YamlLoader};

fn load_yaml(rel: &str) -> Vec<Yaml> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    YamlLoader::load_from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn strs(y: &Yaml) -> Vec<String> {
    y.as_vec()
        .map(|v| {
            v.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `forewarn check` accepts `text` as a config.
fn check_config(text: &str, name: &str) {
    let dir = std::env::temp_dir().join(format!("forewarn-deploy-{}-{name}", std::process::id()));
    std::fs::write(&dir, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .arg("check")
        .arg(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&dir);
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value after `flag` in a command list.
fn arg_after(cmd: &[String], flag: &str) -> String {
    let i = cmd
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} in {cmd:?}"));
    cmd[i + 1].clone()
}

/// docker-compose.yml (no Docker engine here): Kafka in KRaft mode, every
/// service built or pulled, every mounted file in the repository, forewarn's
/// HTTP port and Alertmanager URL matching Prometheus's and Grafana's
/// provisioning, dependencies defined, and forewarn's mounted config valid.
#[test]
fn compose_stack_is_consistent() {
    let doc = &load_yaml("docker-compose.yml")[0];
    let services = doc["services"].as_hash().expect("services");
    let names: Vec<&str> = services.keys().filter_map(Yaml::as_str).collect();
    for want in [
        "kafka",
        "forewarn",
        "simulator",
        "prometheus",
        "alertmanager",
        "grafana",
    ] {
        assert!(names.contains(&want), "service {want} missing: {names:?}");
    }
    assert!(
        !names.iter().any(|n| n.contains("zookeeper")),
        "KRaft, not ZooKeeper"
    );
    let roles = doc["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
        .as_str()
        .unwrap();
    assert!(
        roles.contains("controller") && roles.contains("broker"),
        "{roles}"
    );
    for (name, svc) in services {
        let name = name.as_str().unwrap();
        assert!(
            !svc["image"].is_badvalue() || !svc["build"].is_badvalue(),
            "{name} has neither image nor build"
        );
        for v in strs(&svc["volumes"]) {
            let host = v.split(':').next().unwrap();
            if host.starts_with("./") {
                let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(host);
                assert!(p.exists(), "{name} mounts missing {host}");
            }
        }
        if let Some(deps) = svc["depends_on"].as_hash() {
            for d in deps.keys().filter_map(Yaml::as_str) {
                assert!(names.contains(&d), "{name} depends on unknown {d}");
            }
        }
    }
    let fw = strs(&doc["services"]["forewarn"]["command"]);
    let port = arg_after(&fw, "--listen")
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let prom =
        std::fs::read_to_string(Path::new(DEPLOY).join("prometheus/prometheus.yml")).unwrap();
    assert!(
        prom.contains(&format!("forewarn:{port}")),
        "Prometheus scrapes forewarn:{port}"
    );
    assert!(arg_after(&fw, "--alertmanager").contains("//alertmanager:9093"));
    assert!(prom.contains("alertmanager:9093"));
    let mounted = strs(&doc["services"]["forewarn"]["volumes"])
        .into_iter()
        .find(|v| v.ends_with(&format!("{}:ro", arg_after(&fw, "--config"))))
        .expect("the --config file is mounted");
    let host = mounted.split(':').next().unwrap();
    check_config(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(host)).unwrap(),
        "compose",
    );
    // Grafana gets the provisioning and the dashboards where the provider looks.
    let provider = std::fs::read_to_string(
        Path::new(DEPLOY).join("grafana/provisioning/dashboards/forewarn.yml"),
    )
    .unwrap();
    let grafana = strs(&doc["services"]["grafana"]["volumes"]);
    assert!(grafana
        .iter()
        .any(|v| v.starts_with("./deploy/grafana/dashboards:")
            && provider.contains(v.split(':').nth(1).unwrap())));
    // The simulator feeds the topic forewarn consumes.
    let sim = strs(&doc["services"]["simulator"]["command"]);
    assert_eq!(arg_after(&sim, "--topic"), "service-events");
}

/// deploy/kubernetes: the ConfigMap's config passes `forewarn check`; probes hit
/// /healthz and /readyz on the port forewarn listens on; scrape annotations agree.
#[test]
fn kubernetes_manifests_are_consistent() {
    let docs = load_yaml("deploy/kubernetes/forewarn.yaml");
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"].as_str() == Some(k))
            .unwrap_or_else(|| panic!("{k}"))
    };
    check_config(
        kind("ConfigMap")["data"]["forewarn.toml"].as_str().unwrap(),
        "configmap",
    );
    let pod = &kind("Deployment")["spec"]["template"];
    let c = &pod["spec"]["containers"][0];
    let args = strs(&c["args"]);
    let port = arg_after(&args, "--listen")
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<i64>()
        .unwrap();
    assert_eq!(c["ports"][0]["containerPort"].as_i64(), Some(port));
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(
        pod["metadata"]["annotations"]["prometheus.io/port"].as_str(),
        Some(port.to_string().as_str())
    );
    assert_eq!(
        kind("Service")["spec"]["ports"][0]["port"].as_i64(),
        Some(port)
    );
}
