//! lago: ad-hoc virtual environments of VMs, networks and disks.
//!
//! This crate holds all of lago's behaviour and is its SDK; the `lago` command line is a thin
//! layer over it. See `DESIGN.md` for the architecture.

pub mod config;
pub mod diagnose;
pub mod doctor;
pub mod env;
pub mod host;
pub mod ops;
pub mod output;
pub mod plan;
pub mod prefix;
pub mod provider;
pub mod report;
pub mod sdk;
pub mod session;
pub mod spec;
pub mod suggest;
pub mod template;
