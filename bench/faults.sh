#!/usr/bin/env bash
# Benchmark of faults on demand (tiny template, TCG, 3 VMs of 256 MiB on one network), each
# figure the median of its runs:
#   - `lago net cut VM` / `lago net restore VM`: command to effect (the command returns once the
#     link is down or up; checked by a ping after each), target < 100 ms,
#   - `lago net partition NET G G` / `lago net heal NET`: the same, target < 100 ms,
#   - `lago snapshot` of the 3 running VMs (target < 2 s) and the spread between the first and
#     the last VM's pause (target < 50 ms), `lago revert` of them.
# Needs what `bash scripts/setup.sh` installs (qemu, the tools of `lago template build`).
set -euo pipefail
source "$(dirname "$0")/lib.sh" faults
"$lago" --loglevel error template build tiny --repo-dir "$work/repo" >/dev/null
tiny_init_file "$work/env" 3 lago
cd "$work/env"
"$lago" --loglevel error init
"$lago" --loglevel error start
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
reaches() { "$lago" shell vm01 "ping -c 1 -W 1 $1 >/dev/null" >/dev/null 2>&1; }
runs=10
cuts=() restores=() parts=() heals=()
for _ in $(seq $runs); do
  t0=$(now); "$lago" --loglevel error net cut vm03; cuts+=("$(ms "$t0" "$(now)")")
  reaches vm03 && { echo "vm03 still answers after the cut" >&2; exit 1; }
  t0=$(now); "$lago" --loglevel error net restore vm03; restores+=("$(ms "$t0" "$(now)")")
  t0=$(now); "$lago" --loglevel error net partition lago vm01,vm02 vm03; parts+=("$(ms "$t0" "$(now)")")
  reaches vm03 && { echo "vm03 still answers across the partition" >&2; exit 1; }
  t0=$(now); "$lago" --loglevel error net heal lago; heals+=("$(ms "$t0" "$(now)")")
  reaches vm03 || reaches vm03 || { echo "vm03 does not answer after heal" >&2; exit 1; }
done
echo "net cut:                        $(printf '%s\n' "${cuts[@]}" | median) ms (median of $runs; target < 100 ms)"
echo "net restore:                    $(printf '%s\n' "${restores[@]}" | median) ms"
echo "net partition:                  $(printf '%s\n' "${parts[@]}" | median) ms (target < 100 ms)"
echo "net heal:                       $(printf '%s\n' "${heals[@]}" | median) ms"

snaps=() spreads=() reverts=()
for i in 1 2 3; do
  t0=$(now); "$lago" --loglevel error snapshot "s$i"; snaps+=("$(secs "$t0" "$(now)")")
  spreads+=("$("$lago" -f json snapshot --list --extra | python3 -c "import json,sys; print(json.load(sys.stdin)['vm01']['s$i'][0]['pause_spread_ms'])")")
  t0=$(now); "$lago" --loglevel error revert "s$i"; reverts+=("$(secs "$t0" "$(now)")")
done
echo "snapshot, 3 running VMs:        $(printf '%s\n' "${snaps[@]}" | median) s (median of 3; target < 2 s)"
echo "pause spread of the 3 VMs:      $(printf '%s\n' "${spreads[@]}" | median) ms (target < 50 ms)"
echo "revert, 3 running VMs:          $(printf '%s\n' "${reverts[@]}" | median) s"
