//! Network interfaces of the host: whether lago may create them, and the TAP interface that
//! gives a network of lago's switch its host leg (DESIGN §3).
//!
//! The TAP is not persistent: it exists while the process that opened it (the network's switch)
//! holds it, so it goes with the switch however the switch ends, `kill -9` included. Its address
//! is set with iproute2's `ip`, the one program this module runs.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use crate::host::process::{CommandRunner, Invocation, ProcessError};

/// Longest interface name the kernel takes (`IFNAMSIZ` - 1).
pub const MAX_NAME: usize = 15;

/// `CAP_NET_ADMIN`'s bit in `/proc/<pid>/status`'s `CapEff`.
const CAP_NET_ADMIN: u32 = 12;

/// Why a host interface could not be made or configured.
#[derive(Debug, thiserror::Error)]
pub enum NetdevError {
    /// `/dev/net/tun` could not be opened.
    #[error("Cannot open /dev/net/tun to create interface {name}")]
    Open {
        /// The interface.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused the TAP.
    #[error("Cannot create TAP interface {name}{hint}")]
    Create {
        /// The interface.
        name: String,
        /// What may explain it.
        hint: &'static str,
        /// The kernel's words.
        #[source]
        source: std::io::Error,
    },
    /// `ip` failed.
    #[error("Cannot configure interface {name}")]
    Configure {
        /// The interface.
        name: String,
        /// The command and its own words.
        #[source]
        source: ProcessError,
    },
}

/// Whether this process may create network interfaces: `Err` says why not.
pub fn may_create_interfaces() -> Result<(), String> {
    may_create_interfaces_with(
        std::fs::read_to_string("/proc/self/status").ok().as_deref(),
        Path::new("/dev/net/tun").exists(),
    )
}

fn may_create_interfaces_with(status: Option<&str>, tun: bool) -> Result<(), String> {
    let caps = status
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("CapEff:")))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    if caps & (1 << CAP_NET_ADMIN) == 0 {
        return Err("lago runs without root or CAP_NET_ADMIN".into());
    }
    if !tun {
        return Err("/dev/net/tun is missing (load the `tun` kernel module)".into());
    }
    Ok(())
}

/// The interface (other than `except`) through which this namespace already routes part of
/// `net`/`prefix_len` (from `/proc/net/route`; default routes aside): a host leg there would
/// compete with it, as libvirt refuses a network whose subnet is in use.
pub fn subnet_user(net: std::net::Ipv4Addr, prefix_len: u8, except: &str) -> Option<String> {
    subnet_user_in(&std::fs::read_to_string("/proc/net/route").ok()?, net, prefix_len, except)
}

fn subnet_user_in(routes: &str, net: std::net::Ipv4Addr, prefix_len: u8, except: &str) -> Option<String> {
    let ours = u32::from(net);
    let our_mask = u32::MAX.checked_shl(32 - u32::from(prefix_len.min(32))).unwrap_or(0);
    routes.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (iface, dest, mask) = (f.first()?, f.get(1)?, f.get(7)?);
        // The kernel prints the address's bytes (network order) read as a native integer.
        let addr = |hex: &str| u32::from_str_radix(hex, 16).ok().map(|v| u32::from_be_bytes(v.to_ne_bytes()));
        let (dest, mask) = (addr(dest)?, addr(mask)?);
        let common = mask & our_mask;
        (mask != 0 && *iface != except && dest & common == ours & common).then(|| (*iface).to_owned())
    })
}

/// The interface (other than `except`, and loopback) through which this namespace already routes
/// part of the IPv6 /64 `prefix`, or holds an address in it (from `/proc/net/ipv6_route`;
/// default routes aside).
pub fn prefix_user6(prefix: std::net::Ipv6Addr, except: &str) -> Option<String> {
    prefix_user6_in(&std::fs::read_to_string("/proc/net/ipv6_route").ok()?, prefix, except)
}

fn prefix_user6_in(routes: &str, prefix: std::net::Ipv6Addr, except: &str) -> Option<String> {
    let ours = u128::from(prefix);
    routes.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (dest, len, iface) = (f.first()?, f.get(1)?, f.get(9)?);
        let dest = u128::from_str_radix(dest, 16).ok()?;
        let len = u32::from(u8::from_str_radix(len, 16).ok()?).min(128);
        let common = u128::MAX.checked_shl(128 - len.min(64)).unwrap_or(0);
        (len != 0 && *iface != except && *iface != "lo" && dest & common == ours & common).then(|| (*iface).to_owned())
    })
}

/// Whether this host has IPv6 (a kernel booted with `ipv6.disable=1` has no `/proc/sys/net/ipv6`).
pub fn has_ipv6() -> bool {
    Path::new("/proc/sys/net/ipv6").is_dir()
}

