//! Fake Lustre storage servers: real OpenSSH servers on loopback addresses,
//! each with its own hostname and its own `/etc/init.d/chroma-agent`.
//! `imlrecover demo` starts them so the runbook's last step (restart the
//! agent on every MDS/OSS over SSH) really happens, and the tests use them to
//! count restarts per host.
//!
//! One host is one `/usr/sbin/sshd -D -e -f CONFIG` listening on 127.0.0.N,
//! started inside
//! `unshare --uts --mount --pid --fork --kill-child --mount-proc`: the UTS
//! namespace gives it its hostname (`oss1`, `oss2`, ...), the mount namespace
//! bind-mounts a directory of its own over `/etc/init.d` (and an empty one
//! over `/root`, so the machine's own shell start-up files never run in, or
//! print into, remote commands), and the PID namespace makes cleanup
//! complete: killing `unshare` kills sshd (`--kill-child`), the namespace's
//! init, and the kernel then kills everything left in it (a `sleep 30`
//! whose client gave up, say). `unshare` itself runs under
//! `setpriv --pdeathsig KILL`, so a process that dies without dropping its
//! hosts (SIGKILL, abort) leaves no sshd behind. The parent death signal
//! follows the *thread* that started a host: drop hosts on, or before the
//! end of, the thread that started them (a test, the demo's main thread).
//!
//! Only loopback addresses are used: no traffic leaves the machine. Needs
//! root (sshd's privilege separation, namespaces) and OpenSSH
//! (`/usr/sbin/sshd`, `ssh-keygen`); without sshd, [`Agents::start`] returns
//! [`AgentsError::NoSshd`] and the caller can go on without agents:
//!
//! ```no_run
//! use imlrecover::sandbox::agents::{Agents, AgentsError};
//! # fn demo(dir: &std::path::Path, root: &std::path::Path) -> Result<(), AgentsError> {
//! match Agents::start(&dir.join("agents"), 3) {
//!     Ok(agents) => {
//!         agents.install_client(root)?; // <root>/root/.ssh/{id_rsa,known_hosts}
//!         // ... run imlrecover with agents.var_args() ...
//!         println!("restarts: {:?}", agents.restart_counts());
//!     }
//!     Err(AgentsError::NoSshd) => println!("no sshd: skipping the agents"),
//!     Err(e) => return Err(e),
//! }
//! # Ok(()) }
//! ```

mod host;
mod keys;
mod script;

pub use host::{AgentHost, HostConfig};
pub use keys::{fingerprint, key_fields, keygen};
pub use script::agent_script;

use host::{prepare_host_dir, StartError};
use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The OpenSSH server every fake host runs.
pub const SSHD: &str = "/usr/sbin/sshd";

/// The init script every fake host has; see [`agent_script`].
pub const AGENT: &str = "chroma-agent";

/// How long a fresh sshd may take to listen, and a stopped one to go away.
const START_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Attempts at finding a port that every address of a fleet can bind.
const PORT_ATTEMPTS: usize = 5;

/// Spreads the port candidates of the fleets started by one process.
static NEXT_PORT: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum AgentsError {
    #[error("no sshd: {SSHD} is not installed, so no fake storage servers can run")]
    #[diagnostic(
        code(imlrecover::agents::no_sshd),
        help("install it with `apt-get install -y --no-install-recommends openssh-server`")
    )]
    NoSshd,

    #[error("fake storage servers need root (sshd privilege separation, namespaces)")]
    #[diagnostic(code(imlrecover::agents::not_root))]
    NotRoot,

    #[error("fake storage servers: {0}")]
    #[diagnostic(code(imlrecover::agents::failed))]
    Failed(String),
}

fn failed(what: impl std::fmt::Display) -> AgentsError {
    AgentsError::Failed(what.to_string())
}

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> AgentsError {
    move |e| AgentsError::Failed(format!("{what}: {e}"))
}

/// Checks that fake hosts can run here and prepares sshd's privilege
/// separation directory (`/run/sshd`).
pub fn preflight() -> Result<(), AgentsError> {
    if !Path::new(SSHD).exists() {
        return Err(AgentsError::NoSshd);
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(AgentsError::NotRoot);
    }
    fs::create_dir_all("/run/sshd").map_err(io_err("creating /run/sshd".into()))?;
    fs::set_permissions("/run/sshd", fs::Permissions::from_mode(0o755))
        .map_err(io_err("chmod /run/sshd".into()))
}

/// The loopback address of fleet member `i`: 127.0.0.2, 127.0.0.3, ...
/// (127.0.1.2 ... past 250 hosts).
pub fn address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, (i / 250) as u8, (2 + i % 250) as u8)
}

