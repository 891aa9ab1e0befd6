#!/usr/bin/env bash
# Usage: bench/fork.sh [RUNS]   (RUNS: 3 by default)
#
# `lago fork` under TCG: a 1-VM and a 3-VM `tiny` environment, each booted afresh for every run,
# forked into 1, 4 and 8 copies; best of RUNS for each figure:
#   - fork: the time of `lago fork --count N`, which returns once every VM of every copy (and of
#     the origin) runs again (goal for 8 copies of 3 VMs: under 1.5 s);
#   - first command, all copies at once: right after the fork returns, `lago shell vm01 true` in
#     every copy at once (each tried again until it answers); the slowest one's end, from the
#     fork's return (goal: at most 0.5 s in each copy);
#   - first command, one copy at a time (3-VM copies): then, copy after copy, the first command
#     in its vm02; the slowest one's own time;
#   - PSS of idle copies: as many copies made again of the same frozen state (`--from-frozen`),
#     left 5 s; the largest copy's PSS (the sum over its qemu processes) and all copies' together,
#     as ratios to the origin's PSS before the fork (goal for 8 copies: at most 1.0x together,
#     0.125x each); and the same for the first copies, 5 s after their first command;
#   - the frozen memory files' size on the tmpfs (pages no process maps are in no PSS);
# beside booting the same number of environments (`lago start` of N prefixes at once: the time
# until every VM answers SSH, and their PSS), once per size;
# then the pytest plugin's per-test reset with `lago_env_reset = fork` of the 3-VM environment,
# best of 5 tests (goal: at most 0.3 s), when `$PYTHON` (python3 by default) has pytest and the
# `lago` package.
# LAGO_BENCH_REPO=DIR takes a built `tiny` repository instead of building one.
set -euo pipefail
runs="${1:-3}"
source "$(dirname "$0")/lib.sh" fork
export LAGO__TEMPLATE__BUILD_CACHE="${LAGO_BENCH_CACHE:-/var/tmp/lago-bench-cache}"
python="${PYTHON:-python3}"
if [ -n "${LAGO_BENCH_REPO:-}" ]; then
  cp -r "$LAGO_BENCH_REPO" "$work/repo"
else
  "$lago" --loglevel error template build tiny --repo-dir "$work/repo" >/dev/null
fi

