#!/usr/bin/env bash
# Benchmark: wall time of `lago init` for a 3-VM environment with a cached template (target
# < 0.5 s), and the size of each overlay right after init (target < 1 MiB).
# Usage: bench/init.sh [runs]   (default 10 runs; prints min / median / max)
set -euo pipefail
runs="${1:-10}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
cargo build --quiet --release --manifest-path "$repo/Cargo.toml"
lago="$repo/target/release/lago"
work="$(mktemp -d /tmp/lago-bench.XXXXXX)"
trap 'rm -rf "$work"' EXIT
cd "$work"

"$repo/demo/blank-repo.sh" repo base 2G
export LAGO__INIT__TEMPLATE_REPO_PATH="$work/repo/repo.metadata" LAGO__INIT__TEMPLATE_STORE="$work/store"
cat > LagoInitFile <<'YAML'
base: &base
  memory: 256
  disks: [{template_name: base, type: template, name: root, dev: vda}]
domains:
  vm01: {<<: *base, nics: [{net: a}, {net: b}]}
  vm02: {<<: *base, nics: [{net: a}]}
  vm03: {<<: *base, nics: [{net: a}, {net: b}]}
nets:
  a: {management: true}
  b: {}
YAML
# Warm the store (the first init downloads the template).
"$lago" --loglevel error init >/dev/null
"$lago" destroy --yes >/dev/null 2>&1

times=()
for i in $(seq "$runs"); do
  start=$(date +%s%N)
  "$lago" --loglevel error init >/dev/null
  end=$(date +%s%N)
  times+=($(( (end - start) / 1000 )))
  if [ "$i" = 1 ]; then
    echo "overlay sizes after init (bytes on disk / apparent):"
    for f in .lago/default/images/*.qcow2; do
      echo "  $(basename "$f"): $(du -B1 "$f" | cut -f1) / $(stat -c %s "$f")"
    done
  fi
  "$lago" destroy --yes >/dev/null 2>&1
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
n=${#sorted[@]}
ms() { awk -v us="$1" 'BEGIN { printf "%.1f ms", us / 1000 }'; }
echo "lago init, 3 VMs, cached template, $n runs: min $(ms "${sorted[0]}"), median $(ms "${sorted[$((n / 2))]}"), max $(ms "${sorted[$((n - 1))]}")"
