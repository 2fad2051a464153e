//! Test harness shared by the integration tests: each part is real (the
//! built binary, PostgreSQL clusters, sshd, LSB init scripts) and torn down
//! when the test ends. Not every test file uses every part.
#![allow(dead_code)]

pub mod chroma;
pub mod cli;
pub mod host;
pub mod manager;
pub mod monitor;
pub mod oldkernel;
pub mod pg;
pub mod sftp;
pub mod sshd;
pub mod world;
