#!/usr/bin/env bash
# Benchmark of the Python SDK (not a test): `import lago.sdk` (target < 100 ms: the import alone,
# python3's own start-up subtracted) and a warm `vm.ssh(['true'])` on a running tiny VM (target
# < 15 ms: the VM's session stays open in the process), median of 30. Needs what `bash scripts/setup.sh` installs.
set -euo pipefail
source "$(dirname "$0")/lib.sh" python
"$lago" --loglevel error template build tiny --repo-dir "$work/repo" >/dev/null
mkdir -p "$work/env"
cat > "$work/env/LagoInitFile" <<'YAML'
domains:
  vm01: {memory: 256, vcpu: 1, nics: [{net: n}], disks: [{template_name: tiny, type: template, name: root}]}
nets:
  n: {}
YAML
python3 - "$work/env" <<'PY'
import statistics, subprocess, sys, time
from pathlib import Path

def best_of(cmd, n=15):
    times = []
    for _ in range(n):
        t = time.perf_counter(); subprocess.run(cmd, check=True); times.append(time.perf_counter() - t)
    return statistics.median(times)

bare = best_of([sys.executable, "-c", "pass"])
imp = best_of([sys.executable, "-c", "import lago.sdk"])
print(f"import lago.sdk:              {1000 * (imp - bare):.1f} ms (python3 alone: {1000 * bare:.1f} ms)")

from lago import sdk
home = Path(sys.argv[1])
env = sdk.init(home / "LagoInitFile", workdir=home / ".lago")
try:
    t = time.perf_counter(); env.start(); started = time.perf_counter() - t
    vm = env.get_vms()["vm01"]
    vm.ssh(["true"])  # the master connection
    times = []
    for _ in range(30):
        t = time.perf_counter(); assert vm.ssh(["true"]).code == 0; times.append(time.perf_counter() - t)
    print(f"env.start(), 1 VM, to SSH:    {started:.2f} s")
    print(f"warm vm.ssh(['true']):        {1000 * statistics.median(times):.1f} ms median of 30 (min {1000 * min(times):.1f} ms)")
finally:
    env.destroy()
PY
