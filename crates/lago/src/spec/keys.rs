//! Every key of an init file: its type, default, what it does and an example.
//!
//! This table is what the reader checks keys against ([`Section::knows`], the "unknown key"
//! issues and their "did you mean") and what the init-file reference of the documentation is
//! generated from (`lago docgen`), so a key the reader accepts cannot be missing from the
//! documentation: `crates/lago-cli/tests/cli/test_docs.rs` fails when the committed page differs
//! from the table, and a test below fails when the reader reads a key the table lacks.

/// Where a key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The original Lago's key, read as it read it.
    Original,
    /// lago's own addition.
    Lago,
    /// Carried by the original's users' files and read by nothing: accepted, with a note whose
    /// reason is the key's [`Key::doc`].
    Ignored,
    /// Recognized, and refused with an explanation.
    Refused,
}

impl Origin {
    /// How the reference names it.
    pub fn label(self) -> &'static str {
        match self {
            Origin::Original => "original",
            Origin::Lago => "lago's own",
            Origin::Ignored => "accepted, not read",
            Origin::Refused => "refused",
        }
    }
}

/// One key of a mapping of an init file.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The key as written.
    pub name: &'static str,
    /// What it takes.
    pub kind: &'static str,
    /// What applies when it is not written (empty: nothing, or it is required, as `doc` says).
    pub default: &'static str,
    /// What it does.
    pub doc: &'static str,
    /// A value, as YAML.
    pub example: &'static str,
    /// Whose key it is.
    pub origin: Origin,
}

/// One kind of mapping of an init file and the keys it takes.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    /// Where it is (`domains.<vm>.nics[]`).
    pub path: &'static str,
    /// Its title in the reference.
    pub title: &'static str,
    /// What it is.
    pub doc: &'static str,
    /// Its keys, in the reference's order.
    pub keys: &'static [Key],
    /// Whether a key outside `keys` is reported (false: a free-form mapping, whose keys listed
    /// here are those lago reads).
    pub checked: bool,
}

impl Section {
    /// The names of its keys.
    pub fn names(&self) -> Vec<&'static str> {
        self.keys.iter().map(|k| k.name).collect()
    }

    /// Whether `key` is one of its keys, or a key any mapping may carry ([`ANY`]).
    pub fn knows(&self, key: &str) -> bool {
        self.keys.iter().chain(ANY.keys).any(|k| k.name == key)
    }
}

const fn key(
    name: &'static str,
    kind: &'static str,
    default: &'static str,
    doc: &'static str,
    example: &'static str,
) -> Key {
    Key { name, kind, default, doc, example, origin: Origin::Original }
}

const fn own(
    name: &'static str,
    kind: &'static str,
    default: &'static str,
    doc: &'static str,
    example: &'static str,
) -> Key {
    Key { name, kind, default, doc, example, origin: Origin::Lago }
}

/// The top level of the file.
pub const TOP: Section = Section {
    path: "",
    title: "The file",
    doc: "A mapping, YAML or JSON (JSON is tried first, as the original did). Other top-level keys may hold YAML anchors (`base: &base {...}`) and are ignored, unless a key looks like a misspelt section (`domain:`), which is an error with its \"did you mean\".",
    keys: &[
        key(
            "domains",
            "mapping of VM names to VMs",
            "",
            "The VMs; at least one. A name is 1 to 63 letters, digits, `-`, `_` or `.`, starting with a letter or digit.",
            "{vm01: {...}}",
        ),
        key("nets", "mapping of network names to networks", "", "The networks; at least one.", "{lan: {...}}"),
        key(
            "prototypes",
            "mapping",
            "",
            "The original's place for shared definitions; never read (YAML anchors do the job).",
            "{base: {memory: 512}}",
        ),
    ],
    checked: false,
};

