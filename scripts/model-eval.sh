#!/usr/bin/env bash
# Trains the failure-probability model on simulator seeds 1-20 of one scenario
# and backtests it, beside the example config's static rules, on seeds 21-40
# of the default and the varied scenarios (docs/MODEL.md, BENCHMARKS.md).
# Usage: scripts/model-eval.sh OUT_DIR [TRAIN_SCENARIO=default|varied]
# Extra `forewarn train` arguments: TRAIN_ARGS (e.g. "--max-false-pages-per-day 3").
# Seed k starts at 2026-11-20T00:00Z + 3h*(k-1), --scale 0.3.
set -euo pipefail
out=${1:?usage: scripts/model-eval.sh OUT_DIR [default|varied]}
train=${2:-default}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release/forewarn
[ -x "$bin" ] || cargo build --release --locked --manifest-path "$root/Cargo.toml"
mkdir -p "$out"
base=$(date -u -d 2026-11-20T00:00:00Z +%s)

# simulate SCENARIO FIRST LAST: one gzip'd event file and truth per seed.
simulate() {
  local scenario=$1 k
  for k in $(seq "$2" "$3"); do
    local f=$out/$scenario-$k
    [ -s "$f.ndjson.gz" ] && continue
    "$bin" simulate --scenario "$scenario" --seed "$k" --scale 0.3 \
      --start "$(date -u -d @$((base + 10800 * (k - 1))) +%Y-%m-%dT%H:%M:%SZ)" \
      --truth "$f.json" --out - | gzip -1 > "$f.ndjson.gz.part"
    mv "$f.ndjson.gz.part" "$f.ndjson.gz"
  done
}
# files SCENARIO FIRST LAST SUFFIX: the per-seed paths, in time order.
files() { local k; for k in $(seq "$2" "$3"); do echo "$out/$1-$k.$4"; done; }

simulate "$train" 1 20 &
simulate default 21 40 &
wait
simulate varied 21 40

incidents() { files "$@" json | sed 's/^/--incidents /'; }
# shellcheck disable=SC2046
"$bin" train --config "$root/deploy/forewarn.example.toml" --no-progress \
  $(incidents "$train" 1 20) --out "$out/model-$train.json" ${TRAIN_ARGS:-} \
  $(files "$train" 1 20 ndjson.gz) | tee "$out/train-$train.txt"
cp "$root/deploy/forewarn.example.toml" "$out/static.toml"
{ cat "$root/deploy/forewarn.example.toml"
  printf '\n[[rules]]\nname = "FailureLikely"\nkind = "model"\nmodel = "model-%s.json"\nfor = "1m"\nkeep_firing_for = "5m"\n' "$train"
} > "$out/with-model-$train.toml"
for held in default varied; do
  for cfg in static with-model-$train; do
    [ "$cfg" = static ] && [ -s "$out/backtest-$held-static.txt" ] && continue
    # shellcheck disable=SC2046
    "$bin" backtest --config "$out/$cfg.toml" --no-progress $(incidents "$held" 21 40) \
      $(files "$held" 21 40 ndjson.gz) > "$out/backtest-$held-$cfg.txt" || true
  done
done
tail -n +1 "$out"/backtest-*.txt
