#!/usr/bin/env bash
# Installs the Kafka-compatible broker used by the integration tests (Tansu 0.6.0,
# from crates.io) into a cache directory, once; later runs reuse it.
# Prints the path of the tansu binary on stdout.
#   FOREWARN_CACHE  cache root (default: ~/.cache/forewarn)
# The first build takes about 10 minutes on 2 cores.
set -euo pipefail
version=0.6.0
root="${FOREWARN_CACHE:-$HOME/.cache/forewarn}/tansu-$version"
bin="$root/bin/tansu"
if [ ! -x "$bin" ]; then
  echo "installing tansu $version into $root (first time only)" >&2
  cargo install tansu --version "$version" --locked --features dynostore --root "$root" >&2
fi
echo "$bin"
