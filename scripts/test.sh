#!/usr/bin/env bash
# Usage: scripts/test.sh [NEXTEST ARGS...]
#
# The project's test command: sets the host up for the tests (scripts/setup.sh --tests: qemu,
# template tools, mmdebstrap, guestfs-tools, ansible-core, the Python SDK and pytest), then runs
# every test, real VMs included: the Rust ones (`cargo nextest run --workspace --all-features`)
# and the Python SDK's (`python3 -m pytest crates/lago-py/tests`). With CI set, nextest's `ci`
# profile (no fail-fast) is used. Arguments go to nextest.
#
# The OpenStack provider's e2e tests (`openstack::`) run against a two-compute-node test cloud on
# this machine (scripts/openstack-cloud.sh, as root): its packages are installed first (once),
# then it comes up in the background while the other tests run, then its tests run alone (their
# servers use the same cores), then it goes down. Not root: they are left out, said on stderr.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bash "$repo/scripts/setup.sh" --tests >/dev/null
profile=default
[ -n "${CI:-}" ] && profile=ci
cd "$repo"
status=0
if [ "$(id -u)" = 0 ]; then
  cloud_log=target/openstack-cloud.log
  mkdir -p target
  # The packages first, in the foreground: genisoimage among them builds the config drive of
  # the `tiny` e2e test of nova's seed, which runs with the other tests.
  bash scripts/openstack-cloud.sh install >"$cloud_log" 2>&1 || { tail -20 "$cloud_log" >&2; exit 1; }
  bash scripts/openstack-cloud.sh up >>"$cloud_log" 2>&1 &
  cloud=$!
  trap 'bash scripts/openstack-cloud.sh down >>"$cloud_log" 2>&1 || true' EXIT
  cargo nextest run --workspace --all-features --profile "$profile" -E 'not test(/^openstack::/)' "$@" || status=$?
  if wait "$cloud"; then
    cargo nextest run -p lago-cli --all-features --profile "$profile" --test e2e --no-tests=warn -E 'test(/^openstack::/)' "$@" || status=$?
  else
    echo "test: the OpenStack test cloud did not come up (scripts/openstack-cloud.sh up):" >&2
    tail -20 "$cloud_log" >&2
    status=1
  fi
  grep -h '^\[openstack-cloud' "$cloud_log" | tail -3 >&2 || true
  bash scripts/openstack-cloud.sh down >>"$cloud_log" 2>&1 || { echo "test: openstack-cloud.sh down failed (see $cloud_log)" >&2; status=1; }
  trap - EXIT
else
  echo "test: not root: the OpenStack e2e tests (openstack::) are left out; they need scripts/openstack-cloud.sh up" >&2
  cargo nextest run --workspace --all-features --profile "$profile" -E 'not test(/^openstack::/)' "$@" || status=$?
fi
python3 -m pytest -q crates/lago-py/tests || status=$?
exit "$status"
