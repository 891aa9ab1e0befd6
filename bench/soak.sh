#!/usr/bin/env bash
# Soak benchmark (not a test): CYCLES (default 50) rounds of `lago start` / `lago shell` on each VM /
# `lago stop` of 3 tiny VMs, with acceleration as configured (`accel = auto` by default, so the
# KVM probe decides, as for users; `LAGO_ACCEL=tcg` to skip it). Any failure stops it and prints
# the command's output. Before and after, it counts what an environment holds on the host: qemu
# and switch processes, SSH master connections, files open by them, files in run/, and leases;
# the counts must be equal. Usage: bench/soak.sh [CYCLES]
set -euo pipefail
source "$(dirname "$0")/lib.sh" soak
export LAGO_ACCEL="${SOAK_ACCEL:-auto}"
cycles="${1:-50}"
"$lago" --loglevel error template build tiny --repo-dir "$work/repo" >/dev/null
tiny_init_file "$work/env" 3 && cd "$work/env"
"$lago" --loglevel error init
prefix="$work/env/.lago/default"
count() {
  local qemu switches ssh fds=0 pid
  qemu=$(pgrep -f -- "qemu-system-x86_64 .*$prefix/run/" | wc -l)
  switches=$(pgrep -f -- "--pidfile $prefix/run/switch-" | wc -l)
  ssh=$(pgrep -f -- "ControlPath=.*\.ssh" | wc -l)
  for pid in $(pgrep -f -- "pidfile $prefix/run/") $(pgrep -f -- "ControlPath=.*\.ssh"); do
    fds=$((fds + $(ls "/proc/$pid/fd" 2>/dev/null | wc -l)))
  done
  echo "qemu=$qemu switches=$switches ssh-masters=$ssh open-files=$fds run-files=$(ls "$prefix/run" | grep -vc '^state.json$\|^lock$' || true) leases=$(find "$LAGO_LEASE_DIR" -name '*.lease' 2>/dev/null | wc -l)"
}
"$lago" --loglevel error start && "$lago" --loglevel error stop
before=$(count)
echo "before: $before"
times=()
for i in $(seq 1 "$cycles"); do
  t0=$(now)
  if ! out=$("$lago" --loglevel error start 2>&1); then echo "cycle $i: start failed:"; echo "$out"; exit 1; fi
  t1=$(now)
  for vm in vm01 vm02 vm03; do
    got=$("$lago" shell "$vm" hostname 2>&1) || { echo "cycle $i: shell $vm failed: $got"; exit 1; }
    [ "$got" = "$vm" ] || { echo "cycle $i: shell $vm said: $got"; exit 1; }
  done
  "$lago" --loglevel error stop || { echo "cycle $i: stop failed"; exit 1; }
  times+=("$(secs "$t0" "$t1")")
  echo "cycle $i: start to SSH $(secs "$t0" "$t1") s"
done
after=$(count)
echo "after:  $after"
echo "start to SSH of 3 VMs, median of $cycles: $(printf '%s\n' "${times[@]}" | median) s"
[ "$before" = "$after" ] && echo "no leftovers: the counts are equal" || { echo "the counts differ"; exit 1; }
