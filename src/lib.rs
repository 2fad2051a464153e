//! imlrecover: a declarative plan/apply restore orchestrator for the
//! Integrated Manager for Lustre server.
//!
//! The map of modules, from the outside in (the README's architecture
//! table says the same; a unit test below keeps the three in step):
//! * [`cli`]: the raw arguments; [`commands`]: one module per subcommand,
//!   none calling another; [`target`]: those arguments validated and opened
//!   once per command (recipe, root, bundle, services, state);
//! * [`views`]: every word a person reads (the engine reports events to
//!   them); [`printer`]: colour and progress decided once;
//! * [`recipe`]: HCL → typed, validated model (the only place recipes are
//!   read); [`graph`]: the dependency DAG built from a recipe;
//! * [`resources`]: the resource kinds, one file each behind the `Kind`
//!   trait, and the one list of kinds;
//! * [`plan`] and [`apply`]: what a restore would change, and the apply
//!   protocol; [`state`]: what is remembered between runs;
//! * [`bundle`]: the bundle and the bundle directory; [`transfer`]: its
//!   off-host copies (SFTP); [`import`]: a runbook backup directory made a
//!   bundle;
//! * [`init`]: a recipe drafted from the live host (which IML release
//!   family, its shipped recipe with the host's values);
//! * [`audit`]: the drift and health checks; [`metrics`]: `--metrics-file`;
//! * [`host`]: the only boundary that touches the live machine;
//! * [`sandbox`]: real parts for the demo and the tests;
//! * [`fault`] (fault injection for the crash tests), [`redact`] (sensitive
//!   values masked), [`x509`] (certificates as a person checks them).
//!
//! A module added later goes in this list, in the README's table, and in
//! `pub mod` below.

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

#[cfg(test)]
mod map {
    /// Every module is in this file's map and in the README's architecture
    /// table, and every path the table names exists.
    #[test]
    fn the_tree_the_table_and_the_map_agree() {
        let lib = include_str!("lib.rs");
        let readme = include_str!("../README.md");
        let start = readme
            .find("| path | concept |")
            .expect("the architecture table");
        let table: Vec<&str> = readme[start..]
            .lines()
            .take_while(|l| l.starts_with('|'))
            .collect();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for row in &table[2..] {
            let paths = row.split('|').nth(1).unwrap_or("");
            for p in paths.split('`').skip(1).step_by(2) {
                assert!(
                    root.join(p).exists(),
                    "the README names {p}, which does not exist"
                );
            }
        }
        let modules: Vec<&str> = lib
            .lines()
            .filter_map(|l| l.strip_prefix("pub mod "))
            .map(|m| m.trim_end_matches(';'))
            .collect();
        assert!(modules.len() > 10, "{modules:?}");
        for m in modules {
            assert!(
                lib.contains(&format!("[`{m}`]")),
                "src/lib.rs's map does not name {m}"
            );
            let file = format!("`src/{m}.rs`");
            let dir = format!("`src/{m}/`");
            assert!(
                table.iter().any(|r| r.contains(&file) || r.contains(&dir)),
                "the README's architecture table has no row for src/{m}"
            );
        }
    }
}
