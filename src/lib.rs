//! imlrecover: a declarative plan/apply restore orchestrator for the
//! Integrated Manager for Lustre server.

pub mod host;

pub fn run() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
