//! CLI tests: the built `lago` binary on fixture init files, output snapshotted with insta.

mod common;
mod test_capture;
mod test_config;
mod test_corpus;
mod test_docs;
mod test_doctor;
mod test_envs;
mod test_fork;
mod test_graph;
mod test_init;
mod test_invalid;
mod test_ipv6;
mod test_openstack;
mod test_ops;
mod test_records;
mod test_reliability;
mod test_status;
mod test_store;
mod test_template;
mod test_wait;
mod test_workdir;
