//! A real `influxd` (InfluxDB 1.x) for tests, the demo and `verify
//! --drill`: its config, meta, data and WAL under one directory, RPC and
//! HTTP on free loopback ports, stopped by its PID when dropped.

use crate::resources::influxdb::http;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Influxd {
    pub dir: PathBuf,
    /// `127.0.0.1:PORT` of the backup/restore RPC (`bind-address`).
    pub rpc: String,
    /// `127.0.0.1:PORT` of the HTTP API.
    pub http: String,
    /// Where `influxd` was run from (`None`: `PATH`).
    pub bindir: Option<PathBuf>,
    child: Option<Child>,
}

/// A port nobody listens on now on 127.0.0.1 (the OS picks it).
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// `dir/influxd` or `influxd` from `PATH`.
pub fn program(bindir: Option<&Path>, name: &str) -> PathBuf {
    match bindir {
        Some(d) => d.join(name),
        None => PathBuf::from(name),
    }
}

impl Influxd {
    /// Starts a fresh server under `dir` (created) and waits until it answers.
    pub fn start(dir: &Path, bindir: Option<&Path>) -> io::Result<Influxd> {
        let rpc = format!("127.0.0.1:{}", free_port()?);
        let http = format!("127.0.0.1:{}", free_port()?);
        let mut d = Influxd {
            dir: dir.to_path_buf(),
            rpc,
            http,
            bindir: bindir.map(Path::to_path_buf),
            child: None,
        };
        d.run()?;
        Ok(d)
    }

    /// Writes the config and runs influxd, on this server's ports.
    pub fn run(&mut self) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let conf = self.dir.join("influxdb.conf");
        let d = self.dir.display();
        std::fs::write(
            &conf,
            format!(
                r#"reporting-enabled = false
bind-address = "{rpc}"
[meta]
  dir = "{d}/meta"
  retention-autocreate = true
  logging-enabled = false
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  index-version = "inmem"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "10m0s"
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "{http}"
  log-enabled = false
  pprof-enabled = false
[continuous_queries]
  enabled = false
[logging]
  level = "warn"
"#,
                rpc = self.rpc,
                http = self.http
            ),
        )?;
        let log = std::fs::File::create(self.dir.join("influxd.log"))?;
        let child = Command::new(program(self.bindir.as_deref(), "influxd"))
            .arg("-config")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let start = Instant::now();
        loop {
            if http::ping(&self.http).is_ok() && std::net::TcpStream::connect(&self.rpc).is_ok() {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut() {
                if let Some(status) = c.try_wait()? {
                    self.child = None;
                    let log =
                        std::fs::read_to_string(self.dir.join("influxd.log")).unwrap_or_default();
                    return Err(io::Error::other(format!(
                        "influxd exited ({status}) before answering: {log}"
                    )));
                }
            }
            if start.elapsed() > Duration::from_secs(60) {
                self.stop();
                return Err(io::Error::other("influxd did not answer within 60s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (SIGTERM, then SIGKILL after 20s), by its PID.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(c.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Stops the server, removes its meta, data and WAL, and starts it
    /// empty on the same ports: a lost disk.
    pub fn wipe(&mut self) -> io::Result<()> {
        self.stop();
        for sub in ["meta", "data", "wal"] {
            let p = self.dir.join(sub);
            if p.exists() {
                std::fs::remove_dir_all(&p)?;
            }
        }
        self.run()
    }

    /// InfluxQL against this server.
    pub fn query(
        &self,
        db: Option<&str>,
        q: &str,
    ) -> Result<Vec<serde_json::Value>, http::HttpError> {
        http::query(&self.http, db, q)
    }

    /// Creates `db` and writes `measurements` measurements × `series` series
    /// (tag `host`) × `points` points each, two fields per point, an hour
    /// apart ending a day ago; `tag` goes into the values.
    pub fn seed(
        &self,
        db: &str,
        measurements: usize,
        series: usize,
        points: usize,
        tag: &str,
    ) -> Result<(), http::HttpError> {
        self.query(None, &format!("CREATE DATABASE {}", http::ident(db)))?;
        let end: i64 = 1_764_000_000; // 2025-11-24, seconds
        for m in 0..measurements {
            let mut lines = String::new();
            for s in 0..series {
                for p in 0..points {
                    let t = (end - (p as i64) * 3600) * 1_000_000_000;
                    lines.push_str(&format!(
                        "{tag}_m{m},host=oss{s},fs=lustre{m} value={v},note=\"{tag} {p}\" {t}\n",
                        v = (m * 1000 + s * 10 + p) as f64 * 0.5
                    ));
                }
            }
            http::write(&self.http, db, &lines)?;
        }
        Ok(())
    }
}

impl Drop for Influxd {
    fn drop(&mut self) {
        self.stop();
    }
}