# PSS in MiB of the qemu processes of the prefixes in workdir DIR named NAMES...: one figure
# per prefix, then their sum.
pss() {
  python3 - "$@" <<'PY'
import os, sys
workdir, names = sys.argv[1], sys.argv[2:]
figures = []
for name in names:
    total = 0
    run = os.path.join(workdir, name, "run")
    for f in os.listdir(run):
        if not f.endswith(".pid") or f.startswith("switch-"):
            continue
        pid = open(os.path.join(run, f)).read().strip()
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    figures.append(total / 1024)
print(" ".join(f"{x:.1f}" for x in figures), f"{sum(figures):.1f}")
PY
}
# The tmpfs the frozen memory files of workdir DIR take, MiB.
frozen_mib() {
  python3 - "$1" <<'PY'
import glob, json, os, sys
total = 0
for manifest in glob.glob(os.path.join(sys.argv[1], ".frozen-*", "frozen.json")):
    for vm in json.load(open(manifest))["vms"].values():
        total += os.stat(vm["memory"]).st_blocks * 512
print(f"{total / 1048576:.0f}")
PY
}
# `lago shell VM true` in prefix NAME until it answers (200 tries at most).
try() {
  local i
  for i in $(seq 200); do
    "$lago" --prefix-name "$1" shell "$2" true 2>/dev/null && return 0
    sleep 0.05
  done
  echo "no answer from $2 of $1" >&2
  return 1
}
# `lago shell VM true` in each prefix NAMES... of the current workdir at once, each tried again
# until it answers; the slowest one's end, as seconds after T0.
first_commands() {
  local t0="$1" vm="$2" name pids=() d
  shift 2
  d="$(mktemp -d)"
  for name in "$@"; do
    ( try "$name" "$vm"; now > "$d/$name" ) &
    pids+=($!)
  done
  wait "${pids[@]}"
  cat "$d"/* | awk -v t0="$t0" 'BEGIN { m = 0 } { if ($1 - t0 > m) m = $1 - t0 } END { printf "%.2f", m }'
  rm -rf "$d"
}
# The first command in VM of each prefix NAMES..., one prefix after the other; the slowest one's
# own time.
one_by_one() {
  local vm="$1" name t0 worst=0 took
  shift
  for name in "$@"; do
    t0=$(now)
    try "$name" "$vm"
    took=$(secs "$t0" "$(now)")
    worst=$(awk -v a="$worst" -v b="$took" 'BEGIN { print (b > a) ? b : a }')
  done
  printf '%.2f' "$worst"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
max_of() { tr ' ' '\n' | sort -n | tail -1; }

rows=()
for vms in 1 3; do
  for count in 1 4 8; do
    forks=() firsts=() singles=() each=() alls=() ratios=() eachr=() used=() usedr=() frozen=()
    for run in $(seq "$runs"); do
      dir="$work/f$vms-$count-$run"
      tiny_init_file "$dir" "$vms"
      cd "$dir"
      "$lago" --loglevel error init
      "$lago" --loglevel error start
      sleep 5
      origin=$(pss "$dir/.lago" default | awk '{ print $NF }')
      t0=$(now)
      names=$("$lago" --loglevel error fork --count "$count")
      t1=$(now)
      forks+=("$(secs "$t0" "$t1")")
      # shellcheck disable=SC2086
      firsts+=("$(first_commands "$t1" vm01 $names)")
      # shellcheck disable=SC2086
      if [ "$vms" -gt 1 ]; then singles+=("$(one_by_one vm02 $names)"); fi
      sleep 5
      # shellcheck disable=SC2086
      all=$(pss "$dir/.lago" $names | awk '{ print $NF }')
      used+=("$all")
      usedr+=("$(ratio "$all" "$origin")")
      for name in $names; do "$lago" --loglevel error --prefix-name "$name" destroy -y; done
      # Idle copies of the same frozen state.
      names=$("$lago" --loglevel error fork --from-frozen --count "$count")
      sleep 5
      # shellcheck disable=SC2086
      figures=$(pss "$dir/.lago" $names)
      all=$(echo "$figures" | awk '{ print $NF }')
      worst=$(echo "$figures" | awk '{ $NF = ""; print }' | max_of)
      each+=("$worst")
      alls+=("$all")
      ratios+=("$(ratio "$all" "$origin")")
      eachr+=("$(ratio "$worst" "$origin")")
      frozen+=("$(frozen_mib "$dir/.lago")")
      "$lago" --loglevel error destroy -y --all-prefixes
      cd "$work"
    done
    single="—"
    [ ${#singles[@]} -gt 0 ] && single="$(printf '%s\n' "${singles[@]}" | best) s"
    rows+=("| $vms | $count | $(printf '%s\n' "${forks[@]}" | best) s | $(printf '%s\n' "${firsts[@]}" | best) s | $single | $(printf '%s\n' "${each[@]}" | best) MiB ($(printf '%s\n' "${eachr[@]}" | best)x) | $(printf '%s\n' "${alls[@]}" | best) MiB ($(printf '%s\n' "${ratios[@]}" | best)x) | $(printf '%s\n' "${used[@]}" | best) MiB ($(printf '%s\n' "${usedr[@]}" | best)x) | $(printf '%s\n' "${frozen[@]}" | best) MiB |")
  done
  # Booting as many environments instead, all at once (once per size: they take a while).
  for count in 1 4 8; do
    names=()
    for i in $(seq "$count"); do
      tiny_init_file "$work/b$vms-$count/e$i" "$vms"
      (cd "$work/b$vms-$count/e$i" && "$lago" --loglevel error init)
      names+=("e$i")
    done
    t0=$(now)
    pids=()
    for name in "${names[@]}"; do
      (cd "$work/b$vms-$count/$name" && "$lago" --loglevel error start) &
      pids+=($!)
    done
    wait "${pids[@]}"
    boot=$(secs "$t0" "$(now)")
    sleep 5
    total=0
    for name in "${names[@]}"; do
      p=$(pss "$work/b$vms-$count/$name/.lago" default | awk '{ print $NF }')
      total=$(awk -v a="$total" -v b="$p" 'BEGIN { print a + b }')
    done
    for name in "${names[@]}"; do (cd "$work/b$vms-$count/$name" && "$lago" --loglevel error destroy -y); done
    boots+=("| $vms | $count | $boot s | $(printf '%.0f' "$total") MiB |")
  done
done

echo "Forks (best of $runs; PSS ratios to the origin's PSS before the fork):"
echo
echo "| VMs | copies | fork: every VM running | first command, all copies at once (slowest, from the fork's return) | first command, one copy at a time (slowest) | PSS of an idle copy (the largest) | PSS of all idle copies | PSS of all copies after a first command | frozen memory files |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "Booting as many environments at once instead (one run each):"
echo
echo "| VMs | environments | every VM answering SSH | PSS of all |"
echo "|---|---|---|---|"
printf '%s\n' "${boots[@]}"

# The pytest plugin's reset with `lago_env_reset = fork` of the 3-VM environment.
if "$python" -c 'import pytest, lago.sdk' 2>/dev/null; then
  dir="$work/pytest"
  tiny_init_file "$dir" 3
  printf '[pytest]\nlago_init_file = LagoInitFile\nlago_env_reset = fork\n' > "$dir/pytest.ini"
  cat > "$dir/test_reset.py" <<'PY'
import pytest

@pytest.mark.parametrize("n", range(6))
def test_clean_then_dirty(lago_env, n):
    vm = lago_env.get_vms()["vm01"]
    assert vm.ssh(["test", "!", "-e", "/root/dirty"]).code == 0
    assert vm.ssh(["touch", "/root/dirty"]).code == 0
PY
  (cd "$dir" && "$python" -m pytest -q -p no:cacheprovider --junitxml="$dir/report.xml" >/dev/null)
  reset=$("$python" - "$dir/report.xml" <<'PY'
import re, sys, xml.etree.ElementTree as ET
times = [float(m.group(1)) for p in ET.parse(sys.argv[1]).iter("property") if p.get("name") == "lago_env_reset"
         for m in [re.search(r"renewed from its frozen state in ([0-9.]+) s", p.get("value", ""))] if m]
print(f"{min(times):.2f}")
PY
)
  echo
  echo "pytest, lago_env_reset = fork, 3 tiny VMs: per-test reset $reset s (best of 5)"
fi
