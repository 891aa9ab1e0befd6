#!/usr/bin/env bash
# Benchmark of the local-libvirt provider (tiny template, TCG), against a libvirtd started for the
# run in a network namespace of its own (scripts/libvirt-netns.sh). Prints, in one run:
#   - raw qemu booting tiny to SSH (the floor: its kernel directly, as in bench/vms.sh),
#   - `lago start` of 1 libvirt VM to SSH ready (target <= 1.15x the floor),
#   - `lago start` of 3 libvirt VMs (target <= 1.6x one VM on 2 cores),
#   - `lago status` with 3 VMs running (target < 50 ms),
#   - `lago snapshot` and `lago revert` of 3 running VMs (target < 2 s each; median of 3),
#   - `lago destroy` of 3 running VMs (target < 1 s).
# Needs root and what `bash scripts/setup.sh --tests` installs (qemu, libvirt, dnsmasq).
set -euo pipefail
source "$(dirname "$0")/lib.sh" libvirt
ns="lagobench$$"
raw_pid=""
cleanup() {
  [ -n "$raw_pid" ] && kill "$raw_pid" 2>/dev/null
  for d in "$work"/*/; do
    (cd "$d" 2>/dev/null && [ -d .lago ] && ip netns exec "$ns" "$lago" destroy -y >/dev/null 2>&1) || true
  done
  "$repo/scripts/libvirt-netns.sh" down "$ns" || true
  bench_cleanup
}
trap cleanup EXIT
"$repo/scripts/libvirt-netns.sh" up "$ns" "$work/libvirt"
export LAGO_DEFAULT_VM_PROVIDER=local-libvirt LAGO_LIBVIRT_URL=qemu+tcp://127.0.0.1/system
in_ns() { ip netns exec "$ns" "$@"; }
"$lago" --loglevel error template build tiny --repo-dir "$work/repo" >/dev/null

tiny_init_file "$work/one" 1
cd "$work/one" && in_ns "$lago" --loglevel error init
p="$work/one/.lago/default"
# The floor: qemu alone on the same disk and seed, booting the same kernel directly, no lago, no
# libvirt (user-mode networking on the VM's own subnet, so that the seed's static address
# answers), polled as lago polls.
mapfile -t boot < <(direct_boot_args)
port=$(free_port)
t0=$(now)
qemu-system-x86_64 -accel tcg -cpu max -m 256 -smp 1 -display none -nodefaults -device virtio-rng-pci "${boot[@]}" \
  -drive file="$p/images/vm01_root.qcow2",if=virtio,format=qcow2 -drive file="$p/images/vm01-seed.img",if=virtio,format=raw,readonly=on \
  -netdev user,id=u,restrict=on,net=192.168.200.0/24,host=192.168.200.1,hostfwd=tcp:127.0.0.1:$port-192.168.200.2:22 \
  -device virtio-net-pci,netdev=u,mac=54:52:c0:a8:c8:02,romfile= 2>/dev/null &
raw_pid=$!
wait_banner "$port"
until ssh -q -o BatchMode=yes -o ConnectTimeout=2 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -i "$p/id_rsa" -p "$port" root@127.0.0.1 true 2>/dev/null; do sleep 0.1; done
floor=$(secs "$t0" "$(now)")
kill "$raw_pid"; wait "$raw_pid" 2>/dev/null || true; raw_pid=""
echo "raw qemu, tiny to SSH:            ${floor} s"

t0=$(now); in_ns "$lago" --loglevel error start; one=$(secs "$t0" "$(now)")
echo "lago start, 1 libvirt VM, to SSH: ${one} s ($(awk -v a="$one" -v b="$floor" 'BEGIN { printf "%.2f", a / b }')x the floor)"
in_ns "$lago" destroy -y >/dev/null 2>&1

tiny_init_file "$work/three" 3
cd "$work/three" && in_ns "$lago" --loglevel error init
t0=$(now); in_ns "$lago" --loglevel error start; three=$(secs "$t0" "$(now)")
echo "lago start, 3 libvirt VMs:        ${three} s ($(awk -v a="$three" -v b="$one" 'BEGIN { printf "%.2f", a / b }')x one VM)"

runs=20
t0=$(now); for _ in $(seq $runs); do in_ns "$lago" status >/dev/null; done
echo "lago status, 3 VMs running:       $(awk -v a="$t0" -v b="$(now)" -v n=$runs 'BEGIN { printf "%.1f", (b - a) * 1000 / n }') ms (mean of $runs)"

snaps=() reverts=()
for i in 1 2 3; do
  t0=$(now); in_ns "$lago" --loglevel error snapshot "s$i"; snaps+=("$(secs "$t0" "$(now)")")
  in_ns "$lago" shell vm01 "echo $i > /root/f"
  t0=$(now); in_ns "$lago" --loglevel error revert "s$i"; reverts+=("$(secs "$t0" "$(now)")")
done
in_ns "$lago" shell vm01 'test ! -e /root/f' || { echo "revert did not restore the disk" >&2; exit 1; }
echo "snapshot, 3 running VMs:          $(printf '%s\n' "${snaps[@]}" | median) s (median of 3)"
echo "revert, 3 running VMs:            $(printf '%s\n' "${reverts[@]}" | median) s (median of 3)"

t0=$(now); in_ns "$lago" destroy -y >/dev/null 2>&1
echo "lago destroy, 3 running VMs:      $(secs "$t0" "$(now)") s"
