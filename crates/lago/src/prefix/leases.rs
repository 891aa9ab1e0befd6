//! Host-wide leases of /24 subnets for networks a host's kernel sees (libvirt bridges, host
//! legs), in the original's lease files, so that two environments (of lago or of the original)
//! never take one subnet; and of the /64 prefixes of IPv6 networks with a host leg (lago's own
//! files, `ipv6-<prefix>.lease` beside them).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::host::lock::{FileLock, LockError};
use crate::host::pathio::at as io;
use crate::prefix::state::RuntimeError;
use crate::report::NoopReporter;

/// Host-wide leases of /24 subnets for networks a host's kernel sees (libvirt bridges), as the
/// original kept them (reference §10): `<dir>/<third octet>.lease` = `["<prefix>/uuid",
/// "<uuid>"]` for 192.168.200.0/24 to 192.168.255.0/24, under `<dir>/subnet-lease.lock`. The
/// original and lago on one host never take one subnet twice.
pub struct SubnetLeases {
    dir: PathBuf,
}

/// The third octets subnets are leased from.
pub const SUBNET_OCTETS: std::ops::RangeInclusive<u8> = 200..=255;

/// Subnet lease failures.
#[derive(Debug, thiserror::Error)]
pub enum SubnetError {
    /// Lease files could not be used.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// Another live environment has the subnet.
    #[error("Can't acquire subnet 192.168.{octet}.0/24: it is taken by {holder}")]
    Taken {
        /// Third octet.
        octet: u8,
        /// The holder's uuid file.
        holder: String,
    },
    /// Another live environment has the IPv6 prefix.
    #[error("Can't acquire IPv6 prefix {prefix}/64: it is taken by {holder}")]
    Taken6 {
        /// The prefix.
        prefix: std::net::Ipv6Addr,
        /// The holder's uuid file.
        holder: String,
    },
    /// Every subnet is taken.
    #[error(
        "Can't acquire a subnet from 192.168.200.0/24 - 192.168.255.0/24: the store of subnets {dir} is full; destroy unused environments"
    )]
    Full {
        /// The lease directory.
        dir: PathBuf,
    },
}

