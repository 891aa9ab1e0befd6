# Shared set-up of the VM benchmarks, sourced by them: builds lago (release), makes a work
# directory removed at exit (after destroying the environments under it), points the store,
# repository, leases and acceleration (TCG, no outbound traffic) there, and defines timing
# helpers. Usage: source bench/lib.sh NAME
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# LAGO_BENCH_BIN=PATH times that lago instead of a release build.
if [ -n "${LAGO_BENCH_BIN:-}" ]; then
  lago="$LAGO_BENCH_BIN"
else
  cargo build --quiet --release --manifest-path "$repo/Cargo.toml"
  lago="$repo/target/release/lago"
fi
work="$(mktemp -d "/tmp/lago-bench-$1.XXXXXX")"
bench_cleanup() {
  local d
  for d in "$work"/*/; do (cd "$d" 2>/dev/null && [ -d .lago ] && "$lago" destroy -y >/dev/null 2>&1) || true; done
  rm -rf "$work"
}
trap bench_cleanup EXIT
export LAGO__INIT__TEMPLATE_REPO_PATH="$work/repo/repo.metadata" LAGO__INIT__TEMPLATE_STORE="$work/store"
export LAGO_ACCEL=tcg LAGO_VM_OUTBOUND=false LAGO_HOST_LEG=off LAGO_LEASE_DIR="$work/leases" LAGO_NO_PROGRESS=1
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
best() { sort -n | head -n 1; }
# Waits for an SSH server's banner on 127.0.0.1:PORT on fresh connections of 400 ms each, as
# lago's first ones (lago keeps those not greeted yet open: see ssh::BannerProbe).
wait_banner() {
  python3 - "$1" <<'PY'
import socket, sys, time
while True:
    try:
        with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.4) as s:
            if s.recv(4) == b"SSH-":
                break
    except OSError:
        pass
    time.sleep(0.05)
PY
}
# qemu's direct-boot arguments for the one template in the store $work/store, one per line
# (read them with `mapfile -t`): -kernel, -initrd, -append as lago passes them.
direct_boot_args() {
  local image
  image=$(ls "$work"/store/*.vmlinux)
  image=${image%.vmlinux}
  printf '%s\n' -kernel "$image.vmlinux" -initrd "$image.initrd" -append \
    "$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['boot']['cmdline'])" "$image.metadata")"
}
# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Writes DIR/LagoInitFile: COUNT tiny VMs (vm01, vm02, ...; 256 MiB, 1 vCPU) on one network NET
# (`n` by default).
tiny_init_file() {
  local dir="$1" count="$2" net="${3:-n}" i
  mkdir -p "$dir"
  {
    echo "base: &base {memory: 256, vcpu: 1, disks: [{template_name: tiny, type: template, name: root}]}"
    echo "domains:"
    for i in $(seq "$count"); do printf '  vm%02d: {<<: *base, nics: [{net: %s}]}\n' "$i" "$net"; done
    printf 'nets:\n  %s: {}\n' "$net"
  } > "$dir/LagoInitFile"
}