/// A port that every address in `ips` can bind now. Candidates are spread
/// by process id and by a per-process counter, so fleets of concurrent
/// tests (and test binaries) rarely try the same one.
fn free_port(ips: &[Ipv4Addr]) -> Result<u16, AgentsError> {
    let seed = std::process::id() as usize * 131 + NEXT_PORT.fetch_add(1, Ordering::SeqCst) * 7919;
    for k in 0..2000 {
        let port = (20000 + (seed + k * 13) % 40000) as u16;
        if ips.iter().all(|ip| TcpListener::bind((*ip, port)).is_ok()) {
            return Ok(port);
        }
    }
    Err(failed("no port is free on every agent address"))
}

/// A fleet of fake storage servers (`oss1` on 127.0.0.2, `oss2` on
/// 127.0.0.3, ...) all on one port, each running the `chroma-agent` stand-in,
/// with one client key pair that root on every host accepts and a
/// known_hosts file that vouches for every host key. Every sshd is stopped
/// when the fleet is dropped.
#[derive(Debug)]
pub struct Agents {
    dir: PathBuf,
    port: u16,
    hosts: Vec<AgentHost>,
    identity: PathBuf,
    public_key: String,
    known_hosts: PathBuf,
}

impl Agents {
    /// Starts `count` hosts with their files under `dir` (created if
    /// missing): `dir/client/` holds the client key pair (`id_rsa`,
    /// `id_rsa.pub`) and `known_hosts`, `dir/ossN/` one host each.
    pub fn start(dir: &Path, count: usize) -> Result<Agents, AgentsError> {
        preflight()?;
        let client = dir.join("client");
        fs::create_dir_all(&client).map_err(io_err(format!("creating {}", client.display())))?;
        fs::set_permissions(&client, fs::Permissions::from_mode(0o700))
            .map_err(io_err(format!("chmod {}", client.display())))?;
        let identity = keygen(&client, "id_rsa", "rsa", "")?;
        let public_key = fs::read_to_string(identity.with_extension("pub"))
            .map_err(io_err("reading the client's public key".into()))?
            .trim()
            .to_string();

        let ips: Vec<Ipv4Addr> = (0..count).map(address).collect();
        let mut configs: Vec<(PathBuf, HostConfig)> = ips
            .iter()
            .enumerate()
            .map(|(i, ip)| {
                let mut c = HostConfig::new(*ip, 0, format!("oss{}", i + 1));
                c.authorized_keys.push(public_key.clone());
                (dir.join(format!("oss{}", i + 1)), c)
            })
            .collect();
        for (host_dir, config) in &configs {
            prepare_host_dir(host_dir, config)?;
        }

        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port(&ips)?;
            for (_, c) in configs.iter_mut() {
                c.port = port;
            }
            // Start all, then wait for all: startup costs one sshd's time.
            let mut hosts = Vec::with_capacity(count);
            for (host_dir, config) in &configs {
                hosts.push(AgentHost::spawn(host_dir, config)?);
            }
            let deadline = Instant::now() + START_TIMEOUT;
            let mut retry = false;
            for host in hosts.iter_mut() {
                match host.wait_listening(deadline) {
                    Ok(()) => {}
                    Err(StartError::PortTaken(log)) => {
                        last = log;
                        retry = true;
                    }
                    Err(StartError::Other(e)) => return Err(e),
                }
            }
            if retry {
                continue; // dropping `hosts` stops those that did start
            }
            let agents = Agents {
                dir: dir.to_path_buf(),
                port,
                known_hosts: client.join("known_hosts"),
                hosts,
                identity,
                public_key,
            };
            agents.write_known_hosts(&agents.known_hosts)?;
            return Ok(agents);
        }
        Err(failed(format!(
            "no port stayed free for {count} sshd after {PORT_ATTEMPTS} attempts; last log:\n{last}"
        )))
    }

    /// The hosts' addresses, in order (what `var.agents` lists).
    pub fn hosts(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.ip().to_string()).collect()
    }

    /// The one port every host's sshd listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The fleet's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Host `i` (0-based), for what the fleet does not wrap.
    pub fn host(&self, i: usize) -> Option<&AgentHost> {
        self.hosts.get(i)
    }

    /// The client's private key (root on every host accepts it).
    pub fn identity(&self) -> &Path {
        &self.identity
    }

    /// The client's public key line.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The fleet's known_hosts file: one `[127.0.0.N]:PORT` line per host.
    pub fn known_hosts(&self) -> &Path {
        &self.known_hosts
    }

    /// The known_hosts text that vouches for every host.
    pub fn known_hosts_text(&self) -> String {
        self.hosts
            .iter()
            .map(|h| h.known_hosts_line() + "\n")
            .collect()
    }

    fn write_known_hosts(&self, path: &Path) -> Result<(), AgentsError> {
        fs::write(path, self.known_hosts_text())
            .map_err(io_err(format!("writing {}", path.display())))
    }

    /// Installs root's client side into a host tree, as on the manager
    /// server: `<root>/root/.ssh/id_rsa` (0600), `id_rsa.pub` and
    /// `known_hosts` (0644), in a 0700 `.ssh`.
    pub fn install_client(&self, root: &Path) -> Result<(), AgentsError> {
        let ssh = ssh_dir(root)?;
        let private = fs::read(&self.identity)
            .map_err(io_err(format!("reading {}", self.identity.display())))?;
        let id = ssh.join("id_rsa");
        write_mode(&id, &private, 0o600)?;
        write_mode(
            &ssh.join("id_rsa.pub"),
            format!("{}\n", self.public_key).as_bytes(),
            0o644,
        )?;
        self.install_known_hosts(root)
    }

    /// Writes only `<root>/root/.ssh/known_hosts` (what an administrator
    /// re-records after a reinstall, when the recipe does not keep it).
    pub fn install_known_hosts(&self, root: &Path) -> Result<(), AgentsError> {
        let ssh = ssh_dir(root)?;
        write_mode(
            &ssh.join("known_hosts"),
            self.known_hosts_text().as_bytes(),
            0o644,
        )
    }

    /// `--var` arguments pointing a recipe's `agents` and `ssh_port`
    /// variables (the shipped plans' names) at this fleet.
    pub fn var_args(&self) -> Vec<String> {
        let list = self
            .hosts()
            .iter()
            .map(|h| format!("\"{h}\""))
            .collect::<Vec<_>>()
            .join(", ");
        vec![
            "--var".into(),
            format!("agents=[{list}]"),
            "--var".into(),
            format!("ssh_port={}", self.port),
        ]
    }

    /// Every action host `i`'s agent logged (`ACTION HOSTNAME`).
    pub fn actions(&self, i: usize) -> Vec<String> {
        self.hosts
            .get(i)
            .map(AgentHost::actions)
            .unwrap_or_default()
    }

    /// How many times host `i`'s agent was restarted successfully.
    pub fn restart_count(&self, i: usize) -> usize {
        self.hosts.get(i).map(AgentHost::restart_count).unwrap_or(0)
    }

    /// Restart counts of every host, in order.
    pub fn restart_counts(&self) -> Vec<usize> {
        self.hosts.iter().map(AgentHost::restart_count).collect()
    }

    /// Stops host `i`'s sshd (a server that is down: connections refused).
    pub fn stop_one(&mut self, i: usize) {
        if let Some(h) = self.hosts.get_mut(i) {
            h.stop();
        }
    }

    /// Makes host `i`'s `chroma-agent restart` fail (exit 1), or work again.
    pub fn set_agent_failing(&self, i: usize, why: Option<&str>) -> Result<(), AgentsError> {
        match self.hosts.get(i) {
            Some(h) => h.set_agent_failing(why),
            None => Err(failed(format!(
                "no host {i} in a fleet of {}",
                self.hosts.len()
            ))),
        }
    }

    /// Host `i`'s key fingerprint (`SHA256:...`).
    pub fn host_key_fingerprint(&self, i: usize) -> Result<String, AgentsError> {
        match self.hosts.get(i) {
            Some(h) => h.host_key_fingerprint(),
            None => Err(failed(format!(
                "no host {i} in a fleet of {}",
                self.hosts.len()
            ))),
        }
    }
}

