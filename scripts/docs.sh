#!/usr/bin/env bash
# Usage: scripts/docs.sh [--check | --regen]
#
# Builds the documentation site into target/book with mdBook (docs/ is its source, book.toml its
# configuration), installing mdBook first when the pinned version is not on PATH:
#   1. the pictures of the demo environment (demo/LagoInitFile on a blank `tiny` template, no VM
#      booted): `lago status -f dot` rendered by Graphviz, as initialized and with a cut link, a
#      partition and a degraded link in force; and a running one, the picture of the library's
#      test (target/book-pictures, inlined by the pages);
#   2. `mdbook build` (a page that cannot include what it names fails the build);
#   3. the Rust SDK's `cargo doc -p lago --no-deps`, into target/book/sdk.
# The reference pages (docs/reference/*.md) are generated from the code and committed; the tests
# fail when they are out of date (crates/lago-cli/tests/cli/test_docs.rs,
# crates/lago-py/tests/test_docs_page.py). --regen regenerates them first.
# --check then checks the built site: every internal link and #anchor resolves (no network;
# scripts/docs/check_links.py), and headless Chromium (Debian's package, installed when missing)
# renders the index, the init-file reference and the pictures page, whose headings, sidebar and
# pictures are checked in the DOM it built (scripts/docs/browser_check.py); its screenshots go to
# target/book-screenshots (CI keeps them as artefacts).
# Each step prints how long it took.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
check=false regen=false
case "${1:-}" in
  --check) check=true ;;
  --regen) regen=true ;;
  "") ;;
  *) echo "usage: $0 [--check | --regen]" >&2; exit 2 ;;
esac

MDBOOK_VERSION=0.5.4
say() { echo "docs: $*" >&2; }
started=$SECONDS
step_start=$SECONDS
step() { say "$1 ($((SECONDS - step_start)) s)"; step_start=$SECONDS; }

sudo=()
[ "$(id -u)" != 0 ] && sudo=(sudo)
apt_install() {
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 \
    || { "${sudo[@]}" apt-get update -qq >&2 && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2; }
}

# The tools: mdBook (from crates.io, built once into ~/.cargo/bin; its build directory is kept in
# target/tools, so a new version rebuilds only what changed), Graphviz, and for --check Chromium.
export PATH="$HOME/.cargo/bin:$PATH"
if [ "$(mdbook --version 2>/dev/null)" != "mdbook v$MDBOOK_VERSION" ]; then
  say "installing mdBook $MDBOOK_VERSION (cargo install): it builds the site"
  cargo install --quiet --locked --version "$MDBOOK_VERSION" --no-default-features --features search \
    --target-dir "$repo/target/tools" mdbook >&2
  step "mdBook installed"
fi
if ! command -v dot >/dev/null; then
  say "installing graphviz: it draws the pictures of environments"
  apt_install graphviz
fi
if $check && ! command -v chromium >/dev/null; then
  say "installing chromium: the site is checked in a real browser"
  apt_install chromium
  step "Chromium installed"
fi

say "building lago (cargo build, the tests' profile)"
cargo build --quiet --locked -p lago-cli --bins >&2
lago="$repo/target/debug/lago"
step "lago built"

if $regen; then
  "$lago" docgen docs/reference
  python3 scripts/docs/python_api.py
  step "reference pages regenerated (docs/reference)"
fi

# 1. The pictures of the demo environment, drawn in a work directory of their own.
pictures="$repo/target/book-pictures"
rm -rf "$pictures" && mkdir -p "$pictures"
work="$(mktemp -d /tmp/lago-docs.XXXXXX)"
trap 'rm -rf "$work"' EXIT
(
  cd "$work"
  export LAGO__INIT__TEMPLATE_REPO_PATH="$work/repo/repo.metadata" LAGO__INIT__TEMPLATE_STORE="$work/store" \
    LAGO_LEASE_DIR="$work/leases" LAGO_HOST_LEG=off LAGO_NO_PROGRESS=1 XDG_CONFIG_HOME="$work/config"
  bash "$repo/demo/blank-repo.sh" repo tiny 64M
  cp "$repo/demo/LagoInitFile" .
  # A command whose output is shown only when it fails.
  quiet() { local out; out="$("$@" 2>&1)" || { echo "$out" >&2; say "failed: $*"; return 1; }; }
  # The SVG without its XML prolog, so that a page can hold it as it is.
  picture() { "$lago" graph | sed -n '/^<svg/,$p' >"$pictures/$1"; }
  quiet "$lago" init
  picture demo.svg
  quiet "$lago" net cut db back
  quiet "$lago" net partition front web app,db
  quiet "$lago" net degrade app back --delay 200 --loss 5
  picture demo-faults.svg
  quiet "$lago" destroy --yes
)
# A running environment with every addition (host leg, forwarded port, paused VM, clock): the
# picture the library's test draws from a status of its own (its snapshot is the DOT text).
awk 'n >= 2 { print } /^---$/ { n++ }' \
  crates/lago/src/ops/snapshots/lago__ops__graph__tests__the_picture_shows_states_addresses_faults_legs_and_forwards.snap \
  | dot -Tsvg | sed -n '/^<svg/,$p' >"$pictures/running.svg"
grep -q 'partitioned: web | app,db' "$pictures/demo-faults.svg"
grep -q 'this host' "$pictures/running.svg"
step "pictures drawn (target/book-pictures)"

# 2. The book.
out="$(mdbook build 2>&1)" || { echo "$out" >&2; exit 1; }
if grep -q 'ERROR' <<<"$out"; then
  echo "$out" >&2
  say "mdbook build reported errors (above)"
  exit 1
fi
mkdir -p target/book/pictures
cp "$pictures"/*.svg target/book/pictures/
step "site built (target/book)"

# 3. The Rust SDK.
# Module documentation names private parts (`[`checks`]`): said as text, not as links.
RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -A rustdoc::private_intra_doc_links" cargo doc --quiet --locked -p lago --no-deps >&2
rm -rf target/book/sdk
cp -r "${CARGO_TARGET_DIR:-target}/doc" target/book/sdk
step "Rust SDK documented (target/book/sdk)"

if $check; then
  python3 scripts/docs/check_links.py target/book
  step "links checked"
  python3 scripts/docs/browser_check.py target/book target/book-screenshots
  step "site checked in Chromium (screenshots in target/book-screenshots)"
fi
say "done in $((SECONDS - started)) s: open target/book/index.html"