/// Whether an interface of that name exists in this network namespace.
pub fn exists(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && Path::new("/sys/class/net").join(name).exists()
}

/// An interface name for `net` of the environment `env_id`: `<env_id[:4]>-<net>`, as the
/// original named its libvirt networks; when that is longer than the kernel takes, the net's
/// name is shortened and a hash of it keeps names of one environment apart.
pub fn interface_name(env_id: &str, net: &str) -> String {
    let id: String = env_id.chars().take(4).collect();
    let clean: String = net.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    let full = format!("{id}-{clean}");
    if full.len() <= MAX_NAME && clean == net {
        return full;
    }
    let hash = net.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    let keep: String = clean.chars().take(MAX_NAME - id.len() - 6).collect();
    format!("{id}-{keep}{:05x}", hash & 0xf_ffff)
}

nix::ioctl_write_ptr_bad!(tunsetiff, 0x4004_54ca, IfReq);

/// `struct ifreq` as TUNSETIFF reads it: the name and the flags.
#[repr(C)]
pub struct IfReq {
    name: [u8; 16],
    flags: i16,
    _pad: [u8; 22],
}

/// A TAP interface held open: frames in and out, one per read or write.
pub struct Tap {
    file: File,
    /// Its name.
    pub name: String,
}

impl Tap {
    /// Creates the TAP `name` (not persistent: it ends when this handle is dropped, or its
    /// process ends), non-blocking.
    pub fn create(name: &str) -> Result<Self, NetdevError> {
        const IFF_TAP: i16 = 0x0002;
        const IFF_NO_PI: i16 = 0x1000;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .map_err(|source| NetdevError::Open { name: name.to_owned(), source })?;
        let mut req = IfReq { name: [0; 16], flags: IFF_TAP | IFF_NO_PI, _pad: [0; 22] };
        let bytes = name.as_bytes();
        req.name[..bytes.len().min(MAX_NAME)].copy_from_slice(&bytes[..bytes.len().min(MAX_NAME)]);
        use std::os::fd::AsRawFd;
        // SAFETY: `req` is a whole `struct ifreq` (40 bytes) that outlives the call, on an open fd.
        #[allow(unsafe_code, reason = "TUNSETIFF is an ioctl: the one way to create a TAP without a program")]
        let set = unsafe { tunsetiff(file.as_raw_fd(), &req) };
        set.map_err(|errno| NetdevError::Create {
            name: name.to_owned(),
            hint: match errno {
                nix::errno::Errno::EBUSY => " (an interface of that name is in use: another environment's?)",
                nix::errno::Errno::EPERM => " (needs root or CAP_NET_ADMIN)",
                _ => "",
            },
            source: std::io::Error::from(errno),
        })?;
        let flags = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GETFL)
            .map(nix::fcntl::OFlag::from_bits_truncate)
            .unwrap_or(nix::fcntl::OFlag::empty());
        let _ = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(flags | nix::fcntl::OFlag::O_NONBLOCK));
        Ok(Self { file, name: name.to_owned() })
    }

    /// Gives it `address` (`192.168.200.1/24`; none when empty) and `address6`
    /// (`fd8f:1:2::1/64`, without duplicate address detection: usable at once), and brings it up.
    pub fn configure(
        &self,
        address: &str,
        address6: Option<&str>,
        runner: &dyn CommandRunner,
    ) -> Result<(), NetdevError> {
        let err = |source| NetdevError::Configure { name: self.name.clone(), source };
        let ip = crate::host::process::program_path("ip").display().to_string();
        if !address.is_empty() {
            runner.run(&Invocation::new(&ip).args(["addr", "add", address, "dev", &self.name])).map_err(err)?;
        }
        if let Some(address6) = address6 {
            // A host whose new interfaces start without IPv6 (`default.disable_ipv6 = 1`) gets
            // it on this one only.
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", self.name), "0");
            runner
                .run(&Invocation::new(&ip).args(["-6", "addr", "add", address6, "dev", &self.name, "nodad"]))
                .map_err(err)?;
        }
        runner.run(&Invocation::new(&ip).args(["link", "set", &self.name, "up"])).map_err(err)?;
        Ok(())
    }

    /// One frame from the host, if one waits.
    pub fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.file.read(buf)
    }

    /// One frame to the host.
    pub fn send(&mut self, frame: &[u8]) -> std::io::Result<usize> {
        self.file.write(frame)
    }
}

