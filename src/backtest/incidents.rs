//! The incident file `backtest` and `train` score against: what an incident
//! database export easily becomes.
//!
//! A JSON array of objects (or an object whose `incidents` member is one, which
//! is what `forewarn simulate --truth` writes):
//!
//! ```json
//! [{ "id": "INC-1042", "service": "checkout", "start": "2026-03-02T04:10:00Z",
//!    "end": "2026-03-02T05:00:00Z", "breach": "2026-03-02T04:40:00Z",
//!    "category": "system" }]
//! ```
//!
//! - `id`: string or number, unique;
//! - `service` (one) or `services` (several, any of which an alert may name);
//! - `start`, `end` and the optional `breach` (when the SLA was or would have
//!   been breached): RFC 3339 or epoch milliseconds. `precursor_start` and
//!   `sla_breach` are accepted for `start` and `breach`;
//! - `category`: optional; any other member is ignored.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use forewarn_core::time::{parse_rfc3339, Millis};
use serde_json::{Map, Value};

/// One incident from the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// Its id in the source system.
    pub id: String,
    /// Services an alert may name to count for it.
    pub services: Vec<String>,
    /// When it began.
    pub start: Millis,
    /// When it ended.
    pub end: Millis,
    /// When its SLA was breached, if known.
    pub breach: Option<Millis>,
    /// Failure category, if given.
    pub category: Option<String>,
}

/// Reads and checks an incident file; errors name the incident and the member.
pub fn load(path: &Path) -> anyhow::Result<Vec<Incident>> {
    let name = path.display();
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {name}"))?;
    parse(&text).with_context(|| format!("{name}: not a usable incident file"))
}

/// Reads several incident files into one list, in the order given. An id is
/// unique within its file; one that appears in more than one file (as when the
/// truth files of several simulated runs are combined) is qualified by its
/// file's name, `file.json:id`, so every report line stays distinct.
pub fn load_all(paths: &[std::path::PathBuf]) -> anyhow::Result<Vec<Incident>> {
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        files.push((path.display().to_string(), load(path)?));
    }
    let mut files_of: std::collections::HashMap<String, usize> = Default::default();
    for (_, list) in &files {
        for inc in list {
            *files_of.entry(inc.id.clone()).or_default() += 1;
        }
    }
    let mut all = Vec::new();
    for (name, list) in files {
        for mut inc in list {
            if files_of[&inc.id] > 1 {
                inc.id = format!("{name}:{}", inc.id);
            }
            all.push(inc);
        }
    }
    Ok(all)
}

/// Parses the text of an incident file.
pub fn parse(text: &str) -> anyhow::Result<Vec<Incident>> {
    let doc: Value = serde_json::from_str(text).context("not JSON")?;
    let items = match &doc {
        Value::Array(a) => a,
        Value::Object(o) => match o.get("incidents") {
            Some(Value::Array(a)) => a,
            _ => bail!("an object needs an `incidents` array; or give the array itself"),
        },
        _ => bail!("expected a JSON array of incidents"),
    };
    let mut seen = BTreeSet::new();
    let mut incidents = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let inc = incident(item).with_context(|| format!("incident {} (index {i})", i + 1))?;
        if !seen.insert(inc.id.clone()) {
            bail!(
                "incident {} (index {i}): id `{}` appears twice",
                i + 1,
                inc.id
            );
        }
        incidents.push(inc);
    }
    Ok(incidents)
}

