#!/usr/bin/env bash
# Usage: scripts/openstack-cloud.sh up|down|status|install
#
# A two-compute-node OpenStack (Zed, from Debian 12's own packages) on this one machine, for
# lago's OpenStack tests; needs root. No systemd: every daemon is started here, in network
# namespaces this script makes, and nothing listens on the host's own interfaces.
#
#   lago-os  the controller: MariaDB, RabbitMQ, memcached, Keystone, Glance, Placement, Nova's
#            API, conductor and scheduler, Neutron's API and RPC server (ML2: linuxbridge,
#            flat + VXLAN). Bridges `br-ctl` (10.250.0.1/24: APIs, RabbitMQ, VXLAN underlay)
#            and `br-mgmt` (10.251.0.1/24: the `lago-mgmt` flat network the VMs' management
#            NICs are on, so that their addresses are reachable from inside lago-os).
#   cn1, cn2 compute nodes: a network namespace each (eth0 on br-ctl: 10.250.0.11, .12; mgmt0
#            on br-mgmt) and a private mount and UTS namespace (their own /etc/libvirt,
#            /var/lib/libvirt, /var/lib/nova, /run/libvirt) running virtlogd, libvirtd,
#            nova-compute (virt_type qemu: TCG) and neutron-linuxbridge-agent.
#
# `up` installs the packages when missing (a policy-rc.d keeps their scripts from starting
# anything; qemu stays the bookworm-backports one), makes the databases, starts everything,
# registers both nodes, creates the `lago-mgmt` network, the `lago.<ram MiB>.<vcpus>` flavors and
# the `lago` project and user (admin role: `availability_zone nova:cnX` pins a server), and
# writes the `lago-test` entry of ~/.config/openstack/clouds.yaml. It is idempotent: run again, it
# starts only what does not run. `down` stops everything and removes the namespaces, mounts,
# state (databases included) and the clouds.yaml entry; the packages stay. `status` says what
# runs. `install` only installs the packages.
#
# Everything that uses the cloud runs inside the controller's namespace:
#   ip netns exec lago-os env OS_CLOUD=lago-test openstack server list
set -euo pipefail

STATE=/var/lib/lago-os-cloud
NS=lago-os
NODES=(cn1 cn2)
CTL_IP=10.250.0.1
MGMT_GW=10.251.0.1
PW=lago-test-secret # every password: the cloud is reachable from its own namespaces only
CLOUDS_YAML=${HOME}/.config/openstack/clouds.yaml
SYS_PYTHON=/usr/bin/python3 # Debian's, with the OpenStack SDK (not a pyenv one of PATH)

E=$STATE/etc # configuration files
R=$STATE/run # pid files, sockets
L=$STATE/log # logs

PACKAGES=(
  mariadb-server python3-pymysql rabbitmq-server memcached python3-memcache
  uwsgi-core uwsgi-plugin-python3 sudo genisoimage iproute2 iptables ebtables curl
  keystone glance-api placement-api
  nova-api nova-conductor nova-scheduler nova-compute nova-compute-kvm
  neutron-api neutron-rpc-server neutron-linuxbridge-agent
  libvirt-daemon-system libvirt-clients python3-openstackclient
)

t0=$(date +%s%N)
say() {
  local ms=$((($(date +%s%N) - t0) / 1000000))
  printf '[openstack-cloud %4d.%ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*"
}
die() {
  echo "openstack-cloud: $*" >&2
  exit 1
}
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, daemons, packages)"
# Descriptors the caller left open (the lock file of a `flock` around this script...) must not
# live on in the daemons started here: closed first (bash reads this script on 255).
for fd in /proc/$$/fd/*; do
  fd=${fd##*/}
  case $fd in
    0 | 1 | 2 | 255) ;;
    *) eval "exec $fd>&-" 2>/dev/null || true ;;
  esac
