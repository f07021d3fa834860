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
    // forewarn reports healthy only when ready, on the port it listens on.
    let health = strs(&doc["services"]["forewarn"]["healthcheck"]["test"]).join(" ");
    assert!(
        health.contains(&format!("127.0.0.1/{port}")) && health.contains("/readyz"),
        "{health}"
    );
    assert_eq!(
        doc["services"]["simulator"]["depends_on"]["forewarn"]["condition"].as_str(),
        Some("service_healthy")
    );
    // The simulator feeds the topic forewarn consumes.
    let sim = strs(&doc["services"]["simulator"]["command"]);
    assert_eq!(arg_after(&sim, "--topic"), "service-events");
}

/// deploy/kubernetes: the ConfigMap's config passes `forewarn check`; probes hit
/// /healthz and /readyz on the port forewarn listens on; scrape annotations agree;
/// each pod has a static group membership from its stable name.
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
    let pod = &kind("StatefulSet")["spec"]["template"];
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
    // Hardened: a versioned image, never root, nothing writable but /tmp.
    let image = c["image"].as_str().unwrap();
    assert_eq!(
        image.rsplit_once(':').map(|t| t.1),
        Some(env!("CARGO_PKG_VERSION")),
        "{image}: the release's tag"
    );
    let pod_sec = &pod["spec"]["securityContext"];
    assert_eq!(pod_sec["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(pod_sec["runAsUser"].as_i64(), Some(IMAGE_UID));
    let sec = &c["securityContext"];
    assert_eq!(sec["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(sec["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(strs(&sec["capabilities"]["drop"]), ["ALL"]);
    for r in ["cpu", "memory"] {
        assert!(!c["resources"]["requests"][r].is_badvalue(), "{r} request");
    }
    // Static membership from the pod's stable name.
    let instance = c["env"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str() == Some("FOREWARN_KAFKA_GROUP_INSTANCE_ID"))
        .expect("a static group.instance.id");
    assert_eq!(
        instance["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("metadata.name")
    );
    assert_eq!(
        kind("StatefulSet")["spec"]["serviceName"].as_str(),
        kind("Service")["metadata"]["name"].as_str()
    );
    // A drain never takes every replica.
    let pdb = &kind("PodDisruptionBudget")["spec"];
    assert_eq!(pdb["minAvailable"].as_i64(), Some(1));
    assert_eq!(
        pdb["selector"]["matchLabels"],
        kind("StatefulSet")["spec"]["selector"]["matchLabels"]
    );
}

/// The uid the image runs as (Dockerfile `USER`).
const IMAGE_UID: i64 = 10001;

/// The Dockerfile: pinned base images, a non-root user, a healthcheck on the
/// endpoint the image listens on.
#[test]
fn dockerfile_is_pinned_non_root_and_healthchecked() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap();
    let froms: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    for image in &froms {
        let tag = image.split_once(':').map_or("", |t| t.1);
        assert!(
            tag.contains(|c: char| c.is_ascii_digit())
                && tag.contains('.')
                && !tag.contains("latest"),
            "{image}: pin a release (e.g. debian:12.12-slim), not a floating tag"
        );
    }
    let user = text
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .expect("a USER line");
    assert_eq!(user.split(':').next(), Some(IMAGE_UID.to_string().as_str()));
    let listen = text
        .lines()
        .find_map(|l| l.strip_prefix("ENV FOREWARN_LISTEN="))
        .expect("the image listens beyond loopback");
    let port = listen.rsplit(':').next().unwrap();
    assert!(listen.starts_with("0.0.0.0:"), "{listen}");
    let health = text
        .split("HEALTHCHECK")
        .nth(1)
        .expect("a HEALTHCHECK")
        .split("ENTRYPOINT")
        .next()
        .unwrap();
    assert!(
        health.contains(&format!("127.0.0.1/{port}")) && health.contains("/healthz"),
        "{health}"
    );
    assert!(text.contains(&format!("EXPOSE {port}")));
}

/// For Prometheus-operator users: the ServiceMonitor scrapes the Service's
/// named port, and the PrometheusRule carries exactly the meta-alerts that
/// `promtool` checks and unit-tests.
#[test]
fn prometheus_operator_resources_match_the_plain_ones() {
    let docs = load_yaml("deploy/kubernetes/prometheus-operator.yaml");
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"].as_str() == Some(k))
            .unwrap_or_else(|| panic!("{k}"))
    };
    let plain = load_yaml("deploy/kubernetes/forewarn.yaml");
    let service = plain
        .iter()
        .find(|d| d["kind"].as_str() == Some("Service"))
        .unwrap();
    let monitor = &kind("ServiceMonitor")["spec"];
    assert_eq!(
        monitor["selector"]["matchLabels"],
        service["metadata"]["labels"]
    );
    assert_eq!(
        monitor["endpoints"][0]["port"].as_str(),
        service["spec"]["ports"][0]["name"].as_str()
    );
    assert_eq!(monitor["endpoints"][0]["path"].as_str(), Some("/metrics"));
    let rules = &load_yaml("deploy/prometheus/rules/forewarn-meta.rules.yml")[0];
    assert_eq!(
        kind("PrometheusRule")["spec"]["groups"],
        rules["groups"],
        "the PrometheusRule and forewarn-meta.rules.yml must not drift"
    );
}
