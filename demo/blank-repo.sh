#!/usr/bin/env bash
# Usage: demo/blank-repo.sh DIR NAME SIZE
# Makes DIR a `file` template repository (repo.metadata, image, .hash, .metadata) holding one
# template NAME, version v1: a blank qcow2 disk of SIZE. Used by the demo and the benchmarks.
set -euo pipefail
dir="$1" name="$2" size="$3"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
qemu-img create -q -f qcow2 "$dir/$name.qcow2" "$size"
sha1sum "$dir/$name.qcow2" | cut -d' ' -f1 > "$dir/$name.qcow2.hash"
echo "{\"distro\": \"$name\"}" > "$dir/$name.qcow2.metadata"
cat > "$dir/repo.metadata" <<JSON
{"name": "$name", "sources": {"local": {"type": "file", "args": {"root": "$dir"}}},
 "templates": {"$name": {"versions": {"v1": {"source": "local", "handle": "$name.qcow2", "timestamp": 1}}}}}
JSON
