#!/usr/bin/env bash
# Installs qemu-system-x86 from bookworm-backports, pinning only the qemu packages (DESIGN,
# toolchain facts: Debian 12's own qemu-system-x86 7.2 silently removes the preinstalled
# qemu-utils 10.0.2). Idempotent; needs root.
set -euo pipefail
command -v qemu-system-x86_64 >/dev/null && exit 0
sources=/etc/apt/sources.list.d/debian.sources
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  uri=$(awk '/^URIs:/ { print $2; exit }' "$sources")
  key=$(awk '/^Signed-By:/ { print $2; exit }' "$sources")
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' \
    "${uri:-http://deb.debian.org/debian}" "${key:-/usr/share/keyrings/debian-archive-keyring.gpg}" \
    > /etc/apt/sources.list.d/lago-backports.sources
  apt-get update -qq
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  qemu-system-x86/bookworm-backports qemu-system-common/bookworm-backports \
  qemu-system-data/bookworm-backports seabios/bookworm-backports