impl SubnetLeases {
    /// Leases kept in `dir` (the configuration's `lease_dir`).
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_owned() }
    }

    fn lock(&self) -> Result<FileLock, RuntimeError> {
        std::fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        let path = self.dir.join("subnet-lease.lock");
        FileLock::acquire(&path, &NoopReporter, "Waiting for the lease store", Some(Duration::from_secs(30))).map_err(
            |e| match e {
                LockError::Timeout { path } => RuntimeError::LockTimeout { path },
                LockError::Io { path, source } => RuntimeError::Io(crate::host::pathio::at("lock", &path)(source)),
                LockError::Interrupted { path, .. } => RuntimeError::LockTimeout { path },
            },
        )
    }

    fn holder(&self, octet: u8) -> Option<(PathBuf, String)> {
        self.holder_of(&self.dir.join(format!("{octet}.lease")))
    }

    fn holder_of(&self, file: &Path) -> Option<(PathBuf, String)> {
        let text = std::fs::read_to_string(file).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The live holder's uuid file, if another environment than `uuid` holds the subnet.
    fn other_holder(&self, octet: u8, uuid: &str) -> Option<PathBuf> {
        self.other_holder_of(&self.dir.join(format!("{octet}.lease")), uuid)
    }

    fn other_holder_of(&self, file: &Path, uuid: &str) -> Option<PathBuf> {
        let (path, held) = self.holder_of(file)?;
        let live = std::fs::read_to_string(&path).is_ok_and(|u| u.trim() == held);
        (live && held != uuid).then_some(path)
    }

    /// The lease file of IPv6 prefix `prefix` (a /64).
    fn file6(&self, prefix: std::net::Ipv6Addr) -> PathBuf {
        let half = (u128::from(prefix) >> 64) as u64;
        self.dir.join(format!("ipv6-{half:016x}.lease"))
    }

    /// Every lease file of this store: the subnets', then the IPv6 prefixes'.
    fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = SUBNET_OCTETS.map(|o| self.dir.join(format!("{o}.lease"))).collect();
        let mut six: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("ipv6-") && n.ends_with(".lease"))
            })
            .collect();
        six.sort();
        files.extend(six);
        files
    }

    /// Whether IPv6 prefix `prefix` is free for the prefix `uuid`, without taking it.
    pub fn check6(&self, prefix: std::net::Ipv6Addr, uuid: &str) -> Result<(), SubnetError> {
        match self.other_holder_of(&self.file6(prefix), uuid) {
            Some(holder) => Err(SubnetError::Taken6 { prefix, holder: holder.display().to_string() }),
            None => Ok(()),
        }
    }

    /// Leases the IPv6 prefixes `wanted` for the prefix whose uuid file is `uuid_path`: each as
    /// given, or, when it may move (`true`: an `ipv6: auto` prefix), the next free one after it
    /// (its 16-bit subnet counting up). All or nothing; returns the prefixes leased.
    pub fn acquire6(
        &self,
        uuid_path: &Path,
        uuid: &str,
        wanted: &[(std::net::Ipv6Addr, bool)],
    ) -> Result<Vec<std::net::Ipv6Addr>, SubnetError> {
        let _lock = self.lock()?;
        let mut got: Vec<std::net::Ipv6Addr> = Vec::new();
        let undo = |got: &[std::net::Ipv6Addr]| {
            for p in got {
                let file = self.file6(*p);
                if self.holder_of(&file).is_some_and(|(_, u)| u == uuid) {
                    let _ = std::fs::remove_file(file);
                }
            }
        };
        for (prefix, movable) in wanted {
            let free =
                |p: std::net::Ipv6Addr| !got.contains(&p) && self.other_holder_of(&self.file6(p), uuid).is_none();
            let found = if *movable {
                (0..=u16::MAX).map(|step| subnet_plus(*prefix, step)).find(|p| free(*p))
            } else {
                Some(*prefix).filter(|p| free(*p))
            };
            let Some(p) = found else {
                undo(&got);
                let holder = self.other_holder_of(&self.file6(*prefix), uuid).unwrap_or_default();
                return Err(SubnetError::Taken6 { prefix: *prefix, holder: holder.display().to_string() });
            };
            let path = self.file6(p);
            let content = serde_json::to_string(&(uuid_path, uuid)).unwrap_or_default();
            if let Err(e) = std::fs::write(&path, content) {
                undo(&got);
                return Err(SubnetError::Runtime(io("write", &path)(e).into()));
            }
            got.push(p);
        }
        Ok(got)
    }

    /// Whether the subnet of third octet `octet` is free for the prefix `uuid` (its own, or no
    /// live environment's), without taking it.
    pub fn check(&self, octet: u8, uuid: &str) -> Result<(), SubnetError> {
        match self.other_holder(octet, uuid) {
            Some(holder) => Err(SubnetError::Taken { octet, holder: holder.display().to_string() }),
            None => Ok(()),
        }
    }

    /// Leases one subnet per entry of `wanted` for the prefix whose uuid file is `uuid_path`: the
    /// given third octet, or the lowest free one not in `avoid`. All or nothing.
    pub fn acquire(
        &self,
        uuid_path: &Path,
        uuid: &str,
        wanted: &[Option<u8>],
        avoid: &[u8],
    ) -> Result<Vec<u8>, SubnetError> {
        let _lock = self.lock()?;
        let mut got: Vec<u8> = Vec::new();
        let write = |octet: u8| -> Result<(), SubnetError> {
            let path = self.dir.join(format!("{octet}.lease"));
            let content = serde_json::to_string(&(uuid_path, uuid)).unwrap_or_default();
            std::fs::write(&path, content).map_err(|e| SubnetError::Runtime(io("write", &path)(e).into()))
        };
        let undo = |got: &[u8]| {
            for o in got {
                if self.holder(*o).is_some_and(|(_, u)| u == uuid) {
                    let _ = std::fs::remove_file(self.dir.join(format!("{o}.lease")));
                }
            }
        };
        let fixed: Vec<u8> = wanted.iter().flatten().copied().collect();
        for w in wanted {
            let octet = match w {
                Some(o) => {
                    if let Some(holder) = self.other_holder(*o, uuid) {
                        undo(&got);
                        return Err(SubnetError::Taken { octet: *o, holder: holder.display().to_string() });
                    }
                    *o
                }
                None => match SUBNET_OCTETS.clone().find(|o| {
                    !fixed.contains(o)
                        && !avoid.contains(o)
                        && !got.contains(o)
                        && self.other_holder(*o, uuid).is_none()
                }) {
                    Some(o) => o,
                    None => {
                        undo(&got);
                        return Err(SubnetError::Full { dir: self.dir.clone() });
                    }
                },
            };
            if let Err(e) = write(octet) {
                undo(&got);
                return Err(e);
            }
            got.push(octet);
        }
        Ok(got)
    }

    /// Runs `move_prefix` (which moves the uuid file from `from` to `to`) with the store locked,
    /// then points the leases of `uuid` at `to`: no other environment ever sees them stale.
    pub fn rehome<E>(
        &self,
        from: &Path,
        to: &Path,
        uuid: &str,
        move_prefix: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<RuntimeError>,
    {
        let _lock = self.lock()?;
        move_prefix()?;
        for path in self.files() {
            if self.holder_of(&path).is_some_and(|(p, u)| u == uuid && p == from) {
                let content = serde_json::to_string(&(to, uuid)).unwrap_or_default();
                crate::host::pathio::write_atomic(&path, content.as_bytes()).map_err(RuntimeError::from)?;
            }
        }
        Ok(())
    }

    /// Releases every subnet the prefix `uuid` holds.
    pub fn release_all(&self, _uuid_path: &Path, uuid: &str) -> Result<(), RuntimeError> {
        if !self.dir.is_dir() {
            return Ok(());
        }
        let _lock = self.lock()?;
        for path in self.files() {
            if self.holder_of(&path).is_some_and(|(_, u)| u == uuid) {
                std::fs::remove_file(&path).map_err(io("remove", &path))?;
            }
        }
        Ok(())
    }
}

