#!/usr/bin/env bash
# Sets up what lago needs, builds it, and walks through an environment's life cycle:
# init (3 VMs on two networks), status in two formats, list, destroy.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
need=()
for p in qemu-utils openssh-client xz-utils; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
cargo build --quiet --release --manifest-path "$repo/Cargo.toml"
lago="$repo/target/release/lago"

work="$(mktemp -d /tmp/lago-demo.XXXXXX)"
trap 'rm -rf "$work"' EXIT
cd "$work"

# A local `file` template repository holding one blank 1 GiB disk image. (`lago template build
# tiny` builds a bootable one; until it exists this demo stays on what needs no VM.)
"$repo/demo/blank-repo.sh" repo blank 1G
export LAGO__INIT__TEMPLATE_REPO_PATH="$work/repo/repo.metadata" LAGO__INIT__TEMPLATE_STORE="$work/store"

cat > LagoInitFile <<'YAML'
base: &base
  memory: 512
  disks:
    - {template_name: blank, type: template, name: root, dev: vda}
domains:
  web:  {<<: *base, nics: [{net: front}]}
  app:  {<<: *base, nics: [{net: front}, {net: back, ip: 192.168.201.10}]}
  db:   {<<: *base, nics: [{net: front}, {net: back}], disks: [{type: empty, name: data, size: 10G, dev: vda}]}
nets:
  front: {management: true, dns_domain_name: demo.local}
  back: {}
YAML
cat LagoInitFile
set -x
"$lago" init
"$lago" status
"$lago" -f yaml status
"$lago" list
ls -ls .lago/default/images
"$lago" destroy --yes
