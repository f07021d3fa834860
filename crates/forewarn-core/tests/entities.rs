//! Timer signals through the engine: a snapshot taken at any point of an
//! entity stream restores to an engine that continues exactly.

use forewarn_core::{decode, Config, Engine, Transition};

const CONFIG: &str = include_str!("../../../tests/scenarios/overdue_orders_page.toml");
const EVENTS: &str = include_str!("../../../tests/scenarios/overdue_orders_page.ndjson");
const NOW: i64 = 1_795_219_200_000; // 2026-11-21T00:00:00Z

fn feed(e: &mut Engine, lines: &[&str], out: &mut Vec<Transition>) {
    for l in lines {
        e.ingest(&decode(l.as_bytes()).unwrap(), NOW, out);
    }
}

#[test]
fn restored_engine_continues_an_entity_stream_exactly() {
    let cfg = Config::parse(CONFIG, "overdue_orders_page.toml").unwrap();
    let lines: Vec<&str> = EVENTS.lines().collect();
    let mut whole = Engine::new(cfg.clone());
    let mut expected = Vec::new();
    feed(&mut whole, &lines, &mut expected);
    whole.finish(&mut expected);
    assert_eq!(expected.len(), 2, "the scenario fires and resolves");
    for cut in [1, 100, 250, 400, 555, lines.len() - 3] {
        let mut first = Engine::new(cfg.clone());
        let mut out = Vec::new();
        feed(&mut first, &lines[..cut], &mut out);
        let json = serde_json::to_string(&first.snapshot()).unwrap();
        let mut second = Engine::restore(cfg.clone(), serde_json::from_str(&json).unwrap())
            .unwrap()
            .0;
        feed(&mut second, &lines[cut..], &mut out);
        second.finish(&mut out);
        assert_eq!(out, expected, "cut at {cut}");
        assert_eq!(second.snapshot(), whole.snapshot(), "cut at {cut}");
        assert_eq!(second.stats(), whole.stats());
    }
}
