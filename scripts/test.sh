#!/usr/bin/env bash
# Usage: scripts/test.sh [NEXTEST ARGS...]
#
# The project's test command: sets the host up for the tests (scripts/setup.sh --tests: qemu,
# template tools, mmdebstrap, guestfs-tools, ansible-core), then runs every test, real VMs
# included: `cargo nextest run --workspace --all-features`. With CI set, nextest's `ci` profile
# (no fail-fast) is used.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bash "$repo/scripts/setup.sh" --tests >/dev/null
profile=default
[ -n "${CI:-}" ] && profile=ci
cd "$repo"
cargo nextest run --workspace --all-features --profile "$profile" "$@"
