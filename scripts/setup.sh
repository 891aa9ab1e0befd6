#!/usr/bin/env bash
# Usage: scripts/setup.sh [--tests]
#
# Sets this host up for lago, idempotently: builds lago, then lets `lago doctor --fix` install
# what the host lacks (as root, or through sudo), then prints `lago doctor`'s report. lago itself
# knows what it needs and how to install it on Debian 12 (qemu from bookworm-backports, because
# Debian 12's own qemu 7.2 would remove the qemu-img 10 these hosts come with); this script only
# gets it built. With --tests it also installs what the test suite needs (mmdebstrap, guestfs-tools
# with a host kernel, ansible-core) and builds in the test profile.
# Prints the path of the built `lago` on its last line (everything else goes to stderr).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tests=false
case "${1:-}" in
  --tests) tests=true ;;
  "") ;;
  *) echo "usage: $0 [--tests]" >&2; exit 2 ;;
esac

sudo=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "setup: installing packages needs root: run this as root, or install sudo" >&2; exit 1; }
  sudo=(sudo)
fi
say() { echo "setup: $*" >&2; }

command -v cargo >/dev/null || { say "cargo is missing: install Rust (https://rustup.rs) first"; exit 1; }
if ! command -v cc >/dev/null; then
  say "installing gcc: some of lago's dependencies build C code"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev >&2
fi

if $tests; then
  say "building lago (cargo build, the tests' profile)"
  cargo build --quiet --locked --manifest-path "$repo/Cargo.toml" -p lago-cli >&2
  lago="$repo/target/debug/lago"
  fix=(--fix --all)
else
  say "building lago (cargo build --release)"
  cargo build --quiet --locked --release --manifest-path "$repo/Cargo.toml" -p lago-cli >&2
  lago="$repo/target/release/lago"
  fix=(--fix)
fi

say "checking the host and installing what it lacks (lago doctor ${fix[*]})"
# What could not be fixed shows in the report below.
"${sudo[@]}" "$lago" doctor "${fix[@]}" >/dev/null || true
"$lago" doctor >&2 || { say "the host is still not ready for lago (see the ✗ lines above)"; exit 1; }
echo "$lago"
