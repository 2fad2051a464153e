//! One fake storage server: its files, its sshd in its own namespaces
//! (see the module above), its `chroma-agent` log.

use super::keys::{fingerprint, key_fields, keygen};
use super::script::AGENT_SCRIPT;
use super::{failed, io_err, preflight, AgentsError, AGENT, SSHD, START_TIMEOUT, STOP_TIMEOUT};
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to set up one fake host.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// A loopback address (127.x.y.z).
    pub ip: Ipv4Addr,
    pub port: u16,
    /// What `hostname` prints on it.
    pub hostname: String,
    /// Public key lines accepted for root.
    pub authorized_keys: Vec<String>,
    /// More `/etc/init.d` scripts, `(NAME, TEXT)`; `@DIR@` in TEXT becomes
    /// the host's directory. One named `chroma-agent` replaces the stand-in.
    pub init_scripts: Vec<(String, String)>,
    /// Host key types besides ed25519 (`rsa`, `ecdsa`), like a real server
    /// with several host keys.
    pub extra_host_keys: Vec<String>,
}

impl HostConfig {
    pub fn new(ip: Ipv4Addr, port: u16, hostname: impl Into<String>) -> HostConfig {
        HostConfig {
            ip,
            port,
            hostname: hostname.into(),
            authorized_keys: Vec::new(),
            init_scripts: Vec::new(),
            extra_host_keys: Vec::new(),
        }
    }
}

/// Why a host did not come up.
pub(super) enum StartError {
    /// Something else holds the address and port: try another port.
    PortTaken(String),
    Other(AgentsError),
}

impl From<AgentsError> for StartError {
    fn from(e: AgentsError) -> StartError {
        StartError::Other(e)
    }
}

/// One running fake storage server. Stopped (by its PID) on drop.
#[derive(Debug)]
pub struct AgentHost {
    dir: PathBuf,
    ip: Ipv4Addr,
    port: u16,
    hostname: String,
    host_key_fields: String,
    child: Option<Child>,
}

impl AgentHost {
    /// Writes the host's files into `dir` (created if missing: host keys,
    /// sshd_config, authorized_keys, `init.d/`, an empty root home) and
    /// starts its sshd; returns once it listens.
    pub fn start(dir: &Path, config: &HostConfig) -> Result<AgentHost, AgentsError> {
        preflight()?;
        prepare_host_dir(dir, config)?;
        let mut host = AgentHost::spawn(dir, config)?;
        match host.wait_listening(Instant::now() + START_TIMEOUT) {
            Ok(()) => Ok(host),
            Err(StartError::PortTaken(log)) => Err(failed(format!(
                "{}:{} is taken by another process:\n{log}",
                config.ip, config.port
            ))),
            Err(StartError::Other(e)) => Err(e),
        }
    }

    /// Starts sshd in its namespaces; the host's files must be in place.
    pub(super) fn spawn(dir: &Path, config: &HostConfig) -> Result<AgentHost, AgentsError> {
        let host_pub = fs::read_to_string(dir.join("hostkey.pub"))
            .map_err(io_err(format!("reading {}/hostkey.pub", dir.display())))?;
        let mut host_keys = format!("HostKey {}\n", dir.join("hostkey").display());
        for kind in &config.extra_host_keys {
            host_keys.push_str(&format!(
                "HostKey {}\n",
                dir.join(format!("hostkey_{kind}")).display()
            ));
        }
        let config_file = dir.join("sshd_config");
        fs::write(
            &config_file,
            format!(
                "Port {port}\nListenAddress {ip}\n{host_keys}PidFile {dir}/sshd.pid\n\
                 AuthorizedKeysFile {dir}/authorized_keys\nUsePAM no\nStrictModes no\n\
                 PermitRootLogin yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 UseDNS no\nPrintMotd no\nPrintLastLog no\nMaxStartups 300:30:600\nMaxSessions 50\n\
                 Subsystem sftp internal-sftp\n",
                port = config.port,
                ip = config.ip,
                dir = dir.display(),
            ),
        )
        .map_err(io_err(format!("writing {}", config_file.display())))?;

        let log_path = dir.join("sshd.log");
        let log = fs::File::create(&log_path)
            .map_err(io_err(format!("creating {}", log_path.display())))?;
        let log2 = log
            .try_clone()
            .map_err(io_err("duplicating the log file".into()))?;
        // setpriv: should this process die without dropping the host (a
        // SIGKILL), the kernel kills `unshare`, and with it the namespace.
        let child = Command::new("setpriv")
            .args([
                "--pdeathsig",
                "KILL",
                "unshare",
                "--uts",
                "--mount",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
                "--propagation",
                "private",
                "sh",
                "-c",
                r#"hostname "$1" && mount --bind "$2" /etc/init.d && mount --bind "$3" /root && exec "$5" -D -e -f "$4""#,
                "sh",
            ])
            .arg(&config.hostname)
            .arg(dir.join("init.d"))
            .arg(dir.join("root"))
            .arg(&config_file)
            .arg(SSHD)
            .stdin(Stdio::null())
            .stdout(log2)
            .stderr(log)
            .spawn()
            .map_err(io_err("cannot start `setpriv`/`unshare` (util-linux)".into()))?;
        Ok(AgentHost {
            dir: dir.to_path_buf(),
            ip: config.ip,
            port: config.port,
            hostname: config.hostname.clone(),
            host_key_fields: key_fields(&host_pub),
            child: Some(child),
        })
    }