/// A VM.
pub const DOMAIN: Section = Section {
    path: "domains.<vm>",
    title: "VMs",
    doc: "One entry of `domains`, its key being the VM's name (also its host name). YAML merges (`<<: *base`) and `based-on` fill keys it does not write.",
    keys: &[
        key(
            "memory",
            "whole number of MiB, 16 to 16777216",
            "1024",
            "Memory of the VM. A template whose metadata says `min-memory` raises a smaller value to that at start (`init` says so); the record keeps what was written.",
            "512",
        ),
        key(
            "vcpu",
            "whole number, 1 to 255",
            "2",
            "Virtual CPUs (`-smp`, one socket each unless `cpu_custom` gives a topology).",
            "1",
        ),
        key(
            "cpu_model",
            "CPU model name",
            "`host` under KVM, `max` under TCG",
            "qemu's `-cpu` model. Not with `cpu_custom`.",
            "Westmere",
        ),
        key(
            "cpu_custom",
            "mapping: libvirt's `<cpu>` element (`@` attributes, `#text` text)",
            "",
            "Mode, model, vendor, features, topology and NUMA cells as libvirt's `<cpu>`; what qemu's command line cannot express is refused with its key path. Not with `cpu_model`.",
            "{'@mode': custom, model: {'#text': Westmere}, topology: {'@sockets': 1, '@cores': 2, '@threads': 1}}",
        ),
        key(
            "nics",
            "list of NICs",
            "",
            "Required: the VM's network interfaces, in order (`eth0`, `eth1`...). Exactly one must be on a management network.",
            "[{net: lan}, {net: storage, ip: 192.168.201.10}]",
        ),
        key(
            "disks",
            "list of disks",
            "no disks",
            "The VM's disks, in order; the first one boots.",
            "[{type: template, template_name: tiny, name: root}]",
        ),
        key(
            "metadata",
            "mapping",
            "`{}`",
            "Free-form, kept in the VM's record; the keys lago reads are listed under `domains.<vm>.metadata`.",
            "{deploy-scripts: [$LAGO_INITFILE_PATH/setup.sh]}",
        ),
        key(
            "artifacts",
            "list of absolute paths in the VM",
            "none",
            "What `lago collect` copies out of the VM.",
            "[/var/log/messages, /etc/hosts]",
        ),
        key(
            "groups",
            "list of names, or one name",
            "none",
            "Ansible groups of the VM in `lago ansible_hosts`.",
            "[web, frontends]",
        ),
        key(
            "bootstrap",
            "true or false",
            "true",
            "Whether `init` writes the VM a NoCloud seed (host name, key, password, addresses); `init --skip-bootstrap` writes none for any VM.",
            "false",
        ),
        key("ssh-user", "text", "`ssh_user` of the configuration (`root`)", "The user lago logs in as.", "root"),
        key(
            "ssh-password",
            "text",
            "`default_root_password`, else `ssh_password` of the configuration (`123456`)",
            "The VM's password when it has no `root-password`: the seed sets it as root's, and SSH offers it where the key is refused.",
            "'123456'",
        ),
        key(
            "root-password",
            "text",
            "the VM's `ssh-password`",
            "Root's password in the VM: the seed sets it, and SSH offers it where the key is refused.",
            "secret",
        ),
        key(
            "distro",
            "text",
            "the first disk's template's `distro`",
            "The distribution `lago status` shows.",
            "debian12",
        ),
        key(
            "vm-type",
            "text",
            "`default_vm_type` of the configuration (`default`)",
            "The SDK's class of the VM: a `lago.plugins.vm` entry point when installed, else the default VM with the name kept.",
            "default",
        ),
        key(
            "vm-provider",
            "`local-qemu`, `local-libvirt`, `ssh` or `openstack`",
            "`default_vm_provider` of the configuration (`local-qemu`)",
            "What runs the VM: one qemu of lago's, a libvirt domain, a machine lago did not create, reached over SSH, or a server of an OpenStack cloud (`[openstack]` of lago.conf; `metadata: {openstack-host: NAME}` pins it to a compute host).",
            "local-libvirt",
        ),
        key(
            "service_provider",
            "`systemd`, `sysvinit` or `systemdcontainer`",
            "found in the VM",
            "How the SDK's `vm.service(NAME)` starts and stops services.",
            "systemd",
        ),
        key(
            "service_class",
            "text",
            "",
            "Deprecated spelling of `service_provider` (`SystemdService` is `systemd`), with a warning.",
            "SystemdService",
        ),
        key(
            "guest-agent",
            "text",
            "",
            "The original's name of the VM's guest agent, kept in the record.",
            "qemu-guest-agent",
        ),
        key(
            "boot_time_sec",
            "whole number of seconds, 1 to 86400",
            "600",
            "How long `start` waits for the VM to answer SSH.",
            "120",
        ),
        key("skip-export", "true or false", "false", "Whether `lago export` leaves the VM out.", "true"),
        key(
            "based-on",
            "mapping of VM keys",
            "",
            "Keys the VM takes where it writes none (the original's inheritance).",
            "{memory: 2048, vcpu: 4}",
        ),
        key(
            "name",
            "text",
            "the VM's key",
            "The VM's name again, as records and exported files carry it; it must equal the key.",
            "vm01",
        ),
        key(
            "snapshots",
            "mapping",
            "",
            "Carried by records and exported files; `init` starts every VM without snapshots.",
            "{}",
        ),
        key(
            "mgmt_net",
            "network name",
            "the management network the VM is on",
            "Carried by records and exported files; `init` decides it from the VM's NICs.",
            "lan",
        ),
        own(
            "libvirt_url",
            "libvirt URI",
            "`libvirt_url` of the configuration",
            "The libvirt host of a `local-libvirt` VM (also read under `metadata`): one environment may span hosts.",
            "qemu+ssh://root@host2/system",
        ),
        own(
            "forwards",
            "list of forwards",
            "none",
            "TCP ports of the VM reachable on the host's 127.0.0.1, set up when the VM starts (`local-qemu` and `local-libvirt`).",
            "[{guest: 8080}, {guest: 5432, host: 15432}]",
        ),
        Key {
            origin: Origin::Refused,
            ..key(
                "type",
                "`ova`",
                "",
                "The original's OVA domains: refused (lago does not import OVA files; use a template, or a disk of type file with the appliance's image).",
                "ova",
            )
        },
        Key {
            origin: Origin::Refused,
            ..key(
                "url",
                "URL",
                "",
                "The OVA file of a `type: ova` domain: refused with it.",
                "http://example.com/appliance.ova",
            )
        },
        Key { origin: Origin::Ignored, ..key("cpu", "anything", "", "the number of CPUs is `vcpu`", "2") },
        Key { origin: Origin::Ignored, ..key("cpus", "anything", "", "the number of CPUs is `vcpu`", "2") },
    ],
    checked: true,
};

