#!/usr/bin/env bash
# Usage: bench/boot-profile.sh [TEMPLATE] [RUNS]
#
# Where the time of `lago start` goes, for one VM of TEMPLATE (tiny by default; debian12 and
# debian12-cloud need root and mmdebstrap) under TCG, RUNS times (1 by default), each from a new
# environment (a first boot). Prints, in seconds since `lago start` began:
#   qemu started        its pidfile written
#   console             the first byte on the serial console
#   kernel start        the guest's clock at zero (its uptime read over SSH, minus the time since)
#   kernel done         the kernel runs /init (dmesg)
#   root mounted        the root filesystem mounted (dmesg)
#   network up          the seed's addresses applied (tiny: rcS; systemd: networking.service)
#   sshd                sshd started (tiny: rcS; systemd: ssh.service)
#   first SSH command   `lago start` returned (it ends with a command over SSH)
# and `lago shell VM true` over the reused connection (the warm CLI round trip). With DISK_BOOT=1
# the template's kernel is removed from the store first, so the VM boots through its disk's own
# boot loader (the way every VM booted before direct boot).
set -euo pipefail
tpl="${1:-tiny}"
runs="${2:-1}"
source "$(dirname "$0")/lib.sh" "profile-$tpl"
export LAGO__TEMPLATE__BUILD_CACHE="${LAGO_BENCH_CACHE:-/var/tmp/lago-bench-cache}"
"$lago" --loglevel error template build "$tpl" --repo-dir "$work/repo" >/dev/null
memory=256
[ "$tpl" = tiny ] || memory=1024
mkdir -p "$work/env"
cat > "$work/env/LagoInitFile" <<YAML
domains:
  vm01: {memory: $memory, nics: [{net: n}], disks: [{template_name: $tpl, type: template, name: root}]}
nets:
  n: {}
YAML
cd "$work/env"
p=.lago/default
if [ -n "${DISK_BOOT:-}" ]; then
  "$lago" --loglevel error init && "$lago" --loglevel error destroy -y
  rm -f "$work"/store/*.vmlinux
fi
# Guest uptimes: now, then each step ("name seconds" per line).
probe='cut -d" " -f1 /proc/uptime
dmesg | awk -F"[][]" "/Run \/init as init process/ { print \"kernel_done\", \$2 + 0; exit }"
dmesg | awk -F"[][]" "/EXT4-fs \(.*\): mounted/ { print \"root_mounted\", \$2 + 0; exit }"
if [ -f /run/boot-times ]; then
    sed "s/^network /network_up /" /run/boot-times
else
    for u in networking:network_up ssh:sshd; do
        t=$(systemctl show -p ActiveEnterTimestampMonotonic --value "${u%%:*}.service")
        echo "${u##*:} $(awk -v t="$t" "BEGIN { print t / 1000000 }")"
    done
fi'
for run in $(seq "$runs"); do
  "$lago" --loglevel error init
  rm -f "$work/console.t"
  t0=$(now)
  ( while [ ! -s "$p/logs/vm01.console.log" ]; do sleep 0.01; done; now > "$work/console.t" ) &
  watcher=$!
  "$lago" --loglevel error start
  t_ssh=$(now)
  wait "$watcher" 2>/dev/null || true
  a=$(now); guest=$("$lago" shell vm01 -- "$probe"); b=$(now)
  warm=()
  for _ in 1 2 3 4 5; do w0=$(now); "$lago" shell vm01 true; warm+=("$(secs "$w0" "$(now)")"); done
  how=direct; [ -z "${DISK_BOOT:-}" ] || how="from its disk"
  echo "== $tpl, run $run of $runs (first boot, 1 VM, $memory MiB, TCG, kernel booted $how)"
  python3 - "$t0" "$(stat -c %.9Y "$p/run/vm01.pid")" "$(cat "$work/console.t" 2>/dev/null || echo nan)" \
    "$a" "$b" "$t_ssh" "$guest" <<'PY'
import sys
t0, pid, console, a, b, t_ssh = map(float, sys.argv[1:7])
lines = sys.argv[7].split("\n")
kernel = (a + b) / 2 - float(lines[0])
steps = dict(l.split()[:2] for l in lines[1:] if len(l.split()) >= 2)
rows = [("qemu started", pid), ("console", console), ("kernel start", kernel)]
for key, label in [("kernel_done", "kernel done"), ("root_mounted", "root mounted"), ("network_up", "network up"), ("sshd", "sshd")]:
    if key in steps:
        rows.append((label, kernel + float(steps[key])))
rows.append(("first SSH command", t_ssh))
rows.sort(key=lambda r: r[1] if r[1] == r[1] else float("inf"))
prev = 0.0
for label, t in rows:
    print(f"  {label:<18} {t - t0:6.2f} s   (+{t - t0 - prev:.2f})")
    prev = t - t0
PY
  echo "  lago shell vm01 true (warm): $(printf '%s\n' "${warm[@]}" | median) s (median of ${#warm[@]})"
  "$lago" --loglevel error destroy -y
done
