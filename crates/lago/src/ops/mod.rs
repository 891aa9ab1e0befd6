//! Operations on environments: what the verbs do, each in terms of the environment ([`crate::env`])
//! and the layers under it.
//!
//! [`init`] builds a prefix from an init file; [`snapshot`] takes and reverts named snapshots;
//! [`export`] writes stopped VMs' disks and an init file that brings them back; [`faults`] breaks
//! networks on purpose; [`forward`] forwards VMs' ports to the host's loopback; [`guest`] copies files, collects artifacts, runs deploy scripts and shuts
//! VMs down; [`ansible`] writes inventories; [`status`] reports; [`reach`] says how to reach a kept
//! environment; [`service`] drives services in VMs; [`wait`] waits until a VM is ready for a
//! test's next step (a command, a port, a service, a file, a console line).

pub mod ansible;
pub mod capture;
pub mod console;
pub mod export;
pub mod faults;
pub mod fork;
pub mod forward;
pub mod graph;
pub mod guest;
pub mod init;
pub mod reach;
pub mod resume;
pub mod service;
pub mod snapshot;
pub mod status;
pub mod wait;
