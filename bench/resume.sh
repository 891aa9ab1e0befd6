#!/usr/bin/env bash
# Usage: bench/resume.sh [TEMPLATES...]   (default: tiny; debian12 needs root and mmdebstrap;
# pytest and the SDK as `bash scripts/setup.sh --tests` installs them)
#
# Resume instead of boot, under TCG, best of 3 each:
#   - `lago start --boot` of the stopped environment (the boot `start --from` replaces),
#   - `lago start --from SNAPSHOT` of it (live snapshot: paused, loaded, resumed together),
#   - `lago revert SNAPSHOT` of the running environment, and the first command after it (which
#     opens a new SSH connection: the guest's TCP state went back),
# for 1 and 3 tiny VMs (and 1 VM of each other template named), each as a ratio to the boot;
# then the pytest plugin's per-test reset (`lago_env_reset = revert`) of 1 tiny VM, as its
# report gives it, best of 4 tests, as a ratio to that boot.
set -euo pipefail
templates=("${@:-tiny}")
source "$(dirname "$0")/lib.sh" resume
export LAGO__TEMPLATE__BUILD_CACHE="${LAGO_BENCH_CACHE:-/var/tmp/lago-bench-cache}"
best() { sort -n | head -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
run() { # DIR LABEL
  local dir="$1" label="$2" boots=() froms=() reverts=() firsts=() t0 i
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
    # The first command after a revert connects anew (the guest's TCP state went back).
    t0=$(now); "$lago" shell vm01 -c 'test ! -e /root/f' || { echo "revert did not restore the disk" >&2; exit 1; }
    firsts+=("$(secs "$t0" "$(now)")")
  done
  "$lago" --loglevel error destroy -y
  local boot from revert first
  boot=$(printf '%s\n' "${boots[@]}" | best)
  from=$(printf '%s\n' "${froms[@]}" | best)
  revert=$(printf '%s\n' "${reverts[@]}" | best)
  first=$(printf '%s\n' "${firsts[@]}" | best)
  printf '%-14s boot %6s s   start --from %5s s (%s× the boot)   revert %5s s (%s× the boot), first command after it %5s s\n' \
    "$label" "$boot" "$from" "$(ratio "$from" "$boot")" "$revert" "$(ratio "$revert" "$boot")" "$first"
  last_boot=$boot
}
# The pytest plugin's reset before each test of a module: each test dirties the disk and
# checks it is clean again; the reset times come from the junit report's properties.
pytest_reset() { # DIR BOOT
  local dir="$1" boot="$2" reset
  mkdir -p "$dir"
  cp "$work/one/LagoInitFile" "$dir/LagoInitFile"
  printf '[pytest]\nlago_init_file = LagoInitFile\nlago_env_reset = revert\n' > "$dir/pytest.ini"
  cat > "$dir/test_reset.py" <<'PY'
import pytest

@pytest.mark.parametrize("n", range(5))
def test_clean_then_dirty(lago_env, n):
    vm = lago_env.get_vms()["vm01"]
    assert vm.ssh(["test", "!", "-e", "/root/dirty"]).code == 0
    assert vm.ssh(["touch", "/root/dirty"]).code == 0
PY
  (cd "$dir" && python3 -m pytest -q -p no:cacheprovider --junitxml="$dir/report.xml" >/dev/null)
  reset=$(python3 - "$dir/report.xml" <<'PY'
import re, sys, xml.etree.ElementTree as ET
times = [float(m.group(1)) for p in ET.parse(sys.argv[1]).iter("property") if p.get("name") == "lago_env_reset"
         for m in [re.search(r"reverted to \S+ in ([0-9.]+) s", p.get("value", ""))] if m]
print(f"{min(times):.2f}")
PY
)
  printf '%-14s per-test reset %5s s (%s× the boot)\n' "pytest, 1 tiny" "$reset" "$(ratio "$reset" "$boot")"
}
for tpl in "${templates[@]}"; do
  "$lago" --loglevel error template build "$tpl" --repo-dir "$work/repo" >/dev/null
done
tiny_init_file "$work/one" 1
run "$work/one" "1 tiny"
pytest_reset "$work/pytest" "$last_boot"
tiny_init_file "$work/three" 3
run "$work/three" "3 tiny"
for tpl in "${templates[@]}"; do
  [ "$tpl" = tiny ] && continue
  mkdir -p "$work/$tpl"
  printf 'domains:\n  vm01: {memory: 1024, nics: [{net: n}], disks: [{template_name: %s, type: template, name: root}]}\nnets:\n  n: {}\n' \
    "$tpl" > "$work/$tpl/LagoInitFile"
  run "$work/$tpl" "1 $tpl"
done
