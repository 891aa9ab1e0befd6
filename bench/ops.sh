#!/usr/bin/env bash
# Benchmark of operations on a running environment (tiny template, TCG, one 256 MiB VM), each
# repeated 5 times, median printed:
#   - `lago snapshot NAME` of the running VM (live: disks, memory, devices; target < 2 s),
#   - `lago revert NAME` of the running VM (target < 2 s),
#   - `lago export --standalone` of the stopped VM: time and size of the disk,
#   - `lago export` (layered): time and size.
# Needs what `bash scripts/setup.sh` installs (qemu, the tools of `lago template build`).
set -euo pipefail
source "$(dirname "$0")/lib.sh" ops
"$lago" --loglevel error template build tiny --repo-dir "$work/repo" >/dev/null
mkdir -p "$work/env"
cat > "$work/env/LagoInitFile" <<'YAML'
domains:
  vm01: {memory: 256, nics: [{net: n}], disks: [{template_name: tiny, type: template, name: root}]}
nets:
  n: {}
YAML
cd "$work/env"
"$lago" --loglevel error init
"$lago" --loglevel error start
# Some data in the guest, as a test would leave.
"$lago" shell vm01 -c 'dd if=/dev/urandom of=/root/blob bs=1M count=32 2>/dev/null; sync'

snaps=() reverts=()
for i in 1 2 3 4 5; do
  t0=$(now); "$lago" --loglevel error snapshot "s$i"; snaps+=("$(secs "$t0" "$(now)")")
  "$lago" shell vm01 -c "echo $i > /root/f"
  t0=$(now); "$lago" --loglevel error revert "s$i"; reverts+=("$(secs "$t0" "$(now)")")
done
"$lago" shell vm01 -c 'test ! -e /root/f' || { echo "revert did not restore the disk" >&2; exit 1; }
echo "snapshot, running 256 MiB VM:   $(printf '%s\n' "${snaps[@]}" | median) s (median of 5; target < 2 s)"
echo "revert, running 256 MiB VM:     $(printf '%s\n' "${reverts[@]}" | median) s (median of 5; target < 2 s)"

"$lago" --loglevel error stop
for kind in standalone layered; do
  times=()
  for i in 1 2 3; do
    rm -rf "$work/export-$kind"
    flag=(); [ "$kind" = standalone ] && flag=(--standalone)
    t0=$(now); "$lago" --loglevel error export "${flag[@]}" -d "$work/export-$kind"; times+=("$(secs "$t0" "$(now)")")
  done
  size=$(stat -c %s "$work/export-$kind/vm01_root.qcow2")
  echo "export $kind:$(printf '%*s' $((14 - ${#kind})) '') $(printf '%s\n' "${times[@]}" | median) s, disk $((size / 1024 / 1024)) MiB ($size bytes)"
done
