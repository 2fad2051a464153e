//! The integration tests: one binary, one module per topic, so that
//! `support/` (the test world) compiles once and the tests share one
//! process, run as threads.
//!
//! Adding a topic: write `tests/<topic>.rs` with `use crate::support;`
//! instead of `mod support;` (then `use support::...` works as before) and
//! add `mod <topic>;` below. Run one topic with
//! `cargo test --test main <topic>::`. Tests here must not change
//! process-wide state (environment variables, current directory, umask,
//! signal handlers): anything of that kind goes into a child process.

mod support;

mod apply;
mod apply_crash;
mod audit;
mod backup;
mod completions;
mod demo;
mod dist;
mod docs;
mod drill;
mod drill_keys;
mod el6kernel;
mod encrypt;
mod errors;
mod faults;
mod faults_backup;
mod formats;
mod fuzz;
mod hostile;
mod import;
mod import_dumps;
mod import_signing;
mod influxdb;
mod influxdb_faults;
mod init;
mod monitoring;
mod oldkernel;
mod pg_cluster;
mod pg_majors;
mod pg_oldclient;
mod pg_versions;
mod plan;
mod plan_observe;
mod postgres;
mod push_pull;
mod releases;
mod remote;
mod retention;
mod signing;
mod split;
mod ssh;
mod unit_lookups;
mod validate;
mod verify;