    /// Bounded wait until sshd says it listens (its log, not a probe
    /// connection: a probe could reach whoever else holds the port).
    pub(super) fn wait_listening(&mut self, deadline: Instant) -> Result<(), StartError> {
        let listening = format!("Server listening on {} port {}", self.ip, self.port);
        loop {
            let log = self.log();
            if log.contains(&listening) {
                return Ok(());
            }
            let exited = match self.child.as_mut() {
                Some(child) => matches!(child.try_wait(), Ok(Some(_))),
                None => true,
            };
            if exited {
                self.child = None;
                let log = self.log();
                return Err(
                    if log.contains("Address already in use")
                        || log.contains("Cannot bind any address")
                    {
                        StartError::PortTaken(log)
                    } else {
                        StartError::Other(failed(format!(
                            "sshd for {} ({}:{}) exited:\n{log}",
                            self.hostname, self.ip, self.port
                        )))
                    },
                );
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(StartError::Other(failed(format!(
                    "sshd for {} never listened on {}:{}:\n{log}",
                    self.hostname, self.ip, self.port
                ))));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The loopback address, e.g. `127.0.0.2`.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What `hostname` prints on this host.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// The host's directory (keys, config, init.d, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `ssh-ed25519 AAAA...` of the host key.
    pub fn host_key_fields(&self) -> &str {
        &self.host_key_fields
    }

    /// The host key's fingerprint as `ssh-keygen -lf` prints it.
    pub fn host_key_fingerprint(&self) -> Result<String, AgentsError> {
        fingerprint(&self.dir.join("hostkey.pub"))
    }

    /// `TYPE BASE64` of the extra host key of type `kind`.
    pub fn extra_host_key_fields(&self, kind: &str) -> Result<String, AgentsError> {
        let path = self.dir.join(format!("hostkey_{kind}.pub"));
        fs::read_to_string(&path)
            .map(|t| key_fields(&t))
            .map_err(io_err(format!("reading {}", path.display())))
    }

    /// `[127.0.0.N]:PORT ssh-ed25519 AAAA...`
    pub fn known_hosts_line(&self) -> String {
        format!("[{}]:{} {}", self.ip, self.port, self.host_key_fields)
    }

    /// Lines written by the `chroma-agent` stand-in: `ACTION HOSTNAME`.
    pub fn actions(&self) -> Vec<String> {
        fs::read_to_string(self.dir.join("chroma-agent.actions"))
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// How many times `chroma-agent` was restarted successfully.
    pub fn restart_count(&self) -> usize {
        self.actions()
            .iter()
            .filter(|l| l.starts_with("restart "))
            .count()
    }

    /// Makes `chroma-agent start|restart` fail (exit 1, printing `why`), or
    /// work again with `None`.
    pub fn set_agent_failing(&self, why: Option<&str>) -> Result<(), AgentsError> {
        let path = self.dir.join("chroma-agent.broken");
        match why {
            Some(why) => fs::write(&path, format!("{why}\n")),
            None => match fs::remove_file(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
        }
        .map_err(io_err(format!("writing {}", path.display())))
    }

    /// sshd's own log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops sshd and everything it started (SIGKILL to `unshare`, whose
    /// `--kill-child` takes the PID namespace down), then waits (bounded)
    /// until the port refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            let addr = SocketAddr::from((self.ip, self.port));
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline
                && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl Drop for AgentHost {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Everything a host needs that does not depend on its port: host keys,
/// authorized_keys, its init.d and root home.
pub(super) fn prepare_host_dir(dir: &Path, config: &HostConfig) -> Result<(), AgentsError> {
    let mkdir =
        |p: &Path| fs::create_dir_all(p).map_err(io_err(format!("creating {}", p.display())));
    mkdir(dir)?;
    if !dir.join("hostkey").exists() {
        keygen(dir, "hostkey", "ed25519", "")?;
    }
    for kind in &config.extra_host_keys {
        let name = format!("hostkey_{kind}");
        if !dir.join(&name).exists() {
            keygen(dir, &name, kind, "")?;
        }
    }
    let authorized = dir.join("authorized_keys");
    fs::write(&authorized, config.authorized_keys.join("\n") + "\n")
        .map_err(io_err(format!("writing {}", authorized.display())))?;
    mkdir(&dir.join("root"))?;
    let init_d = dir.join("init.d");
    mkdir(&init_d)?;
    let mut scripts = vec![(AGENT.to_string(), AGENT_SCRIPT.to_string())];
    scripts.extend(config.init_scripts.iter().cloned());
    for (name, text) in scripts {
        let path = init_d.join(&name);
        fs::write(&path, text.replace("@DIR@", &dir.to_string_lossy()))
            .map_err(io_err(format!("writing {}", path.display())))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .map_err(io_err(format!("chmod {}", path.display())))?;
    }
    // The agent runs, as on a registered server.
    let state = dir.join("chroma-agent.running");
    fs::write(&state, "").map_err(io_err(format!("writing {}", state.display())))
}
