#!/usr/bin/env bash
# Sets the host up (scripts/setup.sh), builds lago and the `tiny` template, and walks through an
# environment's life cycle: init (3 VMs on two networks), start, shell, snapshot and revert,
# the Ansible inventory, stop, status, the Python SDK, destroy.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
# Builds lago and installs what this host lacks (qemu, template tools), as root or through sudo.
lago="$(bash "$repo/scripts/setup.sh")"

work="$(mktemp -d /tmp/lago-demo.XXXXXX)"
trap '(cd "$work" && "$lago" destroy --yes >/dev/null 2>&1) || true; rm -rf "$work"' EXIT
cd "$work"

# The `tiny` template, built from Debian packages into a local repository of the demo's own
# (`lago template build` publishes into the default repository when --repo-dir is not given).
export LAGO__INIT__TEMPLATE_REPO_PATH="$work/repo/repo.metadata" LAGO__INIT__TEMPLATE_STORE="$work/store"
"$lago" template build tiny --repo-dir "$work/repo"
"$lago" template list

# Three VMs on two networks (demo/LagoInitFile).
cp "$repo/demo/LagoInitFile" .
cat LagoInitFile
set -x
"$lago" init
"$lago" list
ls -ls .lago/default/images
# Boot all three (in parallel, under TCG unless KVM works here), then use them.
"$lago" start
"$lago" status
"$lago" shell web hostname -f
"$lago" shell app 'ping -c 1 db && ping -c 1 web.demo.local'
# A live snapshot of every VM; revert brings back the file and the running moment, no reboot.
"$lago" shell web 'echo kept > /root/note'
"$lago" snapshot clean
"$lago" shell web 'rm /root/note'
"$lago" revert clean
"$lago" shell web 'cat /root/note; cat /proc/uptime'
"$lago" ansible_hosts
"$lago" stop db
"$lago" -f yaml status
# The same environment from Python (the set-up installed the SDK).
python3 - <<'PY'
from lago import sdk
env = sdk.load_env(".lago")
for name, vm in sorted(env.get_vms().items()):
    print(name, vm.state(), vm.ssh(["hostname", "-f"]).out.strip() if vm.running() else "")
PY
"$lago" destroy --yes