impl AsFd for Tap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creating_interfaces_needs_cap_net_admin_and_the_tun_device() {
        let root = "Name:\tlago\nCapEff:\t000001ffffffffff\n";
        let user = "Name:\tlago\nCapEff:\t0000000000000000\n";
        assert_eq!(may_create_interfaces_with(Some(root), true), Ok(()));
        assert!(may_create_interfaces_with(Some(user), true).unwrap_err().contains("CAP_NET_ADMIN"));
        assert!(may_create_interfaces_with(Some(root), false).unwrap_err().contains("/dev/net/tun"));
        assert!(may_create_interfaces_with(None, true).is_err());
        // CAP_NET_ADMIN alone is enough.
        assert_eq!(may_create_interfaces_with(Some("CapEff:\t0000000000001000\n"), true), Ok(()));
    }

    #[test]
    fn interface_names_follow_the_originals_and_fit_the_kernel() {
        assert_eq!(interface_name("3f2a9c01", "lago"), "3f2a-lago");
        let long = interface_name("3f2a9c01", "management-network");
        assert!(long.len() <= MAX_NAME, "{long}");
        assert!(long.starts_with("3f2a-manag"), "{long}");
        assert_ne!(long, interface_name("3f2a9c01", "management-network2"));
        assert_ne!(interface_name("3f2a9c01", "a.b"), interface_name("3f2a9c01", "a_b"));
        assert!(interface_name("3f2a9c01", "a.b").len() <= MAX_NAME);
    }

    #[test]
    fn a_subnet_routed_through_another_interface_is_in_use() {
        let routes = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
            3f2a-lago\t00CDA8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let net = |c: u8| std::net::Ipv4Addr::new(192, 168, c, 0);
        // 192.168.0.0/24 on eth0; the default route does not count.
        assert_eq!(subnet_user_in(routes, net(0), 24, "x").as_deref(), Some("eth0"));
        assert_eq!(subnet_user_in(routes, net(200), 24, "x"), None);
        // 192.168.205.0/24 is a host leg's: its own interface does not count.
        assert_eq!(subnet_user_in(routes, net(205), 24, "3f2a-lago"), None);
        assert_eq!(subnet_user_in(routes, net(205), 24, "other").as_deref(), Some("3f2a-lago"));
        // A wider route covers the subnet.
        let wide = "h\nbr0\t0000A8C0\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        assert_eq!(subnet_user_in(wide, net(200), 24, "x").as_deref(), Some("br0"));
    }

    #[test]
    fn configuring_sets_the_address_then_brings_it_up() {
        let runner = crate::host::process::FakeRunner::new(|_| Ok(Default::default()));
        // A handle that is not a TAP: only `configure`'s commands are looked at.
        let tap = Tap { file: File::open("/dev/null").unwrap(), name: "3f2a-lago".into() };
        tap.configure("192.168.200.1/24", None, &runner).unwrap();
        let lines = runner.command_lines();
        assert!(lines.contains("addr add 192.168.200.1/24 dev 3f2a-lago"), "{lines}");
        assert!(lines.contains("link set 3f2a-lago up"), "{lines}");
        assert!(!lines.contains("-6"), "{lines}");
        // Dual-stack, then IPv6 only: the gateway's IPv6 address without DAD, before the link is up.
        let runner = crate::host::process::FakeRunner::new(|_| Ok(Default::default()));
        tap.configure("192.168.200.1/24", Some("fd8f:1:2::1/64"), &runner).unwrap();
        let lines = runner.command_lines();
        let v6 = lines.find("-6 addr add fd8f:1:2::1/64 dev 3f2a-lago nodad").unwrap_or_else(|| panic!("{lines}"));
        assert!(lines.find("addr add 192.168.200.1/24").unwrap() < v6 && v6 < lines.find("link set").unwrap());
        let runner = crate::host::process::FakeRunner::new(|_| Ok(Default::default()));
        tap.configure("", Some("fd8f:1:2::1/64"), &runner).unwrap();
        assert!(!runner.command_lines().contains("192.168"), "{}", runner.command_lines());
    }

    #[test]
    fn an_ipv6_prefix_routed_through_another_interface_is_in_use() {
        let routes = "\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000003 00000000 00000003     eth0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo
fd8f0001000200000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80200001 3f2a-lago
fd8f0001000200000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 3f2a-lago
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000003 00000000 00000001     eth0
";
        let p = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap();
        assert_eq!(prefix_user6_in(routes, p("fd00::"), "x").as_deref(), Some("eth0"));
        // The default route and loopback do not count; nor does the leg's own interface.
        assert_eq!(prefix_user6_in(routes, p("fd8f:1:3::"), "x"), None);
        assert_eq!(prefix_user6_in(routes, p("fd8f:1:2::"), "3f2a-lago"), None);
        assert_eq!(prefix_user6_in(routes, p("fd8f:1:2::"), "other").as_deref(), Some("3f2a-lago"));
        // A wider route covers the prefix.
        let wide = "fd8f0000000000000000000000000000 10 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 br0\n";
        assert_eq!(prefix_user6_in(wide, p("fd8f:1:2::"), "x").as_deref(), Some("br0"));
    }
}