/// `prefix` with `step` added to its 16-bit subnet (wrapping).
fn subnet_plus(prefix: std::net::Ipv6Addr, step: u16) -> std::net::Ipv6Addr {
    let mut s = prefix.segments();
    s[3] = s[3].wrapping_add(step);
    std::net::Ipv6Addr::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_are_leased_host_wide_in_the_originals_files() {
        let dir = tempfile::tempdir().unwrap();
        let leases = SubnetLeases::new(dir.path());
        let (a, b) = (dir.path().join("a-uuid"), dir.path().join("b-uuid"));
        std::fs::write(&a, "aaaa").unwrap();
        std::fs::write(&b, "bbbb").unwrap();
        assert_eq!(leases.acquire(&a, "aaaa", &[None, Some(210), None], &[201]).unwrap(), [200, 210, 202]);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("210.lease")).unwrap(),
            format!("[{:?},\"aaaa\"]", a.display().to_string())
        );
        assert_eq!(leases.acquire(&b, "bbbb", &[None], &[]).unwrap(), [201]);
        let err = leases.acquire(&b, "bbbb", &[Some(202)], &[]).unwrap_err();
        assert!(err.to_string().starts_with("Can't acquire subnet 192.168.202.0/24: it is taken by"), "{err}");
        // Re-acquiring one's own lease is fine; a gone prefix's lease is stale.
        assert_eq!(leases.acquire(&a, "aaaa", &[Some(210)], &[]).unwrap(), [210]);
        std::fs::remove_file(&a).unwrap();
        assert_eq!(leases.acquire(&b, "bbbb", &[Some(202)], &[]).unwrap(), [202]);
        leases.release_all(&b, "bbbb").unwrap();
        assert!(!dir.path().join("201.lease").exists() && !dir.path().join("202.lease").exists());
        // A prefix renamed into place keeps its leases, pointing at its new uuid file.
        let c = dir.path().join("c-uuid");
        std::fs::write(&a, "aaaa").unwrap();
        leases.acquire(&a, "aaaa", &[Some(230)], &[]).unwrap();
        leases
            .rehome::<RuntimeError>(&a, &c, "aaaa", || {
                std::fs::rename(&a, &c).unwrap();
                Ok(())
            })
            .unwrap();
        assert!(leases.acquire(&b, "bbbb", &[Some(230)], &[]).is_err());
    }

    #[test]
    fn ipv6_prefixes_are_leased_beside_the_subnets() {
        let dir = tempfile::tempdir().unwrap();
        let leases = SubnetLeases::new(dir.path());
        let (a, b) = (dir.path().join("a-uuid"), dir.path().join("b-uuid"));
        std::fs::write(&a, "aaaa").unwrap();
        std::fs::write(&b, "bbbb").unwrap();
        let p = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap();
        assert_eq!(leases.acquire6(&a, "aaaa", &[(p("fd8f:1:2::"), false)]).unwrap(), [p("fd8f:1:2::")]);
        assert!(dir.path().join("ipv6-fd8f000100020000.lease").is_file());
        let err = leases.acquire6(&b, "bbbb", &[(p("fd8f:1:2::"), false)]).unwrap_err();
        assert!(err.to_string().starts_with("Can't acquire IPv6 prefix fd8f:1:2::/64: it is taken by"), "{err}");
        assert!(leases.check6(p("fd8f:1:2::"), "bbbb").is_err() && leases.check6(p("fd8f:1:2::"), "aaaa").is_ok());
        // An `auto` prefix moves to the next free subnet; a failure takes nothing.
        assert_eq!(leases.acquire6(&b, "bbbb", &[(p("fd8f:1:2::"), true)]).unwrap(), [p("fd8f:1:2:1::")]);
        assert!(leases.acquire6(&b, "bbbb", &[(p("fd00::"), false), (p("fd8f:1:2::"), false)]).is_err());
        assert!(!dir.path().join("ipv6-fd00000000000000.lease").exists());
        // Moved with the prefix, released with it.
        let c = dir.path().join("c-uuid");
        leases
            .rehome::<RuntimeError>(&a, &c, "aaaa", || {
                std::fs::rename(&a, &c).unwrap();
                Ok(())
            })
            .unwrap();
        assert!(leases.acquire6(&b, "bbbb", &[(p("fd8f:1:2::"), false)]).is_err());
        leases.release_all(&c, "aaaa").unwrap();
        assert!(!dir.path().join("ipv6-fd8f000100020000.lease").exists());
        leases.release_all(&b, "bbbb").unwrap();
        assert!(
            std::fs::read_dir(dir.path())
                .unwrap()
                .flatten()
                .all(|e| !e.file_name().to_string_lossy().ends_with(".lease"))
        );
    }
}
