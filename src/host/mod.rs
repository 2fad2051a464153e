//! The boundary to the live host: the filesystem under `--root`, service
//! backends, PostgreSQL processes and SSH. Everything above this module works
//! on plain data and is testable without touching a machine.

pub mod atomic;
pub mod fanout;
pub mod fs;
pub mod orphans;
pub mod postgres;
pub mod process;
pub mod rename;
pub mod service;
pub mod ssh;
