//! `lago doctor`: what this host has of what lago needs, and the exact commands that fix the rest.
//!
//! [`examine`] runs every check through a [`Host`] (the real one is [`SystemHost`]; unit tests use
//! a fake) and returns a [`Report`]: one [`Check`] per need, grouped by what needs it, each with a
//! [`Fix`] when it fails. [`fix`] carries out the fixes that are package installations, in an order
//! that works on Debian 12: qemu from bookworm-backports first (Debian 12's own qemu 7.2 would
//! remove the qemu-img 10 these hosts come with), then everything that depends on it
//! (libguestfs). The same report drives the CLI's lines, its JSON and the set-up script.
//!
//! [`report`] holds what is reported, [`checks`] the checks, `cloud` the OpenStack cloud's, [`fix`] the fixes, [`host`] what
//! they ask of the host.

mod checks;
mod cloud;
mod fix;
mod host;
mod report;
#[cfg(test)]
mod tests;

pub use checks::examine;
pub use cloud::openstack_checks;
pub use fix::{DoctorError, fix};
pub use host::{AptFacts, Host, SystemHost};
pub use report::{BACKPORTS_SOURCES, Check, Fix, Group, Paths, Report};
