#!/usr/bin/env bash
# Benchmark of the debian12 template (needs root, mmdebstrap, qemu-system-x86_64):
#   - `lago template build debian12` with the package cache filled (a cold build is the first
#     run of this script on a machine: its time is printed too),
#   - image size,
#   - `lago start` of one 1 GiB VM under TCG until SSH answers (median of $BOOTS boots, 3 by
#     default; BOOTS=0 measures only the build).
set -euo pipefail
cache="${LAGO_BENCH_CACHE:-/var/tmp/lago-bench-cache}"
source "$(dirname "$0")/lib.sh" debian12
export LAGO__TEMPLATE__BUILD_CACHE="$cache"

state=cached; [ -d "$cache/debian12-debs" ] || state=cold
t0=$(now); "$lago" --loglevel error template build debian12 --repo-dir "$work/repo" >/dev/null
echo "build debian12 ($state package cache): $(secs "$t0" "$(now)") s"
echo "image: $(stat -c %s "$work/repo/debian12-v1.qcow2") bytes"

mkdir -p "$work/env"
cat > "$work/env/LagoInitFile" <<'YAML'
domains:
  d1: {memory: 1024, nics: [{net: n}], disks: [{template_name: debian12, type: template, name: root}]}
nets:
  n: {}
YAML
cd "$work/env"
boots=()
[ "${BOOTS:-3}" -gt 0 ] || exit 0
for _ in $(seq "${BOOTS:-3}"); do
  "$lago" --loglevel error init
  t0=$(now); "$lago" --loglevel error start; boots+=("$(secs "$t0" "$(now)")")
  "$lago" --loglevel error destroy -y
done
echo "lago start, 1 debian12 VM, to SSH: $(printf '%s\n' "${boots[@]}" | median) s (median of ${#boots[@]}: ${boots[*]})"