/// Keys of a VM's `metadata` that lago reads (the mapping is free-form).
pub const METADATA: Section = Section {
    path: "domains.<vm>.metadata",
    title: "VM metadata",
    doc: "Free-form: every key is kept in the VM's record (the SDK's `vm.metadata`). These are the keys lago reads.",
    keys: &[
        key(
            "deploy-scripts",
            "list of paths on the host",
            "none",
            "Scripts `lago deploy` runs in the VM, in order (copied into the prefix at `init`; `$LAGO_INITFILE_PATH` is the init file's directory).",
            "[$LAGO_INITFILE_PATH/scripts/setup.sh]",
        ),
        key(
            "ovirt-scripts",
            "list of paths on the host",
            "",
            "Deprecated spelling of `deploy-scripts`, with a warning.",
            "[setup.sh]",
        ),
        own("libvirt_url", "libvirt URI", "", "As the VM's own `libvirt_url`.", "qemu:///system"),
        own("ssh-host", "host name or address", "the VM's address", "Where an `ssh` VM is reached.", "192.0.2.10"),
        own("ssh-port", "port", "22", "The SSH port of an `ssh` VM.", "2222"),
        own(
            "ssh-key",
            "path of a private key",
            "the environment's key",
            "The key lago offers to an `ssh` VM.",
            "~/.ssh/id_ed25519",
        ),
    ],
    checked: false,
};

