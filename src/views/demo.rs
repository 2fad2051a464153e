//! The demo's narration: what each phase is, what was built and what the
//! check found. The commands it runs speak for themselves (their own views).

use crate::printer::Printer;
use std::path::Path;
use std::time::Duration;

pub struct Narrator<'p> {
    pub p: &'p Printer,
}

type Said = miette::Result<()>;

impl Narrator<'_> {
    pub fn title(&self, sandbox: &Path) -> Said {
        let p = self.p;
        p.line(&p.bold(
            "imlrecover demo: the IML backup and restore runbook, end to end, in a sandbox",
        ))?;
        p.line(&format!("Sandbox: {}\n", sandbox.display()))
    }

    /// A part of the manager this machine cannot provide, and why.
    pub fn missing(&self, what: &str) -> Said {
        let p = self.p;
        p.line(&format!("{} {what}", p.yellow("Missing part:")))
    }

    pub fn phase(&self, n: usize, title: &str) -> Said {
        let p = self.p;
        p.line(&format!("\n{}", p.bold(&format!("== {n}. {title} =="))))
    }

    pub fn built(&self, root: &Path, services: &[&str]) -> Said {
        self.p.line(&format!(
            "  host tree under {}\n  certificate chain made with openssl (authority self-signed, manager signed with -CAcreateserial)\n  services: {} (LSB init scripts)",
            root.display(),
            services.join(", ")
        ))
    }

    pub fn storage_servers(&self, hosts: &[String]) -> Said {
        self.p.line(&format!(
            "  storage servers: {} (real sshd on loopback, each with its own chroma-agent)",
            hosts.join(", ")
        ))
    }

    pub fn cluster(&self, tables: usize, rows: u64) -> Said {
        self.p.line(&format!(
            "  PostgreSQL cluster: database chroma, {tables} tables, {rows} rows"
        ))
    }

    pub fn disaster(&self) -> Said {
        self.p.line("  new OS from kickstart (a few default files), no IML, services gone, PostgreSQL re-initialised; the bundle was kept off the host")
    }

    /// One of our own commands, about to run (its output follows).
    pub fn command(&self, shown: &str) -> Said {
        self.p.line(&self.p.dim(&format!("$ imlrecover {shown}")))
    }

    pub fn agents_restarted(&self, servers: usize) -> Said {
        self.p.line(&format!(
            "  chroma-agent restarted once on each of {servers} storage servers"
        ))
    }

    pub fn originals(&self, database: bool) -> Said {
        self.p.line(&format!(
            "  certificates: byte-for-byte the originals, and manager.crt verifies against authority.crt{}",
            if database { "\n  database: every table and row count equals the bundle" } else { "" }
        ))
    }

    pub fn restored(&self, restore: Duration, files: usize, rows: u64, whole: Duration) -> Said {
        let p = self.p;
        p.line(&format!(
            "\n{} {}",
            p.green(&format!(
                "Restored in {:.1} s; {files} files, {rows} rows verified.",
                restore.as_secs_f64()
            )),
            p.dim(&format!("(whole demo {:.1} s)", whole.as_secs_f64()))
        ))
    }

    pub fn kept(&self, dir: &Path) -> Said {
        self.p.line(&format!(
            "Sandbox kept at {} (--keep): its files, the bundle, the saved plan and the run directory, to read. \
             Its services, storage servers and PostgreSQL cluster were stopped and the cluster removed, \
             so `plan` or `apply` on it cannot work; `rm -rf` it when done.",
            dir.display()
        ))
    }
}
