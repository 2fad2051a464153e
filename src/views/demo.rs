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
    /// Under `--format json|junit` the demo narrates nothing: its record speaks.
    fn say(&self, text: &str) -> Said {
        if self.p.document {
            return Ok(());
        }
        self.p.line(text)
    }

    pub fn title(&self, sandbox: &Path, release: &str) -> Said {
        let p = self.p;
        self.say(&p.bold(
            "imlrecover demo: the IML backup and restore runbook, end to end, in a sandbox",
        ))?;
        self.say(&format!("Manager: {release}"))?;
        self.say(&format!("Sandbox: {}\n", sandbox.display()))
    }

    /// A part of the manager this machine cannot provide, and why.
    pub fn missing(&self, what: &str) -> Said {
        let p = self.p;
        self.say(&format!("{} {what}", p.yellow("Missing part:")))
    }

    pub fn phase(&self, n: usize, title: &str) -> Said {
        let p = self.p;
        self.say(&format!("\n{}", p.bold(&format!("== {n}. {title} =="))))
    }

    pub fn built(&self, root: &Path, services: &[String], how: &str) -> Said {
        self.say(&format!(
            "  host tree under {}\n  certificate chain made with openssl (authority self-signed, manager signed with -CAcreateserial)\n  services: {} ({how})",
            root.display(),
            services.join(", ")
        ))
    }

    /// EL7: the drafted recipe restarts no agents.
    pub fn no_agents(&self) -> Said {
        self.say("  storage servers: none (their chroma-agent runs under systemd, which the demo's fake servers lack; the EL6 demo restarts three)")
    }

    pub fn statistics(&self, points: u64) -> Said {
        self.say(&format!(
            "  InfluxDB: the manager's statistics, {points} points (real influxd on loopback)"
        ))
    }

    pub fn storage_servers(&self, hosts: &[String]) -> Said {
        self.say(&format!(
            "  storage servers: {} (real sshd on loopback, each with its own chroma-agent)",
            hosts.join(", ")
        ))
    }

    pub fn cluster(&self, tables: usize, rows: u64) -> Said {
        self.say(&format!(
            "  PostgreSQL cluster: database chroma, {tables} tables, {rows} rows"
        ))
    }

    pub fn disaster(&self, statistics: bool) -> Said {
        self.say(&format!(
            "  new OS from kickstart (a few default files), no IML, services gone, PostgreSQL re-initialised{}; the bundle was kept off the host",
            if statistics { ", InfluxDB empty" } else { "" }
        ))
    }

    /// One of our own commands, about to run (its output follows).
    pub fn command(&self, shown: &str) -> Said {
        self.say(&self.p.dim(&format!("$ imlrecover {shown}")))
    }

    pub fn agents_restarted(&self, servers: usize) -> Said {
        self.say(&format!(
            "  chroma-agent restarted once on each of {servers} storage servers"
        ))
    }

    pub fn originals(&self, database: bool, statistics: bool) -> Said {
        self.say(&format!(
            "  certificates: byte-for-byte the originals, and manager.crt verifies against authority.crt{}{}",
            if database { "\n  database: every table and row count equals the bundle" } else { "" },
            if statistics { "\n  statistics: every InfluxDB database's series and point counts equal the original's" } else { "" }
        ))
    }

    pub fn restored(
        &self,
        restore: Duration,
        files: usize,
        rows: u64,
        points: Option<u64>,
        whole: Duration,
    ) -> Said {
        let p = self.p;
        let verified = match points {
            Some(n) => format!("{files} files, {rows} rows, {n} points verified."),
            None => format!("{files} files, {rows} rows verified."),
        };
        self.say(&format!(
            "\n{} {}",
            p.green(&format!(
                "Restored in {:.1} s; {verified}",
                restore.as_secs_f64()
            )),
            p.dim(&format!("(whole demo {:.1} s)", whole.as_secs_f64()))
        ))
    }

    pub fn kept(&self, dir: &Path) -> Said {
        self.say(&format!(
            "Sandbox kept at {} (--keep): its files, the bundle, the saved plan and the run directory, to read. \
             Its services, storage servers and PostgreSQL cluster were stopped and the cluster removed, \
             so `plan` or `apply` on it cannot work; `rm -rf` it when done.",
            dir.display()
        ))
    }
}

/// `demo --format json|junit`: each phase, the document of each command it
/// ran (their own `--format json`, plan's `--json`), and the final checks.
#[derive(Debug, Default, serde::Serialize)]
pub struct DemoRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// The release family drilled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Parts this machine lacks, which the demo ran without.
    pub missing: Vec<String>,
    pub phases: Vec<PhaseRecord>,
    pub checks: Vec<CheckRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_seconds: Option<f64>,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct PhaseRecord {
    pub phase: usize,
    pub title: String,
    pub commands: Vec<CommandRecord>,
}

#[derive(Debug, serde::Serialize)]
pub struct CommandRecord {
    /// As a person would type it (`imlrecover backup ...`).
    pub command: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub seconds: f64,
    /// The command's own JSON document.
    pub output: Option<serde_json::Value>,
}

#[derive(Debug, serde::Serialize)]
pub struct CheckRecord {
    pub name: String,
    pub passed: bool,
    pub message: String,
}

impl DemoRecord {
    pub fn phase(&mut self, phase: usize, title: &str) {
        self.phases.push(PhaseRecord {
            phase,
            title: title.to_string(),
            commands: Vec::new(),
        });
    }

    pub fn command(&mut self, c: CommandRecord) {
        if let Some(p) = self.phases.last_mut() {
            p.commands.push(c);
        }
    }

    pub fn check(&mut self, name: &str, passed: bool, message: String) {
        self.checks.push(CheckRecord {
            name: name.to_string(),
            passed,
            message,
        });
    }
}

impl super::document::Record for DemoRecord {
    fn cases(&self, error: Option<&str>) -> Vec<super::document::Case> {
        use super::document::Case;
        let mut cases = Vec::new();
        for p in &self.phases {
            let name = format!("{}. {}", p.phase, p.title);
            let seconds = p.commands.iter().map(|c| c.seconds).sum();
            let failed = p.commands.iter().find(|c| c.exit_code != Some(0));
            cases.push(match failed {
                Some(c) => Case::failed(
                    name,
                    seconds,
                    format!(
                        "`{}` exited with {}",
                        c.command,
                        c.exit_code.map_or("a signal".into(), |e| e.to_string())
                    ),
                ),
                None => Case::passed(name, seconds),
            });
        }
        for c in &self.checks {
            cases.push(match c.passed {
                true => Case::passed(&c.name, 0.0),
                false => Case::failed(&c.name, 0.0, &c.message),
            });
        }
        // An error inside a phase that ran no failing command: that phase failed.
        if let Some(e) = error {
            if !cases.iter().any(|c| c.failure.is_some()) {
                if let Some(last) = cases.last_mut() {
                    last.failure = Some(e.to_string());
                }
            }
        }
        cases
    }
}
