#!/usr/bin/env bash
# Usage: scripts/test.sh [NEXTEST ARGS...]
#
# The project's test command: sets the host up for the tests (scripts/setup.sh --tests: qemu,
# template tools, mmdebstrap, guestfs-tools, ansible-core, the Python SDK and pytest), then runs
# every test, real VMs included: the Rust ones (`cargo nextest run --workspace --all-features`)
# and the Python SDK's (`python3 -m pytest crates/lago-py/tests`). With CI set, nextest's `ci`
# profile (no fail-fast) is used. Arguments go to nextest.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bash "$repo/scripts/setup.sh" --tests >/dev/null
profile=default
[ -n "${CI:-}" ] && profile=ci
cd "$repo"
status=0
cargo nextest run --workspace --all-features --profile "$profile" "$@" || status=$?
python3 -m pytest -q crates/lago-py/tests || status=$?
exit "$status"