fn incident(item: &Value) -> anyhow::Result<Incident> {
    let o = item
        .as_object()
        .ok_or_else(|| anyhow!("expected an object"))?;
    let id = match o.get("id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => bail!("`id` is missing: give a string or a number"),
    };
    let at = |names: &[&str]| -> anyhow::Result<Option<Millis>> {
        let Some((name, v)) = names.iter().find_map(|n| o.get(*n).map(|v| (n, v))) else {
            return Ok(None);
        };
        time(v)
            .map(Some)
            .ok_or_else(|| anyhow!("`{name}` ({v}) is neither RFC 3339 nor epoch milliseconds"))
    };
    let start = at(&["start", "precursor_start"])?
        .ok_or_else(|| anyhow!("id `{id}`: `start` is missing"))?;
    let end = at(&["end"])?.ok_or_else(|| anyhow!("id `{id}`: `end` is missing"))?;
    if end < start {
        bail!("id `{id}`: `end` is before `start`");
    }
    let category = match o.get("category") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    Ok(Incident {
        services: services(o).with_context(|| format!("id `{id}`"))?,
        breach: at(&["breach", "sla_breach"])?,
        id,
        start,
        end,
        category,
    })
}

fn services(o: &Map<String, Value>) -> anyhow::Result<Vec<String>> {
    let list: Vec<String> = match (o.get("service"), o.get("services")) {
        (Some(Value::String(s)), _) => vec![s.clone()],
        (None, Some(Value::Array(a))) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| anyhow!("`services` must be an array of strings"))?,
        _ => bail!("give `service` (a string) or `services` (an array of strings)"),
    };
    if list.is_empty() || list.iter().any(String::is_empty) {
        bail!("a service name is empty");
    }
    Ok(list)
}

/// RFC 3339, or epoch milliseconds as a number or a string of digits.
fn time(v: &Value) -> Option<Millis> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse::<i64>().ok().or_else(|| parse_rfc3339(s)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_time_forms_and_the_simulators_ground_truth_are_read() {
        let list = parse(
            r#"[{"id":7,"service":"cart","start":"2026-03-02T04:10:00Z","end":1772426400000,
                 "breach":"1772424000000","category":"system","owner":"team-a"}]"#,
        )
        .unwrap();
        assert_eq!(list[0].id, "7");
        assert_eq!(list[0].services, ["cart"]);
        assert_eq!(list[0].start, 1_772_424_600_000);
        assert_eq!(list[0].breach, Some(1_772_424_000_000));
        let truth = parse(
            r#"{"scenario":"s","incidents":[{"id":"a","services":["x","y"],
                "precursor_start":1000,"sla_breach":2000,"end":3000}]}"#,
        )
        .unwrap();
        assert_eq!(truth[0].services, ["x", "y"]);
        assert_eq!((truth[0].start, truth[0].breach), (1000, Some(2000)));
    }

    #[test]
    fn combined_files_keep_every_incident_and_qualify_only_shared_ids() {
        let dir = std::env::temp_dir().join(format!("forewarn-inc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.json");
        let b = dir.join("b.json");
        let item = |id: &str| format!(r#"{{"id":"{id}","service":"s","start":1,"end":2}}"#);
        std::fs::write(&a, format!("[{},{}]", item("x"), item("only-a"))).unwrap();
        std::fs::write(&b, format!("[{}]", item("x"))).unwrap();
        let all = load_all(&[a.clone(), b.clone()]).unwrap();
        let ids: Vec<&str> = all.iter().map(|i| i.id.as_str()).collect();
        let qualified = |p: &std::path::Path| format!("{}:x", p.display());
        assert_eq!(
            ids,
            [qualified(&a).as_str(), "only-a", qualified(&b).as_str()]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unusable_incidents_are_refused_naming_the_incident() {
        for (text, says) in [
            (
                r#"[{"id":"a","service":"s","start":5,"end":1}]"#,
                "`end` is before `start`",
            ),
            (r#"[{"id":"a","start":1,"end":2}]"#, "give `service`"),
            (r#"[{"service":"s","start":1,"end":2}]"#, "`id` is missing"),
            (
                r#"[{"id":"a","service":"s","start":"noon","end":2}]"#,
                "`start` (\"noon\")",
            ),
            (
                r#"[{"id":"a","service":"s","start":1,"end":2},{"id":"a","service":"s","start":1,"end":2}]"#,
                "appears twice",
            ),
            (r#"{"items":[]}"#, "`incidents` array"),
        ] {
            let e = format!("{:#}", parse(text).unwrap_err());
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