fn ssh_dir(root: &Path) -> Result<PathBuf, AgentsError> {
    let ssh = root.join("root/.ssh");
    fs::create_dir_all(&ssh).map_err(io_err(format!("creating {}", ssh.display())))?;
    fs::set_permissions(&ssh, fs::Permissions::from_mode(0o700))
        .map_err(io_err(format!("chmod {}", ssh.display())))?;
    Ok(ssh)
}

fn write_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), AgentsError> {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(io_err(format!("writing {}", path.display())))?;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("chmod {}", path.display())))?;
    f.write_all(bytes)
        .map_err(io_err(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_loopback_and_skip_network_and_gateway() {
        assert_eq!(address(0), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(address(31), Ipv4Addr::new(127, 0, 0, 33));
        assert_eq!(address(250), Ipv4Addr::new(127, 0, 1, 2));
        assert!((0..1000).all(|i| address(i).is_loopback()));
    }

    #[test]
    fn the_agent_script_logs_into_its_host_dir() {
        let s = agent_script(Path::new("/tmp/fleet/oss1"));
        assert!(s.starts_with("#!/bin/sh\n### BEGIN INIT INFO"));
        assert!(s.contains("DIR='/tmp/fleet/oss1'"));
        assert!(!s.contains("@DIR@"));
    }

    #[test]
    fn a_missing_sshd_is_named_as_such() {
        let msg = AgentsError::NoSshd.to_string();
        assert!(
            msg.starts_with("no sshd: /usr/sbin/sshd is not installed"),
            "{msg}"
        );
    }

    #[test]
    fn key_fields_drop_the_comment() {
        assert_eq!(
            key_fields("ssh-ed25519 AAAAC3 root@oss1\n"),
            "ssh-ed25519 AAAAC3"
        );
    }
}
