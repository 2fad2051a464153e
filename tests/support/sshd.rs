//! Test harness: real OpenSSH servers posing as Lustre servers, a thin
//! wrapper over the product's [`imlrecover::sandbox::agents`] (which
//! `imlrecover demo` uses too; see there for how a fake host works).
//!
//! A [`FakeHost`] is one host on its own loopback address and port (tests of
//! the SSH boundary); [`Agents`] is a fleet on one port (tests of
//! `remote_service`). Both panic on setup failures: this is test code. On a
//! machine without sshd the harness installs openssh-server first.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Duration;

use imlrecover::host::ssh::SshTarget;
use imlrecover::sandbox::agents::{self, AgentHost, HostConfig};
use tempfile::TempDir;

pub use imlrecover::sandbox::agents::Agents;

/// Distinct per host within this test process. Single hosts live on
/// 127.0.2.x and up, so they never meet a fleet (127.0.0.2 ...).
static NEXT_HOST: AtomicUsize = AtomicUsize::new(0);
static SETUP: Once = Once::new();

/// Installs openssh-server if it is missing (CI installs it in .ci/run; a
/// developer machine may not have it), then checks the rest.
pub fn setup_once() {
    SETUP.call_once(|| {
        if !Path::new(agents::SSHD).exists() {
            let install = || {
                Command::new("apt-get")
                    .args(["install", "-y", "--no-install-recommends", "openssh-server"])
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false)
            };
            if !install() {
                let _ = Command::new("apt-get").arg("update").status();
                assert!(install(), "cannot install openssh-server");
            }
        }
        agents::preflight().unwrap_or_else(|e| panic!("{e}"));
    });
}

/// A fleet of `count` fake hosts (`oss1` on 127.0.0.2, ...) on one port,
/// its files in a temp dir that lives as long as the fleet.
pub fn fleet(count: usize) -> (TempDir, Agents) {
    setup_once();
    let dir = tempfile::Builder::new()
        .prefix("imlrecover-agents-")
        .tempdir()
        .expect("tempdir");
    let fleet = Agents::start(dir.path(), count).unwrap_or_else(|e| panic!("{e}"));
    (dir, fleet)
}

/// A client key pair (what a user's `~/.ssh/id_ed25519` would be).
pub struct ClientKey {
    _dir: TempDir,
    /// The private key file.
    pub private: PathBuf,
    /// The public key line (`ssh-ed25519 AAAA... comment`).
    pub public: String,
}

impl ClientKey {
    pub fn generate() -> ClientKey {
        ClientKey::with_passphrase("")
    }

    /// A key whose private half is encrypted with `passphrase`.
    pub fn with_passphrase(passphrase: &str) -> ClientKey {
        setup_once();
        let dir = tempfile::Builder::new()
            .prefix("imlrecover-key-")
            .tempdir()
            .expect("tempdir");
        let private = agents::keygen(dir.path(), "id_ed25519", "ed25519", passphrase)
            .unwrap_or_else(|e| panic!("{e}"));
        let public = fs::read_to_string(private.with_extension("pub")).expect("read public key");
        ClientKey {
            _dir: dir,
            private,
            public: public.trim().to_string(),
        }
    }

    /// `TYPE BASE64` without the comment, as a known_hosts key field.
    pub fn key_fields(&self) -> String {
        agents::key_fields(&self.public)
    }
}

/// Options for a [`FakeHost`].
#[derive(Default)]
pub struct FakeHostBuilder {
    hostname: Option<String>,
    authorized: Vec<String>,
    init_scripts: Vec<(String, String)>,
    extra_host_keys: Vec<String>,
}

impl FakeHostBuilder {
    pub fn hostname(mut self, name: &str) -> Self {
        self.hostname = Some(name.to_string());
        self
    }

    /// Authorizes `key` for root (may be called several times).
    pub fn authorize(mut self, key: &ClientKey) -> Self {
        self.authorized.push(key.public.clone());
        self
    }

    /// Adds `/etc/init.d/NAME` with `script` as its content. `@DIR@` in the
    /// script is replaced by the host's temp dir. Replaces the default
    /// `chroma-agent` stand-in if NAME is `chroma-agent`.
    pub fn init_script(mut self, name: &str, script: &str) -> Self {
        self.init_scripts
            .push((name.to_string(), script.to_string()));
        self
    }

    /// Gives sshd another host key of type `kind` (`rsa`, `ecdsa`) besides
    /// its ed25519 key, like a real server with several host keys.
    pub fn extra_host_key(mut self, kind: &str) -> Self {
        self.extra_host_keys.push(kind.to_string());
        self
    }

