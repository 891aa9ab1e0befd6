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
apt_install() {
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 \
    || { "${sudo[@]}" apt-get update -qq >&2 && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2; }
}
if ! command -v cc >/dev/null; then
  say "installing gcc: some of lago's dependencies build C code"
  apt_install gcc libc6-dev
fi
# The local-libvirt provider links libvirt's C library (found through pkg-config).
if ! pkg-config --exists libvirt 2>/dev/null; then
  say "installing libvirt-dev and pkg-config: lago links libvirt's library for the local-libvirt provider"
  apt_install libvirt-dev pkg-config
fi

if $tests; then
  say "building lago (cargo build, the tests' profile)"
  cargo build --quiet --locked --manifest-path "$repo/Cargo.toml" -p lago-cli --bins >&2
  lago="$repo/target/debug/lago"
  fix=(--fix --all)
else
  say "building lago (cargo build --release)"
  cargo build --quiet --locked --release --manifest-path "$repo/Cargo.toml" -p lago-cli --bins >&2
  lago="$repo/target/release/lago"
  fix=(--fix)
fi

# The Python SDK (`from lago import sdk`): built with maturin, installed for this user
# (`pip install --user`), so any `python3` of this user imports it.
python=python3
command -v "$python" >/dev/null && "$python" -m pip --version >/dev/null 2>&1 || {
  say "installing python3 and pip: the Python SDK and its tests need them"
  apt_install python3 python3-pip
}
pip_user() {
  # A Python that refuses user installs (PEP 668, Debian's own) gets them anyway: they go to
  # ~/.local only.
  "$python" -m pip install -q --user --disable-pip-version-check "$@" 2>/tmp/lago-pip.$$ \
    || { grep -q externally-managed /tmp/lago-pip.$$ && "$python" -m pip install -q --user --break-system-packages --disable-pip-version-check "$@"; } \
    || { cat /tmp/lago-pip.$$ >&2; rm -f /tmp/lago-pip.$$; return 1; }
  rm -f /tmp/lago-pip.$$
}
python_tools=(maturin==1.16.0)
$tests && python_tools+=(pytest pytest-xdist)
say "installing ${python_tools[*]} for $($python --version 2>&1) (pip --user): they build and test the Python SDK"
pip_user "${python_tools[@]}" >&2
maturin="$("$python" -c 'import sysconfig, os; print(os.path.join(sysconfig.get_path("scripts", "posix_user"), "maturin"))')"
[ -x "$maturin" ] || maturin=maturin
wheels="$repo/target/wheels"
rm -rf "$wheels"
# The package's `lago` and `lagocli` commands run this lago (python/lago/bin is not in git).
mkdir -p "$repo/crates/lago-py/python/lago/bin"
cp -f "$lago" "$repo/crates/lago-py/python/lago/bin/lago"
if $tests; then
  say "building the Python SDK (maturin, the tests' profile)"
  "$maturin" build --quiet --profile dev --manifest-path "$repo/crates/lago-py/Cargo.toml" --out "$wheels" >&2
else
  say "building the Python SDK (maturin --release)"
  "$maturin" build --quiet --release --manifest-path "$repo/crates/lago-py/Cargo.toml" --out "$wheels" >&2
fi
say "installing the Python SDK (pip --user): \`python3 -c 'from lago import sdk'\` works from now on"
pip_user --force-reinstall --no-deps "$wheels"/lago-*.whl >&2

say "checking the host and installing what it lacks (lago doctor ${fix[*]})"
# What could not be fixed shows in the report below.
"${sudo[@]}" "$lago" doctor "${fix[@]}" >/dev/null || true
"$lago" doctor >&2 || { say "the host is still not ready for lago (see the ✗ lines above)"; exit 1; }
echo "$lago"
