//! Cost of a `model` rule: one evaluation's inference (features of the
//! example config's 12 service-level signals against their baselines, the
//! time of day, and the probability of a logistic model or of a forest of
//! depth-9 trees: 60, what one fit grows, and 240, the union of four fold
//! forests that `forewarn train` writes), and engine throughput on the
//! example config with and without a model rule, side by side in one run.
//!
//! The model is synthetic (every coefficient set): inference costs the same
//! whatever was learned. Run: `cargo bench --bench model` (BENCHMARKS.md).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use forewarn_core::model::features::{self, Baseline, Weights, PER_SIGNAL};
use forewarn_core::model::file::{FORMAT, VERSION};
use forewarn_core::model::{sigmoid, Classifier, FeatureSchema, Logistic, ModelFile};
use forewarn_core::rules::model::Model;
use forewarn_core::window::WindowValue;
use forewarn_core::{decode, Config, Engine};

const T0: i64 = 1_795_168_800_000;
const EVENTS: usize = 500_000;
const EXAMPLE: &str = include_str!("../deploy/forewarn.example.toml");

/// Requests and feedback for `services` services at 250 events a second:
/// half an hour of event time per 500k events.
fn events(services: u64) -> Vec<Vec<u8>> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..EVENTS as i64)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ts = T0 + i * 4;
            let svc = x % services;
            let line = if x % 10 == 0 {
                format!(r#"{{"ts":{ts},"service":"svc-{svc}","kind":"feedback","sentiment":0.2,"complaint":{}}}"#, x % 7 == 0)
            } else {
                let outcome = if x % 50 == 0 { "error" } else { "ok" };
                format!(r#"{{"ts":{ts},"service":"svc-{svc}","kind":"request","outcome":"{outcome}","latency_ms":{},"sla_ms":800}}"#, 40 + (x >> 20) % 900)
            };
            line.into_bytes()
        })
        .collect()
}

/// The example config plus a model rule reading `classifier`, written in
/// `dir`'s subdirectory `name`.
fn with_model(dir: &std::path::Path, name: &str, classifier: fn(usize) -> Classifier) -> Config {
    let plain = Config::parse(EXAMPLE, "example.toml").unwrap();
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let chosen = Model::readable_signals(&plain.signals);
    let schema = FeatureSchema::new(&plain.signals, &chosen, 30_000);
    let n = schema.features.len();
    let file = ModelFile {
        format: FORMAT.into(),
        version: VERSION,
        horizon_ms: 1_800_000,
        schema,
        prior_shift: -2.0,
        level: 0.5,
        classifier: classifier(n),
        validation: serde_json::Value::Null,
    };
    std::fs::write(
        dir.join("model.json"),
        serde_json::to_string(&file).unwrap(),
    )
    .unwrap();
    let src = format!("{EXAMPLE}\n[[rules]]\nname = \"FailureLikely\"\nkind = \"model\"\nmodel = \"model.json\"\n");
    let path = dir.join("forewarn.toml");
    Config::parse(&src, path.to_str().unwrap()).unwrap_or_else(|e| panic!("{e}"))
}

fn classifier(n: usize) -> Classifier {
    Classifier::Logistic(Logistic {
        mean: vec![0.1; n],
        scale: vec![1.5; n],
        weights: (0..n).map(|i| (i as f64 * 0.37).sin()).collect(),
        intercept: -3.0,
    })
}

