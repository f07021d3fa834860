//! Any text: the config loader returns a config or a located error, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(src) = std::str::from_utf8(data) {
        match forewarn_core::Config::parse(src, "fuzz.toml") {
            Ok(cfg) => {
                let _ = cfg.summary();
                let _ = forewarn_core::Engine::new(cfg);
            }
            Err(e) => assert!(e.line >= 1 && e.column >= 1),
        }
    }
});
