#!/usr/bin/env bash
# Usage: bench/vms.sh [off|on]
#
# Benchmark of real VMs (tiny template, TCG): prints, in one run, the best of $ROUNDS rounds (3
# by default), each a first boot:
#   - raw qemu booting tiny to SSH (the floor: the same kernel booted directly, the same devices
#     and seed, polled the way lago polls), and three of them at once (what two cores give three
#     guests that need a core each: about 1.7x one on the machines here),
#   - `lago start` of 1 VM to SSH ready (target: <= 1.15x the floor),
#   - `lago start` of 3 VMs (target <= 1.5x one VM on 2 cores, and at most the three raw qemus),
# then, with 3 VMs running:
#   - `lago status` (target < 50 ms),
#   - a warm SSH round trip over the reused connection, as `Vm::ssh` does (target < 50 ms),
#   - `lago shell VM true`, warm (target < 50 ms),
#   - `lago destroy` of 3 running VMs.
# `off` (the default) runs with `host_leg = off`; `on` (as root) gives the networks their host
# leg, in a network namespace the benchmark makes (and deletes), floor included. lago's own
# connections go through the uplink either way: the two must not differ.
# Needs what `bash scripts/setup.sh` installs (qemu, the tools of `lago template build`).
set -euo pipefail
leg="${1:-off}"
case "$leg" in
  off) ;;
  on)
    if [ -z "${LAGO_BENCH_NETNS:-}" ]; then
      # The template is built out here (its packages come from the network), the rest runs in
      # the namespace.
      ns="lago-bench-$$"
      repo_dir="$(mktemp -d /tmp/lago-bench-repo.XXXXXX)"
      trap 'ip netns del "$ns" 2>/dev/null; rm -rf "$repo_dir"' EXIT
      cargo build --quiet --release --manifest-path "$(dirname "$0")/../Cargo.toml"
      "$(dirname "$0")/../target/release/lago" --loglevel error template build tiny --repo-dir "$repo_dir" >/dev/null
      ip netns add "$ns"
      ip -n "$ns" link set lo up
      LAGO_BENCH_NETNS="$ns" LAGO_BENCH_REPO="$repo_dir" ip netns exec "$ns" bash "$0" on
      exit
    fi ;;
  *) echo "usage: $0 [off|on]" >&2; exit 2 ;;
esac
source "$(dirname "$0")/lib.sh" vms
export LAGO_HOST_LEG="$leg"
echo "host leg: $leg"
raw_pids=()
trap '[ ${#raw_pids[@]} -gt 0 ] && kill "${raw_pids[@]}" 2>/dev/null; bench_cleanup' EXIT
if [ -n "${LAGO_BENCH_REPO:-}" ]; then
  cp -r "$LAGO_BENCH_REPO" "$work/repo"
else
  "$lago" --loglevel error template build tiny --repo-dir "$work/repo" >/dev/null
fi
tiny_init_file "$work/one" 1
tiny_init_file "$work/three" 3
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mean_ms() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.1f", (b - a) * 1000 / n }'; }

# The floor: COUNT qemus at once, each on a fresh copy of vm01's disk and seed of the
# environment in the current directory, the same devices, no lago; prints the seconds until
# every one ran a command over SSH.
raw_boot() {
  local count="$1" p i t0 port ports=()
  p="$PWD/.lago/default"
  mapfile -t boot < <(direct_boot_args)
  for i in $(seq "$count"); do cp "$p/images/vm01_root.qcow2" "$work/raw$i.qcow2"; ports+=("$(free_port)"); done
  t0=$(now)
  for i in $(seq "$count"); do
    qemu-system-x86_64 -accel tcg,thread=single -cpu max -m 256 -smp 1 -display none -nodefaults -device virtio-rng-pci "${boot[@]}" \
      -drive file="$work/raw$i.qcow2",if=virtio,format=qcow2 -drive file="$p/images/vm01-seed.img",if=virtio,format=raw,readonly=on \
      -netdev user,id=u,restrict=on,hostfwd=tcp:127.0.0.1:${ports[$((i - 1))]}-:22 -device virtio-net-pci,netdev=u,mac=52:54:c0:a8:c8:02,romfile= 2>/dev/null &
    raw_pids+=($!)
  done
  local waiters=()
  for port in "${ports[@]}"; do
    (
      wait_banner "$port"
      until ssh -q -o BatchMode=yes -o ConnectTimeout=2 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -i "$p/id_rsa" -p "$port" root@127.0.0.1 true 2>/dev/null; do sleep 0.1; done
    ) &
    waiters+=($!)
  done
  wait "${waiters[@]}"
  secs "$t0" "$(now)"
  kill "${raw_pids[@]}"; wait "${raw_pids[@]}" 2>/dev/null || true; raw_pids=()
  rm -f "$work"/raw*.qcow2
}

