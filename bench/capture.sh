#!/usr/bin/env bash
# Usage: bench/capture.sh [RUNS]   (RUNS: 3 by default)
#
# `lago capture` and `lago replay` of a running 3-VM `tiny` environment under TCG, best of RUNS:
#   - capture: the time of `lago capture` (layered disks), from the command's start to the
#     artefact written, and the artefact's size; the same with `--standalone`;
#   - replay: the time of `lago replay` of each artefact into a new workdir, until every VM runs
#     again (the original destroyed first), and of the first command in a replayed VM after it.
# LAGO_BENCH_REPO=DIR takes a built `tiny` repository instead of building one.
set -euo pipefail
runs="${1:-3}"
source "$(dirname "$0")/lib.sh" capture
export LAGO__TEMPLATE__BUILD_CACHE="${LAGO_BENCH_CACHE:-/var/tmp/lago-bench-cache}"
if [ -n "${LAGO_BENCH_REPO:-}" ]; then
  cp -r "$LAGO_BENCH_REPO" "$work/repo"
else
  "$lago" --loglevel error template build tiny --repo-dir "$work/repo" >/dev/null
fi
size_mib() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.1f", b / 1048576 }'; }
declare -A figures
for run in $(seq "$runs"); do
  dir="$work/env-$run"
  tiny_init_file "$dir" 3
  (cd "$dir" && "$lago" init >/dev/null && "$lago" start >/dev/null)
  (cd "$dir" && "$lago" shell vm01 'echo kept > /root/kept; (sleep 10000 </dev/null >/dev/null 2>&1 &)' >/dev/null)
  for kind in layered standalone; do
    flag=(); [ "$kind" = standalone ] && flag=(--standalone)
    t0=$(now)
    (cd "$dir" && "$lago" capture "c-$kind" --output "$dir" "${flag[@]}" >/dev/null 2>&1)
    figures[capture-$kind]+="$(secs "$t0" "$(now)") "
    figures[size-$kind]+="$(size_mib "$dir/c-$kind.lago-capture") "
  done
  (cd "$dir" && "$lago" destroy -y >/dev/null)
  for kind in layered standalone; do
    t0=$(now)
    "$lago" replay "$dir/c-$kind.lago-capture" "$dir/r-$kind" >/dev/null 2>&1
    figures[replay-$kind]+="$(secs "$t0" "$(now)") "
    t0=$(now)
    "$lago" --workdir-path "$dir/r-$kind" shell vm01 'cat /root/kept; pidof sleep' >/dev/null
    figures[first-$kind]+="$(secs "$t0" "$(now)") "
    "$lago" --workdir-path "$dir/r-$kind" destroy -y >/dev/null
  done
  rm -rf "$dir"
done
pick() { tr ' ' '\n' | grep . | best; }
echo "| disks | capture (3 VMs) | artefact | replay: every VM running | first command after |"
echo "|---|---|---|---|---|"
for kind in layered standalone; do
  echo "| $kind | $(pick <<<"${figures[capture-$kind]}") s | $(pick <<<"${figures[size-$kind]}") MiB | $(pick <<<"${figures[replay-$kind]}") s | $(pick <<<"${figures[first-$kind]}") s |"
done
