//! lago: ad-hoc virtual environments of VMs, networks and disks.
//!
//! This crate holds all of lago's behaviour and is its SDK; the `lago` command line is a thin
//! layer over it. See `DESIGN.md` for the architecture.

pub mod accel;
pub mod ansible;
pub mod bootstrap;
pub mod config;
pub mod cpio;
pub mod cpu;
pub mod diagnose;
pub mod doctor;
pub mod env;
pub mod export;
pub mod faults;
pub mod guest;
pub mod image;
pub mod init;
pub mod interrupt;
pub mod lock;
pub mod logfile;
pub mod output;
pub mod pathio;
pub mod plan;
pub mod prefix;
pub mod process;
pub mod provider;
pub mod qmp;
pub mod report;
pub mod runtime;
pub mod sdk;
pub mod service;
pub mod snapshot;
pub mod spec;
pub mod ssh;
pub mod status;
pub mod switch;
pub mod template;
pub mod workdir;