/// A NIC.
pub const NIC: Section = Section {
    path: "domains.<vm>.nics[]",
    title: "NICs",
    doc: "One network interface of a VM.",
    keys: &[
        key("net", "network name", "", "Required: the network of `nets` the NIC is on.", "lan"),
        key(
            "ip",
            "IPv4 address",
            "the lowest free address from .2 of the network's /24",
            "A static address; only its last octet counts on a network whose subnet lago chose.",
            "192.168.200.10",
        ),
        key(
            "mtu",
            "whole number",
            "the network's",
            "Carried by records and exported files; the network's `mtu` decides.",
            "1500",
        ),
        own(
            "ip6",
            "IPv6 address, or a host part such as `::5`",
            "the IPv4 address's host part (`192.168.200.7` gives `::7`), or on an IPv6-only network the lowest free from `::2`",
            "A static IPv6 address in the network's `ipv6` prefix; only on a network with `ipv6`; each once per network.",
            "fd8f:1:2::10",
        ),
    ],
    checked: true,
};

/// A forwarded port.
pub const FORWARD: Section = Section {
    path: "domains.<vm>.forwards[]",
    title: "Forwarded ports",
    doc: "lago's own: a TCP port of the VM reachable at `127.0.0.1:PORT` on the host while the VM runs (`lago forward --list`).",
    keys: &[
        own("guest", "port, 1 to 65535", "", "Required: the port in the VM; each once per VM.", "8080"),
        own(
            "host",
            "port, 1 to 65535",
            "a free port, the same as before when it is still free",
            "The port on the host's loopback; a start fails, naming it, when another program holds it.",
            "18080",
        ),
    ],
    checked: true,
};

/// A disk.
pub const DISK: Section = Section {
    path: "domains.<vm>.disks[]",
    title: "Disks",
    doc: "One disk of a VM; the image is `images/<vm>_<name>.<format>` in the prefix unless a file disk is used in place.",
    keys: &[
        key(
            "type",
            "`template`, `empty` or `file`",
            "",
            "Required: an overlay on a template, a new empty image, or an existing (or downloaded) image.",
            "template",
        ),
        key(
            "name",
            "letters, digits, `-`, `_`, `.`",
            "a file disk's file name",
            "Required (but for a file disk with a `path`): part of the image's file name.",
            "root",
        ),
        key(
            "dev",
            "`vdX` (virtio), `sdX` (virtio-scsi) or `hdX` (IDE)",
            "`vda`, `vdb`... by position",
            "The disk's device in the guest; `format: iso` makes a CD-ROM.",
            "vda",
        ),
        key(
            "format",
            "`qcow2`, `raw`, `iso`, `vmdk`, `vdi`, `vhdx` or `qed`",
            "`qcow2`; a file disk's extension, else `raw`",
            "The image's format.",
            "qcow2",
        ),
        key(
            "size",
            "size such as `10G`, `512M`, or bytes (at least 1M)",
            "",
            "Required for an empty disk; the size of a new image.",
            "10G",
        ),
        key(
            "metadata",
            "mapping",
            "`{}`",
            "Kept in the record, updated with the template's published metadata (`root-partition`, `distro`...).",
            "{root-partition: /dev/sda2}",
        ),
        key(
            "template_name",
            "template name",
            "",
            "Required for a template disk: a template of the repository (`template_repo_path`).",
            "tiny",
        ),
        key("template_version", "version", "the newest (by timestamp)", "The template's version.", "v1"),
        key(
            "template_type",
            "`lago` or `qcow2`",
            "`lago`",
            "A template of the repository, or a qcow2 image at `path` (an exported disk).",
            "qcow2",
        ),
        key(
            "path",
            "path on the host",
            "",
            "A file disk's image (used in place unless `make_a_copy`), or a `qcow2` template's image; `$VARS` are expanded.",
            "$LAGO_INITFILE_PATH/disk.qcow2",
        ),
        key(
            "make_a_copy",
            "true or false",
            "false",
            "Whether a file disk is copied into the prefix instead of used in place.",
            "true",
        ),
        key(
            "build",
            "list of `{virt-customize: {OPTION: ARGUMENTS}}`",
            "none",
            "Steps run on the disk at `init` by `virt-customize`, in order; `ssh-inject: ''` injects the environment's key.",
            "[{virt-customize: {run-command: 'touch /root/built'}}]",
        ),
        key("skip-export", "true or false", "false", "Whether `lago export` leaves the disk out.", "true"),
        key(
            "url",
            "`file://`, `http://` or `https://` URL",
            "",
            "Where `init` downloads a file disk from, to `path` when given, else into the prefix.",
            "https://example.com/disk.qcow2",
        ),
    ],
    checked: true,
};

