#!/usr/bin/env bash
# Installs the Kafka-compatible broker used by the integration tests (Tansu 0.6.0,
# from crates.io) into a cache directory, once; later runs reuse it.
# Prints the path of the tansu binary on stdout; the build's output goes to a log
# in the cache, shown only if the build fails.
#   FOREWARN_CACHE  cache root (default: ~/.cache/forewarn)
set -euo pipefail
version=0.6.0
root="${FOREWARN_CACHE:-$HOME/.cache/forewarn}/tansu-$version"
bin="$root/bin/tansu"
if [ ! -x "$bin" ]; then
  mkdir -p "$root"
  log="$root/install.log"
  echo "setup: building the test broker Tansu $version into $root (once; about 15 minutes on 2 cores)" >&2
  start=$(date +%s)
  if ! cargo install tansu --version "$version" --locked --features dynostore --root "$root" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "setup: building Tansu failed (log: $log)" >&2
    exit 1
  fi
  if [ ! -x "$bin" ]; then
    echo "setup: cargo install finished but left no $bin (log: $log)" >&2
    exit 1
  fi
  echo "setup: Tansu built in $(( $(date +%s) - start )) s" >&2
fi
echo "$bin"
