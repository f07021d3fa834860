#!/usr/bin/env bash
# Trains the failure-probability model on simulator seeds 1-20 of one scenario
# (or of both) and backtests it, beside the example config's static rules, on
# seeds 21-40 of the default and the varied scenarios and on seeds 1-5 of
# peak-day.toml, a scenario file no model or rule was tuned on (docs/MODEL.md,
# BENCHMARKS.md).
# Usage: scripts/model-eval.sh OUT_DIR [TRAIN_SCENARIO=default|varied|both]
# Extra `forewarn train` arguments: TRAIN_ARGS (e.g. "--max-false-pages-per-day 3").
# Seed k of a three-hour scenario starts at 2026-11-20T00:00Z + 3h*(k-1)
# (`both`: the varied seeds after the default ones, from +60h); seed k of
# peak-day at +12h*(k-1); --scale 0.3.
set -euo pipefail
out=${1:?usage: scripts/model-eval.sh OUT_DIR [default|varied]}
train=${2:-default}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release/forewarn
[ -x "$bin" ] || cargo build --release --locked --manifest-path "$root/Cargo.toml"
mkdir -p "$out"
base=$(date -u -d 2026-11-20T00:00:00Z +%s)

# simulate NAME FIRST LAST HOURS OFFSET_HOURS SIMULATE_ARGS...: one gzip'd
# event file and truth per seed, seed k starting OFFSET + HOURS*(k-1) hours in.
simulate() {
  local name=$1 first=$2 last=$3 hours=$4 offset=$5 k
  shift 5
  for k in $(seq "$first" "$last"); do
    local f=$out/$name-$k
    [ -s "$f.ndjson.gz" ] && continue
    "$bin" simulate "$@" --seed "$k" --scale 0.3 \
      --start "$(date -u -d @$((base + 3600 * (offset + hours * (k - 1)))) +%Y-%m-%dT%H:%M:%SZ)" \
      --truth "$f.json" --out - | gzip -1 > "$f.ndjson.gz.part"
    mv "$f.ndjson.gz.part" "$f.ndjson.gz"
  done
}
# files NAME FIRST LAST SUFFIX: the per-seed paths, in time order.
files() { local k; for k in $(seq "$2" "$3"); do echo "$out/$1-$k.$4"; done; }

case $train in
  default | varied) training=("$train 1 20") ;;
  both) training=("default 1 20" "varied-late 1 20") ;;
  *) echo "model-eval: unknown training scenario $train" >&2; exit 2 ;;
esac
held_out=("default 21 40" "varied 21 40" "peak 1 5")
simulate default 1 20 3 0 --scenario default &
simulate default 21 40 3 0 --scenario default &
wait
[ "$train" = varied ] && simulate varied 1 20 3 0 --scenario varied
[ "$train" = both ] && simulate varied-late 1 20 3 60 --scenario varied
simulate varied 21 40 3 0 --scenario varied &
simulate peak 1 5 12 0 --scenario-file "$root/crates/forewarn-sim/scenarios/peak-day.toml" &
wait

incidents() { files "$@" json | sed 's/^/--incidents /'; }
train_incidents=() train_files=()
for set in "${training[@]}"; do
  # Paths under OUT_DIR hold no spaces.
  # shellcheck disable=SC2086,SC2207
  train_incidents+=($(incidents $set)) train_files+=($(files $set ndjson.gz))
done
# shellcheck disable=SC2086
"$bin" train --config "$root/deploy/forewarn.example.toml" --no-progress \
  "${train_incidents[@]}" --out "$out/model-$train.json" ${TRAIN_ARGS:-} \
  "${train_files[@]}" | tee "$out/train-$train.txt"
cp "$root/deploy/forewarn.example.toml" "$out/static.toml"
{ cat "$root/deploy/forewarn.example.toml"
  printf '\n[[rules]]\nname = "FailureLikely"\nkind = "model"\nmodel = "model-%s.json"\nfor = "1m"\nkeep_firing_for = "5m"\n' "$train"
} > "$out/with-model-$train.toml"
# The model rule alone: the example's signals, none of its rules.
{ awk '/^\[/ { rule = ($0 ~ /^\[\[rules\]\]/ || $0 ~ /^\[+rules\./) } !rule' \
    "$root/deploy/forewarn.example.toml"
  printf '\n[[rules]]\nname = "FailureLikely"\nkind = "model"\nmodel = "model-%s.json"\nfor = "1m"\nkeep_firing_for = "5m"\n' "$train"
} > "$out/model-only-$train.toml"
"$bin" check "$out/model-only-$train.toml" > /dev/null
for set in "${held_out[@]}"; do
  held=${set%% *}
  for cfg in static with-model-$train model-only-$train; do
    [ "$cfg" = static ] && [ -s "$out/backtest-$held-static.json" ] && continue
    for format in text json; do
      # shellcheck disable=SC2046,SC2086
      "$bin" backtest --config "$out/$cfg.toml" --no-progress --format $format \
        $(incidents $set) $(files $set ndjson.gz) > "$out/backtest-$held-$cfg.${format/text/txt}" || true
    done
  done
done
tail -n +1 "$out"/backtest-*.txt
for set in "${held_out[@]}"; do
  held=${set%% *}
  echo "== $held: the model rule alone (A) against the static rules (B), incident by incident"
  python3 "$root/scripts/paired-lead.py" "$out/backtest-$held-model-only-$train.json" \
    "$out/backtest-$held-static.json"
done