/// A network.
pub const NET: Section = Section {
    path: "nets.<net>",
    title: "Networks",
    doc: "One entry of `nets`, its key being the network's name: one isolated layer-2 network.",
    keys: &[
        key(
            "type",
            "`nat` or `bridge`",
            "`nat`",
            "`nat`: a /24 whose addresses lago plans (and, as root, a host leg holding the gateway); `bridge`: no addresses planned, isolated, or joined to a host bridge with `bridge`.",
            "bridge",
        ),
        key(
            "management",
            "true or false",
            "the first network by name, when none says true",
            "Whether the network carries the VMs' names and default route; each VM is on exactly one.",
            "true",
        ),
        key(
            "dns_domain_name",
            "DNS name",
            "`lago.local` on management networks",
            "The domain of the VMs' names on a management network (`vm01.lago.local`).",
            "demo.local",
        ),
        key(
            "dns_records",
            "mapping of host names to IPv4 addresses",
            "none",
            "More names the VMs resolve (management networks).",
            "{repo: 192.168.200.254}",
        ),
        key("main_dns", "text", "", "Kept in the network's record (the original's libvirt DNS).", "lan"),
        key(
            "gw",
            "IPv4 address ending in .1 to .254",
            "the lowest free /24 from 192.168.200.0, at .1",
            "The gateway: picks the network's /24.",
            "192.168.210.1",
        ),
        key(
            "dhcp",
            "`{start, end}`",
            "`{start: 100, end: 254}` for libvirt networks",
            "The DHCP range of libvirt's `nat` networks, as last octets.",
            "{start: 100, end: 200}",
        ),
        key("mtu", "whole number, 68 to 65535", "1500", "The MTU of the network's NICs.", "9000"),
        key("name", "text", "the network's key", "Carried by records and exported files.", "lan"),
        key(
            "mapping",
            "mapping of names to addresses",
            "",
            "Carried by records and exported files; `init` plans it again.",
            "{}",
        ),
        key(
            "dns_forward",
            "IPv4 address",
            "",
            "Carried by records and exported files; `init` plans it again.",
            "192.168.200.1",
        ),
        own(
            "bridge",
            "network interface name (1 to 15 characters)",
            "",
            "The existing host bridge a `type: bridge` network joins (of every libvirt host it spans).",
            "br0",
        ),
        own(
            "ipv6",
            "`auto` or a /64 prefix",
            "none: IPv4 only",
            "Gives the network IPv6: a /64 prefix, or `auto` (a unique local /64 derived from the environment at `init`, leased host-wide where a host leg holds it). Guests get their IPv6 addresses statically; names resolve to them (AAAA). For `local-qemu` VMs.",
            "fd8f:1:2::/64",
        ),
        own(
            "gw6",
            "IPv6 address in the prefix, or a host part",
            "the prefix's `::1`",
            "The IPv6 gateway (held by the host leg); only with `ipv6`.",
            "fd8f:1:2::1",
        ),
        own(
            "ipv4",
            "true or false",
            "true",
            "`false` makes the network IPv6-only: no `gw`, no IPv4 address on it; needs `ipv6`.",
            "false",
        ),
    ],
    checked: true,
};

