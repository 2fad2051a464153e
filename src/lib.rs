//! imlrecover: a declarative plan/apply restore orchestrator for the
//! Integrated Manager for Lustre server.
//!
//! The layers, from the outside in:
//! * `cli` and `commands`: raw arguments, one module per subcommand (none
//!   calling another); `target`: those arguments validated and opened once;
//! * `views`: every word a person reads (the engine reports events to them);
//! * `plan` and `apply`: what a restore would change, and the apply protocol;
//! * `recipe`: HCL → typed, validated model (the only place recipes are read);
//! * `graph`: the dependency DAG built from a recipe;
//! * `host`: the only boundary that touches the live machine.

pub mod apply;
pub mod audit;
pub mod bundle;
pub mod cli;
pub mod commands;
pub mod fault;
pub mod graph;
pub mod host;
pub mod import;
pub mod init;
pub mod metrics;
pub mod plan;
pub mod printer;
pub mod recipe;
pub mod redact;
pub mod resources;
pub mod sandbox;
pub mod state;
pub mod target;
pub mod transfer;
pub mod views;
pub mod x509;

pub use commands::run;
