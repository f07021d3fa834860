#!/usr/bin/env bash
# Fuzzes the event decoder and the config loader for a bounded time each.
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
# Installs cargo-fuzz if missing. cargo-fuzz needs nightly-only flags; the stable
# toolchain accepts them with RUSTC_BOOTSTRAP=1 (no other toolchain is fetched).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p fuzz/corpus/decode fuzz/corpus/config
# Seed the corpora with real inputs.
head -n 50 tests/scenarios/checkout_incident.ndjson | split -l 1 - fuzz/corpus/decode/seed-
for f in tests/scenarios/*.ndjson; do head -c 4000 "$f" > "fuzz/corpus/decode/$(basename "$f")"; done
cp deploy/forewarn.example.toml tests/scenarios/*.toml fuzz/corpus/config/ 2>/dev/null || true
for target in decode config; do
  echo "== fuzz $target for ${secs}s"
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$secs" -max_len=4096
done
