//! Runs the default scenario through a config and prints the scorecard:
//! `cargo run --release -p forewarn-sim --example scorecard -- CONFIG [SEED] [SCALE]`.

use forewarn_core::{Config, Engine};
use forewarn_sim::{default_scenario, score, Fired, Simulator};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: scorecard CONFIG [SEED] [SCALE]");
    let seed: u64 = args.next().map_or(1, |s| s.parse().unwrap());
    let scale: f64 = args.next().map_or(1.0, |s| s.parse().unwrap());
    let cfg = Config::parse(&std::fs::read_to_string(&path).unwrap(), &path)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut scenario = default_scenario(seed, 1_795_172_400_000);
    scenario.scale = scale;
    let mut engine = Engine::new(cfg);
    let mut out = Vec::new();
    let mut fired = Vec::new();
    let now = scenario.start + scenario.duration + 3_600_000;
    for e in Simulator::new(scenario.clone()) {
        let ev = forewarn_core::decode(e.json.as_bytes()).unwrap();
        engine.ingest(&ev, now, &mut out);
        for t in out.drain(..) {
            if t.kind == forewarn_core::lifecycle::TransitionKind::Firing {
                let a = engine.render(&t);
                fired.push(Fired {
                    at: t.at,
                    service: a.labels["service"].clone(),
                    rule: a.labels["alertname"].clone(),
                });
            }
        }
    }
    let card = score(&scenario, &fired, 15 * 60_000);
    println!("{}", serde_json::to_string_pretty(&card).unwrap());
}
