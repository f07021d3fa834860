//! Runs the default scenario through a config and prints the scorecard:
//! `cargo run --release -p forewarn-sim --example scorecard -- CONFIG [SEED] [SCALE]`.

use forewarn_core::Config;
use forewarn_sim::{default_scenario, fired_alerts, score};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: scorecard CONFIG [SEED] [SCALE]");
    let seed: u64 = args
        .next()
        .map_or(1, |s| s.parse().expect("SEED is a number"));
    let scale: f64 = args
        .next()
        .map_or(1.0, |s| s.parse().expect("SCALE is a number"));
    let src = std::fs::read_to_string(&path).expect("readable config");
    let cfg = Config::parse(&src, &path).unwrap_or_else(|e| panic!("{e}"));
    let mut scenario = default_scenario(seed, 1_795_172_400_000);
    scenario.scale = scale;
    let fired = fired_alerts(&scenario, cfg);
    let card = score(&scenario, &fired, 15 * 60_000);
    println!(
        "{}",
        serde_json::to_string_pretty(&card).expect("scorecard serialises")
    );
}
