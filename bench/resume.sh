#!/usr/bin/env bash
# Usage: bench/resume.sh [TEMPLATES...]   (default: tiny; debian12 needs root and mmdebstrap)
#
# Resume instead of boot, under TCG, best of 3 each:
#   - `lago start --boot` of the stopped environment (the boot `start --from` replaces),
#   - `lago start --from SNAPSHOT` of it (live snapshot: paused, loaded, resumed together),
#   - `lago revert SNAPSHOT` of the running environment,
# for 1 and 3 tiny VMs (and 1 VM of each other template named), each as a ratio to the boot.
set -euo pipefail
templates=("${@:-tiny}")
source "$(dirname "$0")/lib.sh" resume
export LAGO__TEMPLATE__BUILD_CACHE="${LAGO_BENCH_CACHE:-/var/tmp/lago-bench-cache}"
best() { sort -n | head -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
run() { # DIR LABEL
  local dir="$1" label="$2" boots=() froms=() reverts=() t0 i
  cd "$dir"
  "$lago" --loglevel error init
  "$lago" --loglevel error start
  "$lago" --loglevel error snapshot clean
  for i in 1 2 3; do
    "$lago" --loglevel error stop
    t0=$(now); "$lago" --loglevel error start --boot; boots+=("$(secs "$t0" "$(now)")")
    "$lago" --loglevel error stop
    t0=$(now); "$lago" --loglevel error start --from clean; froms+=("$(secs "$t0" "$(now)")")
    "$lago" shell vm01 -c 'echo dirty > /root/f'
    t0=$(now); "$lago" --loglevel error revert clean; reverts+=("$(secs "$t0" "$(now)")")
    "$lago" shell vm01 -c 'test ! -e /root/f' || { echo "revert did not restore the disk" >&2; exit 1; }
  done
  "$lago" --loglevel error destroy -y
  local boot from revert
  boot=$(printf '%s\n' "${boots[@]}" | best)
  from=$(printf '%s\n' "${froms[@]}" | best)
  revert=$(printf '%s\n' "${reverts[@]}" | best)
  printf '%-14s boot %6s s   start --from %5s s (%s× the boot)   revert %5s s (%s× the boot)\n' \
    "$label" "$boot" "$from" "$(ratio "$from" "$boot")" "$revert" "$(ratio "$revert" "$boot")"
}
for tpl in "${templates[@]}"; do
  "$lago" --loglevel error template build "$tpl" --repo-dir "$work/repo" >/dev/null
done
tiny_init_file "$work/one" 1
run "$work/one" "1 tiny"
tiny_init_file "$work/three" 3
run "$work/three" "3 tiny"
for tpl in "${templates[@]}"; do
  [ "$tpl" = tiny ] && continue
  mkdir -p "$work/$tpl"
  printf 'domains:\n  vm01: {memory: 1024, nics: [{net: n}], disks: [{template_name: %s, type: template, name: root}]}\nnets:\n  n: {}\n' \
    "$tpl" > "$work/$tpl/LagoInitFile"
  run "$work/$tpl" "1 $tpl"
done
