#!/usr/bin/env bash
# Scores `forewarn detect` on the NAB files in ../shared/data/nab-dev with
# ../shared/tools/nab: NAB's hindsight threshold per profile, then the fixed
# threshold a deployed monitor runs with (0.5: 9 nats, about one observation
# in 8,000 of a well-calibrated series). Figures go in BENCHMARKS.md.
# Usage: scripts/nab.sh [OUT_DIR] [extra `forewarn detect` flags]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/nab}"
shift || true
shared="${FOREWARN_SHARED:-../shared}"
cargo build --release --locked --bin forewarn
python3 "$shared/tools/nab/run_detector.py" --cmd "target/release/forewarn detect $*" \
    --nab-root "$shared/data/nab-dev" --out "$out"
python3 "$shared/tools/nab/scorer.py" "$out" --nab-root "$shared/data/nab-dev" --threshold 0.5
