//! Any bytes: decoding never panics, the fast path agrees with the serde path on
//! every input, and an accepted event feeds the engine safely.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded = forewarn_core::decode(data);
    assert_eq!(decoded, forewarn_core::event::decode_slow(data));
    if let Ok(ev) = decoded {
        assert!(!ev.service.is_empty());
        assert!(ev.labels.len() <= forewarn_core::event::MAX_LABELS);
        let cfg = forewarn_core::Config::parse(
            include_str!("../../deploy/forewarn.example.toml"),
            "example",
        )
        .unwrap();
        let mut engine = forewarn_core::Engine::new(cfg);
        let mut out = Vec::new();
        engine.ingest(&ev, ev.ts, &mut out);
        engine.finish(&mut out);
    }
});