/// `count` complete depth-9 trees on pseudo-random features and thresholds:
/// every walk takes the longest path a trained forest could. `preorder` lays each
/// tree out depth-first (left child next, as `forewarn train` writes them),
/// else breadth-first (children at 2i+1 and 2i+2).
fn forest_laid(n: usize, count: usize, preorder: bool) -> Classifier {
    use forewarn_core::model::forest::{Node, Tree};
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    const DEPTH: u32 = 9;
    let trees = (0..count)
        .map(|_| {
            // Breadth-first first; node i's depth-first index replaces it below.
            let count = (1u32 << (DEPTH + 1)) - 1;
            let nodes: Vec<Node> = (0..count)
                .map(|i| {
                    if i < (1 << DEPTH) - 1 {
                        Node {
                            feature: (next() % n as u64) as u32,
                            threshold: (next() % 100) as f32 / 50.0 - 1.0,
                            left: 2 * i + 1,
                            right: 2 * i + 2,
                            value: 0.5,
                        }
                    } else {
                        Node::leaf(i, (next() % 100) as f32 / 100.0)
                    }
                })
                .collect();
            let tree = Tree { nodes };
            if preorder {
                tree.depth_first().0
            } else {
                tree
            }
        })
        .collect();
    let f = forewarn_core::model::Forest { features: n, trees };
    f.check().unwrap();
    Classifier::Forest(f)
}

/// What one fit grows: 60 trees.
fn forest(n: usize) -> Classifier {
    forest_laid(n, 60, true)
}

/// What `forewarn train` writes with its default four folds: 240 trees.
fn forest_union(n: usize) -> Classifier {
    forest_laid(n, 240, true)
}

fn feed(cfg: &Config, lines: &[Vec<u8>]) -> Engine {
    let mut engine = Engine::new(cfg.clone());
    let mut out = Vec::with_capacity(4096);
    for l in lines {
        engine.ingest(&decode(l).unwrap(), T0 + 86_400_000, &mut out);
        out.clear();
    }
    engine
}

fn bench(c: &mut Criterion) {
    let signals = 12;
    let n = features::count(signals);
    let model = classifier(n);
    let trees = forest(n);
    let union = forest_union(n);
    let breadth_first = forest_laid(n, 60, false);
    let weights = Weights::new(30_000);
    let mut baselines = vec![Baseline::default(); signals];
    let mut x = vec![0f32; n];
    let mut step = 0u64;
    let mut group = c.benchmark_group("model");
    group.throughput(Throughput::Elements(1));
    for (name, model) in [
        ("inference_per_evaluation", &model),
        ("forest_inference_per_evaluation", &trees),
        ("forest240_inference_per_evaluation", &union),
        (
            "forest_breadth_first_inference_per_evaluation",
            &breadth_first,
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                step += 1;
                for (i, base) in baselines.iter_mut().enumerate() {
                    let w = WindowValue {
                        value: Some(0.02 + (step % 7) as f64 * 0.001 + i as f64),
                        events: 500,
                    };
                    base.features(
                        w,
                        weights,
                        &mut x[i * PER_SIGNAL.len()..(i + 1) * PER_SIGNAL.len()],
                    );
                }
                features::clock(
                    T0 + step as i64 * 30_000,
                    &mut x[signals * PER_SIGNAL.len()..],
                );
                sigmoid(model.logit(&x) - 2.0)
            })
        });
    }
    let dir = std::env::temp_dir().join(format!("forewarn-bench-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plain = Config::parse(EXAMPLE, "example.toml").unwrap();
    let modelled = with_model(&dir, "logistic", classifier);
    let forested = with_model(&dir, "forest", forest);
    let forested_union = with_model(&dir, "forest240", forest_union);
    let forested_bf = with_model(&dir, "breadth-first", |n| forest_laid(n, 60, false));
    group.sample_size(10);
    group.throughput(Throughput::Elements(EVENTS as u64));
    for services in [10u64, 1000] {
        let lines = events(services);
        let e = feed(&modelled, &lines);
        eprintln!("services={services}: stats {:?}", e.stats());
        let configs = [
            ("example", &plain),
            ("example+model", &modelled),
            ("example+forest", &forested),
            ("example+forest240", &forested_union),
            ("example+forest_breadth_first", &forested_bf),
        ];
        for (name, cfg) in configs {
            group.bench_with_input(BenchmarkId::new(name, services), &lines, |b, lines| {
                b.iter(|| feed(cfg, lines))
            });
        }
    }
    group.finish();
    std::fs::remove_dir_all(dir).ok();
}

criterion_group!(benches, bench);
criterion_main!(benches);
