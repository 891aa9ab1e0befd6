#!/usr/bin/env bash
# Usage: scripts/fuzz.sh [SECONDS]
#
# Fuzzes lago's readers with libFuzzer (cargo fuzz): the init file, the configuration, the state
# files and repo.metadata, SECONDS in all (default 120), each from the seeds in fuzz/seeds/<target>
# plus what earlier runs found (fuzz/corpus, not committed). A crash fails the script; libFuzzer
# leaves the input in fuzz/artifacts/<target>/.
#
# cargo fuzz builds with sanitizer flags that rustc keeps for nightly; RUSTC_BOOTSTRAP=1 lets the
# machines' stable toolchain take them (there is no other toolchain here).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
total="${1:-120}"
targets=(init_file config state repo)
per=$(( total / ${#targets[@]} ))
command -v cargo-fuzz >/dev/null || cargo install --locked --quiet cargo-fuzz
export RUSTC_BOOTSTRAP=1
cd "$repo/fuzz"
# The fuzz crate is outside the workspace (it needs libFuzzer's flags): its build errors are shown whole.
build_log="$(mktemp)"
trap 'rm -f "$build_log"' EXIT
cargo fuzz build >"$build_log" 2>&1 || { cat "$build_log" >&2; echo "fuzz: the fuzz targets do not build" >&2; exit 1; }
tail -n 1 "$build_log"
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
  echo "fuzz: $t for ${per}s"
  cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$per" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
    | grep -E "^(stat::number_of_executed_units|stat::new_units_added|Done|==|SUMMARY|artifact_prefix)" || true
  # grep hides libFuzzer's chatter; its exit status is what counts.
  [ "${PIPESTATUS[0]}" = 0 ] || { echo "fuzz: $t found a crash, see fuzz/artifacts/$t/" >&2; exit 1; }
done
