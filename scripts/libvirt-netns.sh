#!/usr/bin/env bash
# Usage: scripts/libvirt-netns.sh up NAME DIR [ADDRESS/PREFIX PEER]
#        scripts/libvirt-netns.sh down NAME
#
# A libvirt "host" for tests and benchmarks that touches nothing of the machine's: a network
# namespace NAME with its own virtlogd and libvirtd, whose configuration, state, logs and sockets
# live under DIR (bind-mounted over /etc/libvirt, /var/lib/libvirt, /var/log/libvirt,
# /var/cache/libvirt and /run/libvirt in a private mount namespace). libvirt's bridges, dnsmasq
# and NAT rules therefore exist only inside NAME; its VMs run as root with no security driver.
# The daemon answers on TCP port 16509 without authentication, inside the namespace only:
# run lago there with `ip netns exec NAME` and `libvirt_url = qemu+tcp://127.0.0.1/system`.
#
# With ADDRESS/PREFIX and PEER, the namespace also gets a bridge `lagobr` holding ADDRESS and
# one end of a veth pair whose other end goes into the existing namespace PEER (added to its
# `lagobr`): two such hosts share a bridge, as hosts on one switch.
#
# `down` kills every process of the namespace (VMs, dnsmasq, daemons) and deletes it.
set -euo pipefail

die() { echo "libvirt-netns: $*" >&2; exit 1; }

up() {
  local ns=$1 dir=$2 addr=${3:-} peer=${4:-}
  for tool in ip unshare libvirtd virtlogd virsh dnsmasq iptables; do
    command -v "$tool" >/dev/null || die "$tool is missing (install libvirt-daemon-system, libvirt-clients, dnsmasq-base, iptables)"
  done
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  mkdir -p "$dir"/{etc,lib/qemu,lib/dnsmasq,lib/images,lib/boot,log/qemu,cache,run}
  cp -a /etc/libvirt/. "$dir/etc/"
  rm -f "$dir"/etc/qemu/networks/autostart/*.xml "$dir"/etc/qemu/networks/*.xml
  cat >"$dir/etc/libvirtd.conf" <<'EOF'
listen_tls = 0
listen_tcp = 1
listen_addr = "0.0.0.0"
auth_tcp = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOF
  cat >"$dir/etc/qemu.conf" <<'EOF'
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
EOF
  mkdir -p /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt
  # The mount namespace lives as long as the daemons do.
  ip netns exec "$ns" unshare --mount --propagation private sh -euc '
    d=$1
    mount --bind "$d/etc" /etc/libvirt
    mount --bind "$d/lib" /var/lib/libvirt
    mount --bind "$d/log" /var/log/libvirt
    mount --bind "$d/cache" /var/cache/libvirt
    mount --bind "$d/run" /run/libvirt
    virtlogd -d -p "$d/run/virtlogd.pid"
    libvirtd -d --listen -p "$d/run/libvirtd.pid"
  ' sh "$dir"
  if [ -n "$addr" ]; then
    ip -n "$ns" link add lagobr type bridge
    ip -n "$ns" addr add "$addr" dev lagobr
    ip -n "$ns" link set lagobr up
    if [ -n "$peer" ]; then
      ip link add "v-$ns" netns "$ns" type veth peer name "v-$peer" netns "$peer"
      ip -n "$ns" link set "v-$ns" master lagobr up
      ip -n "$peer" link set "v-$peer" master lagobr up
    fi
  fi
  for _ in $(seq 100); do
    if ip netns exec "$ns" virsh -q -c qemu+tcp://127.0.0.1/system version >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  cat "$dir/log/libvirtd.log" >&2 2>/dev/null || true
  die "libvirtd in namespace $ns did not answer within 10 s (its log: $dir/log/libvirtd.log)"
}

down() {
  local ns=$1
  ip netns list | grep -qw "^$ns" || return 0
  for _ in 1 2 3 4 5; do
    pids=$(ip netns pids "$ns")
    [ -z "$pids" ] && break
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null || true
    sleep 0.2
  done
  ip netns del "$ns"
}

case "${1:-}" in
  up) [ $# -ge 3 ] || die "usage: $0 up NAME DIR [ADDRESS/PREFIX [PEER]]"; up "${@:2}" ;;
  down) [ $# -eq 2 ] || die "usage: $0 down NAME"; down "$2" ;;
  *) die "usage: $0 up NAME DIR [ADDRESS/PREFIX [PEER]] | down NAME" ;;
esac
