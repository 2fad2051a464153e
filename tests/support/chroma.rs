//! A throwaway PostgreSQL cluster (the crate's own `TempCluster`) seeded
//! like an IML manager by the one seeder, `sandbox::chroma`: role and
//! database `chroma` with a few tables.

use imlrecover::host::postgres::{self as pg, PgTarget, TempCluster};
use imlrecover::sandbox::chroma::{self, Seed};
use std::collections::BTreeMap;

/// Tables and the rows each is seeded with.
pub const TABLES: &[(&str, u64)] = &[
    ("chroma_core_managedhost", 4),
    ("chroma_core_managedtarget", 12),
    ("chroma_core_command", 250),
    ("chroma_core_alertstate", 0),
];

pub struct ChromaCluster {
    pub cluster: TempCluster,
}

impl ChromaCluster {
    pub fn start() -> ChromaCluster {
        let cluster = TempCluster::start().expect("start a throwaway PostgreSQL cluster");
        let seed = Seed {
            tag: "test",
            tables: TABLES,
            odd_names: false,
        };
        chroma::seed(&cluster.target(), &seed).expect("seed chroma");
        ChromaCluster { cluster }
    }

    pub fn target(&self) -> PgTarget {
        self.cluster.target()
    }

    /// `--var` arguments pointing fixtures/backup/el6.hcl at this cluster.
    pub fn vars(&self) -> Vec<String> {
        let t = self.target();
        vec![
            "--var".into(),
            format!("pg_host={}", t.host.clone().expect("socket dir")),
            "--var".into(),
            format!("pg_port={}", t.port.expect("port")),
        ]
    }

    /// Rows per table of database `chroma`.
    pub fn rows(target: &PgTarget) -> BTreeMap<String, u64> {
        pg::fingerprint(target)
            .expect("fingerprint")
            .databases
            .remove("chroma")
            .unwrap_or_default()
    }

    /// A digest of every row of `table`, to compare content, not just counts.
    pub fn digest(target: &PgTarget, table: &str) -> String {
        let rows = pg::query(
            target,
            "chroma",
            &format!("SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM {table} t"),
        )
        .expect("digest");
        rows.first()
            .and_then(|r| r.first())
            .cloned()
            .unwrap_or_default()
    }
}
