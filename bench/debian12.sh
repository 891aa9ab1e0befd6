#!/usr/bin/env bash
# Usage: bench/debian12.sh [TEMPLATE]   (debian12 by default, or debian12-cloud)
#
# Benchmark of a Debian 12 template (needs root, mmdebstrap, qemu-system-x86_64), in one run:
#   - `lago template build` with the package cache filled (a cold build is the first run of this
#     script on a machine: its time is printed too), and the image size,
#   - the floor: raw qemu booting the same image the same way (its kernel directly, the same
#     devices, 1 GiB, 2 vCPUs, TCG) with no seed, until sshd's banner,
#   - `lago start` of one such VM until a command ran over SSH (target: <= 1.2x the floor),
# each a first boot, alternated, $BOOTS times (3 by default; BOOTS=0 measures only the build).
set -euo pipefail
tpl="${1:-debian12}"
cache="${LAGO_BENCH_CACHE:-/var/tmp/lago-bench-cache}"
source "$(dirname "$0")/lib.sh" "$tpl"
export LAGO__TEMPLATE__BUILD_CACHE="$cache"
raw_pid=""
trap '[ -n "$raw_pid" ] && kill "$raw_pid" 2>/dev/null; bench_cleanup' EXIT

state=cached; [ -d "$cache/debian12-debs" ] || state=cold
t0=$(now); "$lago" --loglevel error template build "$tpl" --repo-dir "$work/repo" >/dev/null
echo "build $tpl ($state package cache): $(secs "$t0" "$(now)") s"
echo "image: $(stat -c %s "$work/repo/$tpl-v1.qcow2") bytes"
[ "${BOOTS:-3}" -gt 0 ] || exit 0

mkdir -p "$work/env"
cat > "$work/env/LagoInitFile" <<YAML
domains:
  d1: {memory: 1024, vcpu: 2, nics: [{net: n}], disks: [{template_name: $tpl, type: template, name: root}]}
nets:
  n: {}
YAML
cd "$work/env"
"$lago" --loglevel error init
image=$(ls "$work"/store/*"$tpl":v1)
mapfile -t boot < <(direct_boot_args)
"$lago" --loglevel error destroy -y

raws=() boots=()
for _ in $(seq "${BOOTS:-3}"); do
  qemu-img create -q -f qcow2 -F qcow2 -b "$image" "$work/raw.qcow2"
  port=$(free_port)
  t0=$(now)
  qemu-system-x86_64 -accel tcg,thread=single -cpu max -m 1024 -smp 2 -display none -nodefaults -device virtio-rng-pci "${boot[@]}" \
    -drive file="$work/raw.qcow2",if=virtio,format=qcow2 \
    -netdev user,id=u,restrict=on,hostfwd=tcp:127.0.0.1:$port-:22 -device virtio-net-pci,netdev=u,romfile= 2>/dev/null &
  raw_pid=$!
  wait_banner "$port"
  raws+=("$(secs "$t0" "$(now)")")
  kill "$raw_pid"; wait "$raw_pid" 2>/dev/null || true; raw_pid=""
  rm -f "$work/raw.qcow2"

  "$lago" --loglevel error init
  t0=$(now); "$lago" --loglevel error start; boots+=("$(secs "$t0" "$(now)")")
  "$lago" --loglevel error destroy -y
done
floor=$(printf '%s\n' "${raws[@]}" | median)
one=$(printf '%s\n' "${boots[@]}" | median)
echo "raw qemu, $tpl, no seed, to sshd's banner: $floor s (median of ${#raws[@]}: ${raws[*]})"
echo "lago start, 1 $tpl VM, to an SSH command: $one s (median of ${#boots[@]}: ${boots[*]}; $(awk -v a="$one" -v b="$floor" 'BEGIN { printf "%.2f", a / b }')x the floor)"
