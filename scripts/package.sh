#!/usr/bin/env bash
# Usage: scripts/package.sh
#
# Builds the Debian package of lago: the release binary, its man pages (one per verb) and its
# bash, zsh and fish completions, generated from the command line's own definitions, then
# `cargo deb` (installed from crates.io when missing). Prints the path of the .deb.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
cargo build --quiet --locked --release -p lago-cli
lago=target/release/lago
assets=target/release/assets
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions"
"$lago" manpages "$assets/man"
"$lago" completion bash > "$assets/completions/lago.bash"
"$lago" completion zsh > "$assets/completions/_lago"
"$lago" completion fish > "$assets/completions/lago.fish"
command -v cargo-deb >/dev/null || cargo install --locked cargo-deb
cargo deb --no-build -p lago-cli --quiet
ls -1 "$repo"/target/debian/lago_*.deb | tail -1