floors=() floors3=() ones=() threes=()
for round in $(seq "${ROUNDS:-3}"); do
  cd "$work/one" && "$lago" --loglevel error init
  floors+=("$(raw_boot 1)")
  floors3+=("$(raw_boot 3)")
  # A new environment: a first boot, as the floor's.
  "$lago" --loglevel error destroy -y && "$lago" --loglevel error init
  t0=$(now); "$lago" --loglevel error start; ones+=("$(secs "$t0" "$(now)")")
  "$lago" --loglevel error destroy -y

  cd "$work/three" && "$lago" --loglevel error init
  t0=$(now); "$lago" --loglevel error start; threes+=("$(secs "$t0" "$(now)")")
  [ "$round" = "${ROUNDS:-3}" ] || "$lago" --loglevel error destroy -y
done
floor=$(printf '%s\n' "${floors[@]}" | best)
floor3=$(printf '%s\n' "${floors3[@]}" | best)
one=$(printf '%s\n' "${ones[@]}" | best)
three=$(printf '%s\n' "${threes[@]}" | best)
echo "raw qemu, tiny to SSH:          ${floor} s (best of ${#floors[@]}: ${floors[*]})"
echo "3 raw qemus at once, to SSH:    ${floor3} s ($(ratio "$floor3" "$floor")x one; ${floors3[*]})"
echo "lago start, 1 VM, to SSH:       ${one} s ($(ratio "$one" "$floor")x the floor; ${ones[*]})"
echo "lago start, 3 VMs, to SSH:      ${three} s ($(ratio "$three" "$one")x one VM, $(ratio "$three" "$floor3")x 3 raw qemus; ${threes[*]})"

runs=20
t0=$(now); for _ in $(seq $runs); do "$lago" status >/dev/null; done
echo "lago status, 3 VMs running:     $(mean_ms "$t0" "$(now)" $runs) ms (mean of $runs)"

p="$work/three/.lago/default"
port=$(python3 -c "import json; print(json.load(open('$p/run/state.json'))['ssh_ports']['vm01'])")
ssh_cmd=(ssh -o BatchMode=yes -o LogLevel=ERROR -o UserKnownHostsFile="$p/known_hosts" -o HostKeyAlias=vm01 -o ControlMaster=auto -o ControlPath="$p/run/vm01.ssh" -o ControlPersist=120 -i "$p/id_rsa" -p "$port" root@127.0.0.1)
"${ssh_cmd[@]}" true
t0=$(now); for _ in $(seq $runs); do "${ssh_cmd[@]}" true; done
echo "warm SSH round trip (reused):   $(mean_ms "$t0" "$(now)" $runs) ms (mean of $runs)"
t0=$(now); for _ in $(seq $runs); do "$lago" shell vm01 true; done
echo "lago shell vm01 true (warm):    $(mean_ms "$t0" "$(now)" $runs) ms (mean of $runs)"

t0=$(now); "$lago" destroy -y >/dev/null 2>&1
echo "lago destroy, 3 running VMs:    $(secs "$t0" "$(now)") s"
