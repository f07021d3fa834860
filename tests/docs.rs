//! The event contract in docs/ (JSON Schema, examples, EVENTS.md) agrees with
//! the decoder: the same fields, enum spellings, limits and numeric ranges, and
//! every example decodes.

use std::path::Path;

use forewarn_core::decode;
use forewarn_core::event::{
    Category, Field, Kind, Outcome, Phase, MAX_ENTITY_LEN, MAX_LABELS, MAX_LABEL_NAME_LEN,
    MAX_LABEL_VALUE_LEN, MAX_SERVICE_LEN,
};
use serde_json::{json, Value};

const DOCS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs");

fn schema() -> Value {
    let text = std::fs::read_to_string(Path::new(DOCS).join("events.schema.json")).unwrap();
    serde_json::from_str(&text).expect("the schema is JSON")
}

fn spellings(all: &[&str]) -> Value {
    Value::from(all.to_vec())
}

#[test]
fn schema_fields_and_spellings_are_the_decoders() {
    let s = schema();
    let props = s["properties"].as_object().unwrap();
    let mut documented: Vec<&str> = props.keys().map(String::as_str).collect();
    let mut decoded: Vec<&str> = Field::ALL.iter().map(|f| f.as_str()).collect();
    documented.sort();
    decoded.sort();
    assert_eq!(documented, decoded, "schema properties vs decoder fields");
    assert_eq!(s["required"], json!(["ts", "service"]));
    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    let outcomes: Vec<&str> = Outcome::ALL.iter().map(|k| k.as_str()).collect();
    let categories: Vec<&str> = Category::ALL.iter().map(|k| k.as_str()).collect();
    let phases: Vec<&str> = Phase::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(props["kind"]["enum"], spellings(&kinds));
    assert_eq!(props["outcome"]["enum"], spellings(&outcomes));
    assert_eq!(props["category"]["enum"], spellings(&categories));
    assert_eq!(props["phase"]["enum"], spellings(&phases));
    assert_eq!(props["service"]["maxLength"], json!(MAX_SERVICE_LEN));
    assert_eq!(props["entity"]["maxLength"], json!(MAX_ENTITY_LEN));
    let labels = &props["labels"];
    assert_eq!(labels["maxProperties"], json!(MAX_LABELS));
    assert_eq!(
        labels["propertyNames"]["maxLength"],
        json!(MAX_LABEL_NAME_LEN)
    );
    assert_eq!(
        labels["additionalProperties"]["maxLength"],
        json!(MAX_LABEL_VALUE_LEN)
    );
}

/// Every numeric range the schema states is the one the decoder enforces: the
/// bounds are accepted, just beyond them is `out_of_range`.
#[test]
fn schema_ranges_are_enforced_exactly() {
    let s = schema();
    let mut checked = 0;
    for (name, p) in s["properties"].as_object().unwrap() {
        if p["type"] != "number" {
            continue;
        }
        let (lo, hi) = (
            p["minimum"].as_f64().unwrap(),
            p["maximum"].as_f64().unwrap(),
        );
        let event = |v: f64| {
            let mut e = json!({"ts": 1_700_000_000_000i64, "service": "s"});
            e[name] = json!(v);
            e.to_string()
        };
        for ok in [lo, hi] {
            assert!(decode(event(ok).as_bytes()).is_ok(), "{name} = {ok}");
        }
        for bad in [lo - 0.5, hi + hi.abs().max(1.0) * 1e-3] {
            let err = decode(event(bad).as_bytes()).expect_err(name);
            assert_eq!(err.reason(), "out_of_range", "{name} = {bad}");
        }
        checked += 1;
    }
    assert!(checked >= 4, "latency_ms, sla_ms, satisfaction, sentiment");
    let ts_max = s["properties"]["ts"]["oneOf"][1]["maximum"]
        .as_i64()
        .unwrap();
    for (ts, ok) in [(ts_max, true), (ts_max + 1, false)] {
        let e = json!({"ts": ts, "service": "s"}).to_string();
        assert_eq!(decode(e.as_bytes()).is_ok(), ok, "ts = {ts}");
    }
}

/// Every example decodes, every field is used by some example, and EVENTS.md
/// lists every example.
#[test]
fn every_example_decodes_and_is_listed() {
    let guide = std::fs::read_to_string(Path::new(DOCS).join("EVENTS.md")).unwrap();
    let mut used = std::collections::BTreeSet::new();
    let mut n = 0;
    for entry in std::fs::read_dir(Path::new(DOCS).join("events")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(e) = decode(text.trim_end().as_bytes()) {
            panic!("{name}: {e}");
        }
        let v: Value = serde_json::from_str(&text).unwrap();
        used.extend(v.as_object().unwrap().keys().cloned());
        assert!(
            guide.contains(&format!("(events/{name})")),
            "EVENTS.md lists {name}"
        );
        n += 1;
    }
    assert!(n >= 6, "one example per kind");
    for f in Field::ALL {
        assert!(
            used.contains(f.as_str()),
            "no example uses `{}`",
            f.as_str()
        );
    }
}
