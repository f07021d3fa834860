//! Any bytes, read as lines of events: decoding never panics and the fast path
//! agrees with the serde path on every line; the accepted events run through an
//! engine using every aggregate and rule kind (fuzz/fuzz.toml) without panicking;
//! its snapshot serialises and reads back unchanged.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn config() -> &'static forewarn_core::Config {
    static CONFIG: OnceLock<forewarn_core::Config> = OnceLock::new();
    CONFIG.get_or_init(|| forewarn_core::Config::parse(include_str!("../fuzz.toml"), "fuzz.toml").unwrap())
}

fuzz_target!(|data: &[u8]| {
    let mut engine = forewarn_core::Engine::new(config().clone());
    let mut out = Vec::new();
    for line in data.split(|b| *b == b'\n') {
        let decoded = forewarn_core::decode(line);
        assert_eq!(decoded, forewarn_core::event::decode_slow(line));
        if let Ok(ev) = decoded {
            assert!(!ev.service.is_empty());
            assert!(ev.labels.len() <= forewarn_core::event::MAX_LABELS);
            // "now" follows the events so the future-skew check rarely rejects.
            engine.ingest(&ev, ev.ts, &mut out);
            engine.tick(ev.ts + 60_000, &mut out);
        }
    }
    engine.finish(&mut out);
    for t in &out {
        let alert = engine.render(t);
        assert_eq!(alert.fingerprint.len(), 16);
    }
    let snapshot = engine.snapshot();
    let json = serde_json::to_vec(&snapshot).expect("snapshot serialises");
    let back: forewarn_core::Snapshot = serde_json::from_slice(&json).expect("snapshot reads back");
    assert!(back == snapshot);
});