done

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} = 0 ]; then
    say "packages: all ${#PACKAGES[@]} installed"
    return
  fi
  say "packages: installing ${missing[*]} (a few minutes)"
  # The packages' scripts must start no daemon (there is no systemd; we start them ourselves).
  local saved=""
  if [ -e /usr/sbin/policy-rc.d ]; then
    saved=$(mktemp)
    cp -a /usr/sbin/policy-rc.d "$saved"
  fi
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  local rc=0 log=/var/log/lago-os-cloud-install.log
  # qemu-block-extra from bookworm-backports: nova-compute-kvm would otherwise pull Debian 12's
  # qemu 7.2 over the backports' qemu 10 the rest of lago uses.
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=900
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold
    "${missing[@]}" qemu-block-extra/bookworm-backports)
  # Stale package lists (a fresh machine): once more after `apt-get update`.
  "${apt[@]}" >"$log" 2>&1 || { apt-get update -q >>"$log" 2>&1 && "${apt[@]}" >>"$log" 2>&1; } || rc=$?
  if [ -n "$saved" ]; then mv "$saved" /usr/sbin/policy-rc.d; else rm -f /usr/sbin/policy-rc.d; fi
  if [ $rc != 0 ]; then
    tail -30 "$log" >&2
    die "apt-get install failed (exit $rc); full log: $log"
  fi
  say "packages: installed"
}

