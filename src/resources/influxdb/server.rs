//! The live InfluxDB server of a resource: its databases and what they
//! hold (over HTTP), and influxd's portable backup and restore (over its
//! RPC port).

use super::http::{self, HttpError};
use super::{Counts, InfluxdbSpec};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long one `influxd backup`/`restore` of a database may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// InfluxDB's own database, never backed up or compared.
pub const INTERNAL: &str = "_internal";

/// Where the server answers and where its programs are.
#[derive(Debug, Clone)]
pub struct Server {
    pub http: String,
    pub rpc: String,
    pub bindir: Option<PathBuf>,
}

impl Server {
    pub fn of(spec: &InfluxdbSpec) -> Server {
        Server {
            http: spec.http.clone(),
            rpc: spec.rpc.clone(),
            bindir: spec.bindir.as_ref().map(PathBuf::from),
        }
    }

    fn influxd(&self) -> Command {
        Command::new(crate::sandbox::influx::program(self.bindir.as_deref(), "influxd"))
    }

    /// Both ports answer: HTTP `/ping` and a TCP connect to the RPC port
    /// (`influxd backup` retries an unreachable one for minutes).
    pub fn reachable(&self) -> Result<(), String> {
        http::ping(&self.http).map_err(|e| e.to_string())?;
        let addr = std::net::ToSocketAddrs::to_socket_addrs(self.rpc.as_str())
            .ok()
            .and_then(|mut a| a.next());
        let ok = addr.is_some_and(|a| {
            std::net::TcpStream::connect_timeout(&a, Duration::from_secs(5)).is_ok()
        });
        if ok {
            Ok(())
        } else {
            Err(format!(
                "influxd's backup/restore RPC at {} does not answer (its `bind-address`)",
                self.rpc
            ))
        }
    }

    /// Every database but `_internal`, sorted.
    pub fn databases(&self) -> Result<Vec<String>, HttpError> {
        let series = http::query(&self.http, None, "SHOW DATABASES")?;
        let mut out: Vec<String> = http::column(&series, "name")
            .into_iter()
            .filter_map(Value::as_str)
            .filter(|d| *d != INTERNAL)
            .map(str::to_string)
            .collect();
        out.sort();
        Ok(out)
    }

    /// What `db` holds: its measurements and series, and the points and
    /// field values timed at or before `until` (ns since the epoch).
    pub fn counts(&self, db: &str, until: i64) -> Result<Counts, HttpError> {
        let q = |s: &str| http::query(&self.http, Some(db), s);
        let measurements = http::column(&q("SHOW MEASUREMENTS")?, "name").len() as u64;
        // Series with points: one row each of the GROUP BY * below (the
        // CARDINALITY statements count a series once per shard).
        let mut series = 0;
        let mut points = 0;
        let mut values = 0;
        let rows = q(&format!(
            "SELECT count(*) FROM /.*/ WHERE time <= {until} GROUP BY *"
        ))?;
        for s in &rows {
            for row in s.get("values").and_then(Value::as_array).into_iter().flatten() {
                series += 1;
                // Column 0 is the time; the others count one field each.
                let counts: Vec<u64> = row
                    .as_array()
                    .into_iter()
                    .flatten()
                    .skip(1)
                    .filter_map(Value::as_u64)
                    .collect();
                values += counts.iter().sum::<u64>();
                points += counts.iter().max().copied().unwrap_or(0);
            }
        }
        Ok(Counts {
            measurements,
            series,
            points,
            values,
        })
    }

    /// [`Server::counts`] of a database just restored: its shards answer
    /// "shard is disabled" for a moment after `influxd restore`.
    pub fn counts_settled(&self, db: &str, until: i64) -> Result<Counts, HttpError> {
        let start = std::time::Instant::now();
        loop {
            match self.counts(db, until) {
                Err(HttpError::Query { message, .. })
                    if message.contains("shard is disabled")
                        && start.elapsed() < Duration::from_secs(120) =>
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    /// `DROP DATABASE db`.
    pub fn drop_database(&self, db: &str) -> Result<(), HttpError> {
        http::query(&self.http, None, &format!("DROP DATABASE {}", http::ident(db))).map(|_| ())
    }

    /// `influxd backup -portable -host RPC -database DB DIR`.
    pub fn backup(&self, db: &str, dir: &Path) -> Result<(), String> {
        let mut cmd = self.influxd();
        cmd.args(["backup", "-portable", "-host", &self.rpc, "-database", db])
            .arg(dir);
        run(&mut cmd)
    }

    /// `influxd restore -portable -host RPC -db DB [-newdb NEW] DIR`.
    pub fn restore(&self, db: &str, newdb: Option<&str>, dir: &Path) -> Result<(), String> {
        let mut cmd = self.influxd();
        cmd.args(["restore", "-portable", "-host", &self.rpc, "-db", db]);
        if let Some(n) = newdb {
            cmd.args(["-newdb", n]);
        }
        cmd.arg(dir);
        run(&mut cmd)
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = crate::host::process::describe(cmd);
    let out = crate::host::process::run(cmd, TOOL_TIMEOUT).map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({}): {}", out.status, out.last_line()))
    }
}

/// The server's version, from `/ping`'s `X-Influxdb-Version` header.
pub fn version(server: &Server) -> String {
    http::version(&server.http).unwrap_or_else(|| "unknown".into())
}