    pub fn start(self) -> FakeHost {
        setup_once();
        let mut last = String::new();
        // A port can be taken by another process between our probe and
        // sshd's bind; then we try the next address.
        for _ in 0..5 {
            let n = NEXT_HOST.fetch_add(1, Ordering::SeqCst);
            let ip = Ipv4Addr::new(127, 0, (2 + n / 250) as u8, (2 + n % 250) as u8);
            let pid = std::process::id() as usize;
            let mut port = (20000 + (pid * 131 + n * 7) % 40000) as u16;
            while TcpListener::bind((ip, port)).is_err() {
                port = if port >= 60000 { 20000 } else { port + 1 };
            }
            let hostname = self
                .hostname
                .clone()
                .unwrap_or_else(|| format!("fake-oss{}", n + 1));
            let dir = tempfile::Builder::new()
                .prefix(&format!("imlrecover-sshd-{hostname}-"))
                .tempdir()
                .expect("tempdir");
            let config = HostConfig {
                ip,
                port,
                hostname,
                authorized_keys: self.authorized.clone(),
                init_scripts: self.init_scripts.clone(),
                extra_host_keys: self.extra_host_keys.clone(),
            };
            match AgentHost::start(dir.path(), &config) {
                Ok(host) => return FakeHost { host, _dir: dir },
                Err(e) => last = e.to_string(),
            }
        }
        panic!("sshd did not come up after 5 attempts; last error:\n{last}");
    }
}

/// One running fake Lustre server on its own address and port.
pub struct FakeHost {
    // Declared first: sshd stops before its directory goes.
    host: AgentHost,
    _dir: TempDir,
}

impl FakeHost {
    pub fn builder() -> FakeHostBuilder {
        FakeHostBuilder::default()
    }

    /// A host that accepts `key` for root, with the default `chroma-agent`.
    pub fn start(key: &ClientKey) -> FakeHost {
        FakeHost::builder().authorize(key).start()
    }

    /// The loopback address, e.g. `127.0.2.2`.
    pub fn ip(&self) -> String {
        self.host.ip().to_string()
    }

    pub fn port(&self) -> u16 {
        self.host.port()
    }

    /// The host's own hostname (what `hostname` prints over SSH).
    pub fn hostname(&self) -> &str {
        self.host.hostname()
    }

    /// The host's temp dir (init scripts, logs).
    pub fn dir(&self) -> &Path {
        self.host.dir()
    }

    /// `ssh-ed25519 AAAA...` of the host key.
    pub fn host_key_fields(&self) -> &str {
        self.host.host_key_fields()
    }

    /// The host key fingerprint as `ssh-keygen -lf` prints it.
    pub fn host_key_fingerprint(&self) -> String {
        self.host
            .host_key_fingerprint()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `TYPE BASE64` of the extra host key of type `kind`.
    pub fn extra_host_key_fields(&self, kind: &str) -> String {
        self.host
            .extra_host_key_fields(kind)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `[127.0.x.y]:PORT ssh-ed25519 AAAA...`
    pub fn known_hosts_line(&self) -> String {
        self.host.known_hosts_line()
    }

    /// Appends this host's [`FakeHost::known_hosts_line`] to `path`.
    pub fn add_to_known_hosts(&self, path: &Path) {
        append_line(path, &self.known_hosts_line());
    }

    /// A target for root on this host with `key`, no agent, a short connect
    /// timeout.
    pub fn target(&self, key: &ClientKey, known_hosts: &Path) -> SshTarget {
        SshTarget::new(self.ip(), "root", known_hosts)
            .with_port(self.port())
            .with_identity_file(&key.private)
            .with_agent_socket(None)
            .with_connect_timeout(Duration::from_secs(10))
    }

    /// Lines written by the `chroma-agent` stand-in: `ACTION HOSTNAME`.
    pub fn actions(&self) -> Vec<String> {
        self.host.actions()
    }

    /// How many times `chroma-agent` was restarted on this host.
    pub fn restart_count(&self) -> usize {
        self.host.restart_count()
    }

    /// sshd's own log (for assertion messages).
    pub fn log(&self) -> String {
        self.host.log()
    }

    pub fn is_running(&self) -> bool {
        self.host.is_running()
    }

    /// Stops sshd (and everything it started) and waits until the port
    /// refuses connections.
    pub fn stop(&mut self) {
        self.host.stop();
    }
}

pub fn append_line(path: &Path, line: &str) {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    writeln!(f, "{line}").unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A running `ssh-agent` on a private socket, killed on drop.
pub struct Agent {
    _dir: TempDir,
    child: Child,
    pub socket: PathBuf,
}

impl Agent {
    /// Starts an agent and loads `keys` into it.
    pub fn start(keys: &[&ClientKey]) -> Agent {
        setup_once();
        let dir = tempfile::Builder::new()
            .prefix("imlrecover-agent-")
            .tempdir()
            .expect("tempdir");
        let socket = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ssh-agent");
        let agent = Agent {
            _dir: dir,
            child,
            socket,
        };
        for _ in 0..200 {
            if agent.socket.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        for key in keys {
            let out = Command::new("ssh-add")
                .arg("-q")
                .arg(&key.private)
                .env("SSH_AUTH_SOCK", &agent.socket)
                .stdin(Stdio::null())
                .output()
                .expect("run ssh-add");
            assert!(
                out.status.success(),
                "ssh-add failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        agent
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