# ---------------------------------------------------------------------------------------------
# Helpers

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# daemon NAME COMMAND...: runs the command in the background, its output in $L/NAME.log and its
# pid in $R/NAME.pid, unless that pid still runs. The commands here (`ip netns exec`, `nsenter`,
# the daemons) exec one another: the pid written is the daemon's.
daemon() {
  local name=$1
  shift
  if alive "$R/$name.pid"; then return 0; fi
  rm -f "$R/$name.pid"
  setsid sh -c 'echo $$ >"$0"; exec "$@"' "$R/$name.pid" "$@" </dev/null >>"$L/$name.log" 2>&1 &
  local i=0
  while ! [ -s "$R/$name.pid" ] && [ $i -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
  done
  say "started $name"
}

in_ns() { ip netns exec "$NS" "$@"; }
# Runs a command inside compute node $1's namespaces (network, mount, UTS).
in_node() {
  local node=$1
  shift
  nsenter -t "$(cat "$R/$node-keeper.pid")" -m -u -n "$@"
}

# wait_for WHAT SECONDS COMMAND...: until the command succeeds.
wait_for() {
  local what=$1 secs=$2
  shift 2
  local end=$(($(date +%s) + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || die "$what: not ready after ${secs}s (logs in $L)"
    sleep 1
  done
}

http_up() { in_ns curl -s -o /dev/null --max-time 5 "$1"; }
sql() { in_ns mariadb --socket="$R/mysqld.sock" -uroot -e "$1"; }
done_mark() { [ -e "$STATE/done.$1" ]; }
mark() { touch "$STATE/done.$1"; }

# ---------------------------------------------------------------------------------------------
# Network namespaces: lago-os with br-ctl and br-mgmt; cn1, cn2 joined to both by veth pairs.

net_up() {
  ip netns list | grep -qw "^$NS" || ip netns add "$NS"
  ip -n "$NS" link set lo up
  local br
  for br in br-ctl br-mgmt; do
    ip -n "$NS" link show "$br" >/dev/null 2>&1 || ip -n "$NS" link add "$br" type bridge
  done
  # VXLAN between the nodes floods over multicast: no IGMP snooping on the underlay bridge.
  ip -n "$NS" link set br-ctl type bridge mcast_snooping 0
  ip -n "$NS" addr replace "$CTL_IP/24" dev br-ctl
  ip -n "$NS" addr replace "$MGMT_GW/24" dev br-mgmt
  ip -n "$NS" link set br-ctl up
  ip -n "$NS" link set br-mgmt up
  local i=11 node
  for node in "${NODES[@]}"; do
    ip netns list | grep -qw "^$node" || ip netns add "$node"
    ip -n "$node" link set lo up
    ip -n "$node" link show eth0 >/dev/null 2>&1 ||
      ip link add "c-$node" netns "$NS" type veth peer name eth0 netns "$node"
    ip -n "$node" link show mgmt0 >/dev/null 2>&1 ||
      ip link add "m-$node" netns "$NS" type veth peer name mgmt0 netns "$node"
    ip -n "$NS" link set "c-$node" master br-ctl up
    ip -n "$NS" link set "m-$node" master br-mgmt up
    ip -n "$node" addr replace "10.250.0.$i/24" dev eth0
    ip -n "$node" link set eth0 up
    ip -n "$node" link set mgmt0 up
    i=$((i + 1))
  done
  say "network: namespaces $NS (br-ctl $CTL_IP/24, br-mgmt $MGMT_GW/24), ${NODES[*]}"
}

# ---------------------------------------------------------------------------------------------
# Configuration files

authtoken() { # the [keystone_authtoken] of service user $1
  cat <<EOF
[keystone_authtoken]
www_authenticate_uri = http://$CTL_IP:5000/
auth_url = http://$CTL_IP:5000/
memcached_servers = 127.0.0.1:11211
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $1
password = $PW
region_name = RegionOne
EOF
}

service_auth() { # section $1 with the credentials of service user $2
  cat <<EOF
[$1]
auth_url = http://$CTL_IP:5000/v3
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $2
password = $PW
region_name = RegionOne
EOF
}

RABBIT="rabbit://openstack:$PW@$CTL_IP:5672/"

# nova.conf sections the controller and the nodes share.
nova_common() {
  cat <<EOF
[DEFAULT]
transport_url = $RABBIT
[api]
auth_strategy = keystone
$(authtoken nova)
$(service_auth service_user nova)
send_service_user_token = true
$(service_auth placement placement)
$(service_auth neutron neutron)
[glance]
api_servers = http://$CTL_IP:9292
[vnc]
enabled = false
[conductor]
workers = 1
[scheduler]
workers = 1
[oslo_messaging_notifications]
driver = noop
EOF
}

# neutron.conf sections the server and the agents share; $1: state directory.
neutron_common() {
  cat <<EOF
[DEFAULT]
transport_url = $RABBIT
state_path = $1
[experimental]
linuxbridge = true
[oslo_concurrency]
lock_path = $1/tmp
[agent]
root_helper = sudo neutron-rootwrap /etc/neutron/rootwrap.conf
EOF
}

write_configs() {
  mkdir -p "$E"/{keystone,glance,placement,nova,neutron} \
    "$STATE"/{keystone/fernet-keys,keystone/credential-keys,glance/images,glance/staging,glance/tasks,nova/tmp,neutron/tmp}
  cat >"$E/my.cnf" <<EOF
[mysqld]
user = mysql
datadir = $STATE/mysql
socket = $R/mysqld.sock
pid-file = $R/mysqld.pid
bind-address = 127.0.0.1
port = 3306
skip-name-resolve
log-error = $L/mysql/mysqld.err
max_connections = 1000
innodb_buffer_pool_size = 64M
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
EOF
  cat >"$E/keystone/keystone.conf" <<EOF
[database]
connection = mysql+pymysql://keystone:$PW@127.0.0.1/keystone
[token]
provider = fernet
[fernet_tokens]
key_repository = $STATE/keystone/fernet-keys
[credential]
key_repository = $STATE/keystone/credential-keys
[cache]
enabled = true
backend = oslo_cache.memcache_pool
memcache_servers = 127.0.0.1:11211
EOF
  cat >"$E/glance/glance-api.conf" <<EOF
[DEFAULT]
bind_host = $CTL_IP
bind_port = 9292
workers = 1
enabled_backends = fs:file
[database]
connection = mysql+pymysql://glance:$PW@127.0.0.1/glance
$(authtoken glance)
[paste_deploy]
flavor = keystone
config_file = /etc/glance/glance-api-paste.ini
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = $STATE/glance/images
[os_glance_staging_store]
filesystem_store_datadir = $STATE/glance/staging
[os_glance_tasks_store]
filesystem_store_datadir = $STATE/glance/tasks
[oslo_concurrency]
lock_path = $STATE/glance
EOF
  cat >"$E/placement/placement.conf" <<EOF
[placement_database]
connection = mysql+pymysql://placement:$PW@127.0.0.1/placement
[api]
auth_strategy = keystone
$(authtoken placement)
EOF
  {
    nova_common
    cat <<EOF
[DEFAULT]
my_ip = $CTL_IP
state_path = $STATE/nova
[api_database]
connection = mysql+pymysql://nova:$PW@127.0.0.1/nova_api
[database]
connection = mysql+pymysql://nova:$PW@127.0.0.1/nova
[oslo_concurrency]
lock_path = $STATE/nova/tmp
[wsgi]
api_paste_config = $E/nova/api-paste.ini
EOF
  } >"$E/nova/nova.conf"
  cp /etc/nova/api-paste.ini "$E/nova/api-paste.ini"
  {
    neutron_common "$STATE/neutron"
    cat <<EOF
[DEFAULT]
core_plugin = ml2
service_plugins =
auth_strategy = keystone
notify_nova_on_port_status_changes = true
notify_nova_on_port_data_changes = true
api_workers = 1
rpc_workers = 1
rpc_state_report_workers = 1
api_paste_config = /etc/neutron/api-paste.ini
[database]
connection = mysql+pymysql://neutron:$PW@127.0.0.1/neutron
$(authtoken neutron)
$(service_auth nova nova)
EOF
  } >"$E/neutron/neutron.conf"
  cat >"$E/neutron/ml2_conf.ini" <<EOF
[ml2]
type_drivers = flat,vxlan
tenant_network_types = vxlan
mechanism_drivers = linuxbridge
extension_drivers = port_security
[ml2_type_flat]
flat_networks = mgmt
[ml2_type_vxlan]
vni_ranges = 1:4000
EOF
}

node_configs() { # $1 node, $2 its address
  local node=$1 ip=$2 d=$STATE/$1
  mkdir -p "$d"/{etc-libvirt,lib-libvirt,log-libvirt,cache-libvirt,run-libvirt,lib-nova/instances,lib-nova/tmp,neutron/tmp}
  if ! [ -e "$d/etc-libvirt/.copied" ]; then
    cp -a /etc/libvirt/. "$d/etc-libvirt/"
    rm -f "$d"/etc-libvirt/qemu/networks/autostart/*.xml "$d"/etc-libvirt/qemu/networks/*.xml "$d"/etc-libvirt/qemu/*.xml
    touch "$d/etc-libvirt/.copied"
  fi
  cat >"$d/etc-libvirt/libvirtd.conf" <<EOF
unix_sock_group = "root"
unix_sock_rw_perms = "0770"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOF
  cat >"$d/etc-libvirt/qemu.conf" <<EOF
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
EOF
  {
    grep -v '^127\.0\.1\.1' /etc/hosts
    echo "127.0.1.1 $node"
  } >"$d/hosts"
  {
    nova_common
    cat <<EOF
[DEFAULT]
host = $node
my_ip = $ip
compute_driver = libvirt.LibvirtDriver
state_path = /var/lib/nova
instances_path = /var/lib/nova/instances
force_config_drive = True
mkisofs_cmd = genisoimage
reserved_host_memory_mb = 256
[libvirt]
virt_type = qemu
cpu_mode = custom
cpu_models = qemu64
[oslo_concurrency]
lock_path = /var/lib/nova/tmp
EOF
  } >"$d/nova.conf"
  {
    neutron_common "$d/neutron"
    cat <<EOF
[DEFAULT]
host = $node
EOF
  } >"$d/neutron.conf"
  cat >"$d/linuxbridge_agent.ini" <<EOF
[linux_bridge]
physical_interface_mappings = mgmt:mgmt0
[vxlan]
enable_vxlan = true
local_ip = $ip
l2_population = false
vxlan_group = 239.1.1.1
[securitygroup]
enable_security_group = false
firewall_driver = noop
EOF
}

# ---------------------------------------------------------------------------------------------
# The controller's services

# NAME PORT WSGI-FILE THREADS [uwsgi options...]: the APIs of nova and neutron want one thread per process (they
# run under eventlet: with more, requests hang on "greenlet.error: cannot switch to a different
# thread"), so they get two processes of one thread; the others one process of 8 threads.
uwsgi_app() {
  local name=$1 port=$2 file=$3 threads=$4 processes=1
  shift 4
  [ "$threads" = 1 ] && processes=2
  daemon "$name" ip netns exec "$NS" uwsgi --plugin python3 --http-socket "$CTL_IP:$port" \
    --wsgi-file "$file" --master --lazy-apps --die-on-term --buffer-size 65535 --enable-threads \
    --processes "$processes" --threads "$threads" --add-header "Connection: close" --need-app "$@"
}

infra_up() {
  if ! [ -d "$STATE/mysql/mysql" ]; then
    mkdir -p "$STATE/mysql"
    chown mysql:mysql "$STATE/mysql"
    mariadb-install-db --defaults-file="$E/my.cnf" --skip-test-db >"$L/mariadb-install-db.log" 2>&1 ||
      die "mariadb-install-db failed: $(tail -5 "$L/mariadb-install-db.log")"
  fi
  mkdir -p "$L/mysql"
  chown mysql:mysql "$R" "$L/mysql"
  alive "$R/mysqld.pid" || daemon mysqld-safe ip netns exec "$NS" mysqld_safe --defaults-file="$E/my.cnf"
  daemon memcached ip netns exec "$NS" memcached -u memcache -l 127.0.0.1 -m 64
  mkdir -p "$STATE/rabbitmq/mnesia" "$L/rabbitmq"
  chown -R rabbitmq:rabbitmq "$STATE/rabbitmq" "$L/rabbitmq"
  cat >"$E/rabbitmq-env.conf" <<EOF
NODENAME=rabbit@localhost
NODE_IP_ADDRESS=$CTL_IP
MNESIA_BASE=$STATE/rabbitmq/mnesia
LOG_BASE=$L/rabbitmq
EOF
  daemon rabbitmq ip netns exec "$NS" env RABBITMQ_CONF_ENV_FILE="$E/rabbitmq-env.conf" \
    ERL_EPMD_ADDRESS=127.0.0.1 RABBITMQ_NODENAME=rabbit@localhost rabbitmq-server
  wait_for mariadb 60 sql "select 1"
  if ! done_mark databases; then
    local db
    for db in keystone glance placement nova_api nova nova_cell0 neutron; do
      local user=${db%%_*}
      sql "CREATE DATABASE IF NOT EXISTS $db; CREATE USER IF NOT EXISTS '$user'@'127.0.0.1' IDENTIFIED BY '$PW'; GRANT ALL PRIVILEGES ON $db.* TO '$user'@'127.0.0.1';"
    done
    mark databases
  fi
  say "mariadb: up"
  wait_for rabbitmq 120 in_ns env RABBITMQ_CONF_ENV_FILE="$E/rabbitmq-env.conf" ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_NODENAME=rabbit@localhost rabbitmqctl -q status
  if ! done_mark rabbitmq; then
    in_ns env RABBITMQ_CONF_ENV_FILE="$E/rabbitmq-env.conf" ERL_EPMD_ADDRESS=127.0.0.1 RABBITMQ_NODENAME=rabbit@localhost \
      sh -c "rabbitmqctl -q add_user openstack '$PW' && rabbitmqctl -q set_permissions openstack '.*' '.*' '.*'" >/dev/null
    mark rabbitmq
  fi
  say "rabbitmq: up"
}

keystone_up() {
  local kc="--config-file $E/keystone/keystone.conf"
  if ! done_mark keystone; then
    # shellcheck disable=SC2086
    {
      in_ns keystone-manage $kc db_sync
      in_ns keystone-manage $kc fernet_setup --keystone-user root --keystone-group root
      in_ns keystone-manage $kc credential_setup --keystone-user root --keystone-group root
      in_ns keystone-manage $kc bootstrap --bootstrap-password "$PW" \
        --bootstrap-admin-url "http://$CTL_IP:5000/v3/" --bootstrap-internal-url "http://$CTL_IP:5000/v3/" \
        --bootstrap-public-url "http://$CTL_IP:5000/v3/" --bootstrap-region-id RegionOne
    } >>"$L/keystone-manage.log" 2>&1 || die "keystone-manage failed: $(tail -5 "$L/keystone-manage.log")"
    mark keystone
    say "keystone: database and bootstrap done"
  fi
  uwsgi_app keystone 5000 /usr/bin/keystone-wsgi-public 8 --env OS_KEYSTONE_CONFIG_FILES="$E/keystone/keystone.conf"
  wait_for keystone 90 http_up "http://$CTL_IP:5000/v3"
  say "keystone: up"
}

# Service users, endpoints, the lago project and user, flavors, the lago-mgmt network, quotas:
# through the OpenStack SDK in one Python process (the CLI would start Python per object).
cloud_objects() { # $1: identity | resources
  in_ns env -u OS_CLOUD OS_AUTH_URL="http://$CTL_IP:5000/v3" OS_USERNAME=admin OS_PASSWORD="$PW" \
    OS_PROJECT_NAME=admin OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_REGION_NAME=RegionOne \
    "$SYS_PYTHON" - "$1" "$CTL_IP" "$PW" <<'PYEOF'
import sys
import openstack

what, ctl, pw = sys.argv[1:4]
c = openstack.connect(auth_url=f"http://{ctl}:5000/v3", username="admin", password=pw, project_name="admin",
                      user_domain_name="Default", project_domain_name="Default", region_name="RegionOne")
idn = c.identity
if what == "identity":
    def project(name):
        return idn.find_project(name, domain_id="default") or idn.create_project(name=name, domain_id="default")
    def role(name):
        return idn.find_role(name) or idn.create_role(name=name)
    def user(name, proj, roles):
        u = idn.find_user(name, domain_id="default") or idn.create_user(name=name, password=pw, domain_id="default",
                                                                         default_project_id=proj.id)
        for r in roles:
            idn.assign_project_role_to_user(proj, u, role(r))
        return u
    service = project("service")
    lago = project("lago")
    for name in ("glance", "placement", "nova", "neutron"):
        user(name, service, ["admin", "service"])
    user("lago", lago, ["admin", "member"])
    # A project whose quota is too small for a two-VM environment (the e2e tests' bad input).
    user("lago-small", project("lago-small"), ["member"])
    for name, kind, url in [("glance", "image", f"http://{ctl}:9292"),
                            ("placement", "placement", f"http://{ctl}:8778"),
                            ("nova", "compute", f"http://{ctl}:8774/v2.1"),
                            ("neutron", "network", f"http://{ctl}:9696")]:
        svc = idn.find_service(name) or idn.create_service(name=name, type=kind)
        have = {e.interface for e in idn.endpoints(service_id=svc.id)}
        for iface in ("public", "internal", "admin"):
            if iface not in have:
                idn.create_endpoint(service_id=svc.id, interface=iface, url=url, region_id="RegionOne")
else:
    lago = idn.find_project("lago", domain_id="default")
    for ram, vcpus, disk in [(256, 1, 2), (512, 1, 2), (1024, 1, 4), (1024, 2, 4), (2048, 2, 10)]:
        name = f"lago.{ram}.{vcpus}"
        if not c.compute.find_flavor(name, ignore_missing=True):
            c.compute.create_flavor(name=name, ram=ram, vcpus=vcpus, disk=disk, is_public=True)
    c.set_compute_quotas(lago.id, instances=50, cores=100, ram=102400)
    small = idn.find_project("lago-small", domain_id="default")
    if small:
        c.set_compute_quotas(small.id, instances=1, cores=1, ram=512)
    c.set_network_quotas(lago.id, network=100, subnet=100, port=500)
    net = c.network.find_network("lago-mgmt")
    if not net:
        net = c.network.create_network(name="lago-mgmt", is_shared=True, provider_network_type="flat",
                                       provider_physical_network="mgmt", port_security_enabled=False)
    if not list(c.network.subnets(network_id=net.id)):
        c.network.create_subnet(name="lago-mgmt", network_id=net.id, ip_version=4, cidr="10.251.0.0/24",
                                gateway_ip=None, is_dhcp_enabled=False,
                                allocation_pools=[{"start": "10.251.0.10", "end": "10.251.0.250"}])
PYEOF
}

services_up() {
  local nc="--config-file $E/nova/nova.conf"
  local nq="--config-file $E/neutron/neutron.conf --config-file $E/neutron/ml2_conf.ini"
  # Idempotent (found, else created): every time.
  cloud_objects identity >>"$L/cloud-objects.log" 2>&1 || die "identity set-up failed: $(tail -5 "$L/cloud-objects.log")"
  say "keystone: service users, endpoints, projects and users lago, lago-small"
  if ! done_mark dbsync; then
    # The schemas, in parallel (each is a few Python processes of tens of seconds).
    local pids=() job failed=0
    in_ns glance-manage --config-file "$E/glance/glance-api.conf" db_sync >"$L/dbsync-glance.log" 2>&1 &
    pids+=($!)
    in_ns placement-manage --config-file "$E/placement/placement.conf" db sync >"$L/dbsync-placement.log" 2>&1 &
    pids+=($!)
    # shellcheck disable=SC2086
    in_ns neutron-db-manage $nq upgrade head >"$L/dbsync-neutron.log" 2>&1 &
    pids+=($!)
    # shellcheck disable=SC2086
    (in_ns nova-manage $nc api_db sync && in_ns nova-manage $nc cell_v2 map_cell0 &&
      in_ns nova-manage $nc cell_v2 create_cell --name cell1 && in_ns nova-manage $nc db sync) >"$L/dbsync-nova.log" 2>&1 &
    pids+=($!)
    for job in "${pids[@]}"; do wait "$job" || failed=1; done
    [ $failed = 0 ] || die "a database schema sync failed: see $L/dbsync-*.log"
    mark dbsync
    say "schemas: glance, placement, nova, neutron synced"
  fi
  daemon glance-api ip netns exec "$NS" glance-api --config-file "$E/glance/glance-api.conf"
  uwsgi_app placement-api 8778 /usr/bin/placement-api 8 --env OS_PLACEMENT_CONFIG_DIR="$E/placement"
  uwsgi_app nova-api 8774 /usr/bin/nova-api-wsgi 1 --env OS_NOVA_CONFIG_DIR="$E/nova"
  # shellcheck disable=SC2086
  daemon nova-conductor ip netns exec "$NS" nova-conductor $nc
  # shellcheck disable=SC2086
  daemon nova-scheduler ip netns exec "$NS" nova-scheduler $nc
  uwsgi_app neutron-api 9696 /usr/bin/neutron-api 1 --pyargv "$nq"
  # shellcheck disable=SC2086
  daemon neutron-rpc-server ip netns exec "$NS" neutron-rpc-server $nq
  wait_for glance 90 http_up "http://$CTL_IP:9292"
  wait_for placement 90 http_up "http://$CTL_IP:8778"
  wait_for nova-api 120 http_up "http://$CTL_IP:8774"
  wait_for neutron-api 120 http_up "http://$CTL_IP:9696"
  say "controller: glance, placement, nova, neutron answer"
}

# ---------------------------------------------------------------------------------------------
# Compute nodes

node_up() { # $1 node, $2 address
  local node=$1 ip=$2 d=$STATE/$1
  node_configs "$node" "$ip"
  if ! alive "$R/$node-keeper.pid"; then
    rm -f "$R/$node-keeper.pid"
    mkdir -p /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt /var/lib/nova
    # The private mount and UTS namespace lives as long as this `sleep` (its keeper).
    setsid ip netns exec "$node" unshare --mount --uts --propagation private sh -euc '
      d=$1 node=$2 pidfile=$3
      mount --bind "$d/etc-libvirt" /etc/libvirt
      mount --bind "$d/lib-libvirt" /var/lib/libvirt
      mount --bind "$d/log-libvirt" /var/log/libvirt
      mount --bind "$d/cache-libvirt" /var/cache/libvirt
      mount --bind "$d/run-libvirt" /run/libvirt
      mount --bind "$d/lib-nova" /var/lib/nova
      mount --bind "$d/hosts" /etc/hosts
      hostname "$node"
      echo $$ >"$pidfile"
      exec sleep infinity
    ' sh "$d" "$node" "$R/$node-keeper.pid" </dev/null >>"$L/$node-keeper.log" 2>&1 &
    wait_for "$node namespace" 10 test -s "$R/$node-keeper.pid"
  fi
  local k
  k=$(cat "$R/$node-keeper.pid")
  alive "$d/run-libvirt/virtlogd.pid" || in_node "$node" virtlogd -d -p /run/libvirt/virtlogd.pid
  alive "$d/run-libvirt/libvirtd.pid" || in_node "$node" libvirtd -d -p /run/libvirt/libvirtd.pid
  wait_for "$node libvirtd" 30 in_node "$node" virsh -c qemu:///system version
  daemon "$node-nova-compute" nsenter -t "$k" -m -u -n nova-compute --config-file "$d/nova.conf"
  daemon "$node-linuxbridge-agent" nsenter -t "$k" -m -u -n neutron-linuxbridge-agent \
    --config-file "$d/neutron.conf" --config-file "$d/linuxbridge_agent.ini"
}

nodes_registered() {
  local hosts
  hosts=$(in_ns nova-manage --config-file "$E/nova/nova.conf" cell_v2 list_hosts 2>/dev/null) || return 1
  local node
  for node in "${NODES[@]}"; do
    grep -qw "$node" <<<"$hosts" || return 1
  done
}

discover() {
  in_ns nova-manage --config-file "$E/nova/nova.conf" cell_v2 discover_hosts >>"$L/discover-hosts.log" 2>&1 || true
  nodes_registered
}

agents_alive() {
  local out node
  out=$(admin_cli network agent list -f value -c Host -c Alive) || return 1
  for node in "${NODES[@]}"; do
    grep -q "^$node True" <<<"$out" || return 1
  done
}

admin_cli() {
  in_ns env -u OS_CLOUD OS_AUTH_URL="http://$CTL_IP:5000/v3" OS_USERNAME=admin OS_PASSWORD="$PW" \
    OS_PROJECT_NAME=admin OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default \
    OS_REGION_NAME=RegionOne OS_IDENTITY_API_VERSION=3 openstack "$@"
}

# ---------------------------------------------------------------------------------------------
# clouds.yaml

clouds_yaml() { # $1: add | remove
  mkdir -p "$(dirname "$CLOUDS_YAML")"
  "$SYS_PYTHON" - "$1" "$CLOUDS_YAML" "$CTL_IP" "$PW" <<'PYEOF'
import os
import sys
import yaml

what, path, ctl, pw = sys.argv[1:5]
data = {}
if os.path.exists(path):
    with open(path) as f:
        data = yaml.safe_load(f) or {}
clouds = data.setdefault("clouds", {})
if what == "add":
    clouds["lago-test"] = {
        "auth": {"auth_url": f"http://{ctl}:5000/v3", "username": "lago", "password": pw, "project_name": "lago",
                 "user_domain_name": "Default", "project_domain_name": "Default"},
        "region_name": "RegionOne",
        "interface": "public",
        "identity_api_version": 3,
    }
elif "lago-test" in clouds:
    del clouds["lago-test"]
elif not os.path.exists(path):
    sys.exit(0)
if what == "remove" and not clouds and set(data) == {"clouds"}:
    os.remove(path)
    sys.exit(0)
tmp = path + ".tmp"
with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
    yaml.safe_dump(data, f, default_flow_style=False, sort_keys=False)
os.replace(tmp, path)
PYEOF
}

# ---------------------------------------------------------------------------------------------
# Verbs

up() {
  mkdir -p "$STATE"
  install_packages
  mkdir -p "$E" "$R" "$L"
  net_up
  write_configs
  infra_up
  keystone_up
  services_up
  local i=11 node
  for node in "${NODES[@]}"; do
    node_up "$node" "10.250.0.$i"
    i=$((i + 1))
  done
  say "compute nodes: ${NODES[*]} started"
  # Idempotent (found, else created): every time.
  cloud_objects resources >>"$L/cloud-objects.log" 2>&1 || die "flavors/network/quota set-up failed: $(tail -5 "$L/cloud-objects.log")"
  say "cloud: flavors lago.<ram>.<vcpus>, network lago-mgmt, quotas of projects lago and lago-small"
  wait_for "discover_hosts (${NODES[*]})" 180 discover
  say "nova: ${NODES[*]} registered in cell1"
  wait_for "linuxbridge agents (${NODES[*]})" 120 agents_alive
  say "neutron: agents of ${NODES[*]} alive"
  clouds_yaml add
  say "up: clouds.yaml entry lago-test in $CLOUDS_YAML; use: ip netns exec $NS env OS_CLOUD=lago-test openstack ..."
}

down() {
  local ns pids
  for ns in "${NODES[@]}" "$NS"; do
    ip netns list | grep -qw "^$ns" || continue
    # Every process of the namespace: daemons, qemu, privsep helpers, epmd, mysqld_safe.
    pids=$(ip netns pids "$ns" || true)
    if [ -n "$pids" ]; then
      # shellcheck disable=SC2086
      kill $pids 2>/dev/null || true
      local i=0
      while [ -n "$(ip netns pids "$ns")" ] && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
      done
      pids=$(ip netns pids "$ns" || true)
      # shellcheck disable=SC2086
      [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
      sleep 0.2
    fi
    ip netns del "$ns"
    say "down: namespace $ns and its processes gone"
  done
  # Processes left of a run whose namespaces are gone (by their pid files only).
  local f
  for f in "$R"/*.pid; do
    [ -e "$f" ] && alive "$f" && kill -9 "$(cat "$f")" 2>/dev/null
  done
  rm -rf "$STATE"
  clouds_yaml remove
  say "down: state $STATE and clouds.yaml entry lago-test removed"
}

status() {
  local rc=0 f name node
  for ns in "$NS" "${NODES[@]}"; do
    if ip netns list | grep -qw "^$ns"; then echo "namespace $ns: present"; else
      echo "namespace $ns: absent"
      rc=1
    fi
  done
  [ -d "$R" ] || {
    echo "not up"
    return 1
  }
  for f in "$R"/*.pid "$STATE"/cn*/run-libvirt/*.pid; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .pid)
    case $f in */cn*/run-libvirt/*) name="$(basename "$(dirname "$(dirname "$f")")")-$name" ;; esac
    if alive "$f"; then echo "$name: running (pid $(cat "$f"))"; else
      echo "$name: not running"
      rc=1
    fi
  done
  if http_up "http://$CTL_IP:5000/v3"; then
    admin_cli compute service list -c Binary -c Host -c State -f value | sed 's/^/nova: /' || rc=1
    admin_cli network agent list -c Binary -c Host -c Alive -f value | sed 's/^/neutron: /' || rc=1
  else
    echo "keystone: not answering"
    rc=1
  fi
  return $rc
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  install) install_packages ;;
  *) die "usage: $0 up|down|status|install" ;;
esac