/// A network's DHCP range.
pub const DHCP: Section = Section {
    path: "nets.<net>.dhcp",
    title: "DHCP ranges",
    doc: "The range libvirt's dnsmasq leases on a `nat` network of `local-libvirt` VMs (lago's own networks serve no DHCP: addresses come from the seed).",
    keys: &[
        key("start", "whole number, 2 to 254", "100", "The last octet of the first address.", "100"),
        key("end", "whole number, 2 to 254", "254", "The last octet of the last address; not before `start`.", "200"),
    ],
    checked: true,
};

/// Keys any mapping of the file may carry.
pub const ANY: Section = Section {
    path: "any mapping",
    title: "Anywhere",
    doc: "Keys any mapping of the file (a VM, a NIC, a disk, a network...) may carry.",
    keys: &[key(
        "comment",
        "anything",
        "",
        "Read by nothing, kept in the records (the original's users wrote `comment: Main NFS device`).",
        "the web server",
    )],
    checked: false,
};

/// Every section, in the reference's order.
pub const SECTIONS: &[&Section] = &[&TOP, &DOMAIN, &METADATA, &NIC, &FORWARD, &DISK, &NET, &DHCP, &ANY];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_says_what_it_is_and_shows_a_value() {
        for section in SECTIONS {
            assert!(!section.doc.is_empty() && !section.title.is_empty(), "{}", section.path);
            let mut seen = std::collections::BTreeSet::new();
            for k in section.keys {
                assert!(seen.insert(k.name), "{}: {} twice", section.path, k.name);
                assert!(
                    !k.kind.is_empty() && !k.doc.is_empty() && !k.example.is_empty(),
                    "{}.{}",
                    section.path,
                    k.name
                );
                assert!(
                    !k.doc.contains('|') && !k.kind.contains('|') && !k.example.contains('|'),
                    "{}.{}: no `|` (a table)",
                    section.path,
                    k.name
                );
            }
        }
    }

    /// The keys the reader (`model.rs`) reads by name: `map.get("KEY")`, `opt_string(map, path,
    /// "KEY", ...)`, `contains_key("KEY")`... Each must be in a section of the table, so a key
    /// read without being documented fails here (and the reader's unknown-key check would refuse
    /// it anyway, the table being what it checks against).
    #[test]
    fn every_key_the_reader_reads_is_in_the_table() {
        let source = include_str!("model.rs");
        let code = source.split("#[cfg(test)]").next().unwrap_or(source);
        let mut read = std::collections::BTreeSet::new();
        for pattern in ["get(\"", "contains_key(\"", "opt_string(map, path, \"", "opt_bool(map, path, \"", "port(\""] {
            let mut rest = code;
            while let Some(at) = rest.find(pattern) {
                rest = &rest[at + pattern.len()..];
                let name: String = rest.chars().take_while(|c| *c != '"').collect();
                read.insert(name);
            }
        }
        let documented: std::collections::BTreeSet<&str> =
            SECTIONS.iter().flat_map(|s| s.keys.iter().map(|k| k.name)).collect();
        let missing: Vec<&String> = read.iter().filter(|k| !documented.contains(k.as_str())).collect();
        assert!(read.len() > 40, "the reader's keys were not found: {read:?}");
        assert!(missing.is_empty(), "keys read in spec/model.rs without a row in spec/keys.rs: {missing:?}");
    }
}
