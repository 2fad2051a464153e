//! Test harness: real OpenSSH servers posing as Lustre servers.
//!
//! Each [`FakeHost`] is a `/usr/sbin/sshd` on its own loopback address
//! (127.0.0.2, 127.0.0.3, ...) and port, started inside
//! `unshare --uts --mount --pid` so that it has its own hostname
//! (`fake-oss1`, ...) and its own `/etc/init.d` (a bind mount of a directory
//! in the host's temp dir). `service chroma-agent restart` run over SSH on it
//! therefore runs that host's stand-in init script, which appends
//! `ACTION HOSTNAME` to a file the test can read ([`FakeHost::actions`]).
//! `/root` is likewise an empty per-host directory, so the machine's own
//! shell start-up files never run in (or print into) remote commands.
//!
//! The PID namespace makes cleanup complete: `unshare --kill-child` SIGKILLs
//! sshd (the namespace's init) when we kill `unshare`, and the kernel then
//! kills every process left in the namespace, e.g. a `sleep 30` whose SSH
//! client gave up on it.
//!
//! Needs root (sshd privilege separation, namespaces). Installs
//! openssh-server with apt-get if `/usr/sbin/sshd` is missing. Only loopback
//! addresses are used.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Duration;

use imlrecover::host::ssh::SshTarget;
use tempfile::TempDir;

const SSHD: &str = "/usr/sbin/sshd";

/// Distinct per host within this test process.
static NEXT_HOST: AtomicUsize = AtomicUsize::new(0);
static SETUP: Once = Once::new();

fn setup_once() {
    SETUP.call_once(|| {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the sshd test harness must run as root (sshd privilege separation, namespaces)"
        );
        if !Path::new(SSHD).exists() {
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
        // sshd's privilege-separation directory.
        fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        fs::set_permissions("/run/sshd", fs::Permissions::from_mode(0o755))
            .expect("chmod /run/sshd");
    });
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ssh-keygen -t ed25519` into `dir/name`, with an optional passphrase.
fn keygen(dir: &Path, name: &str, passphrase: &str) -> PathBuf {
    keygen_type(dir, name, "ed25519", passphrase)
}

fn keygen_type(dir: &Path, name: &str, kind: &str, passphrase: &str) -> PathBuf {
    let path = dir.join(name);
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-C", name, "-N", passphrase, "-f"])
        .arg(&path));
    path
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
        let private = keygen(dir.path(), "id_ed25519", passphrase);
        let public = fs::read_to_string(private.with_extension("pub")).expect("read public key");
        ClientKey {
            _dir: dir,
            private,
            public: public.trim().to_string(),
        }
    }

    /// `TYPE BASE64` without the comment, as a known_hosts key field.
    pub fn key_fields(&self) -> String {
        self.public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
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
        let mut last_log = String::new();
        // A port can be taken by another process between our probe and
        // sshd's bind; then sshd exits and we try the next address.
        for _ in 0..5 {
            let n = NEXT_HOST.fetch_add(1, Ordering::SeqCst);
            match FakeHost::try_start(&self, n) {
                Ok(host) => return host,
                Err(log) => last_log = log,
            }
        }
        panic!("sshd did not come up after 5 attempts; last log:\n{last_log}");
    }
}

/// One running fake Lustre server.
pub struct FakeHost {
    dir: TempDir,
    ip: Ipv4Addr,
    port: u16,
    hostname: String,
    host_key_fields: String,
    child: Option<Child>,
}

const DEFAULT_AGENT_SCRIPT: &str = r#"#!/bin/sh
### BEGIN INIT INFO
# Provides:          chroma-agent
# Short-Description: stand-in for the IML agent; records every action
### END INIT INFO
# `service` runs this with a cleared environment, so use absolute paths.
case "$1" in
  start|stop|restart|status)
    echo "$1 $(/usr/bin/hostname)" >> "@DIR@/chroma-agent.actions"
    echo "chroma-agent: $1 done"
    ;;
  *)
    echo "Usage: $0 {start|stop|restart|status}" >&2
    exit 2
    ;;
esac
"#;

impl FakeHost {
    pub fn builder() -> FakeHostBuilder {
        FakeHostBuilder::default()
    }

    /// A host that accepts `key` for root, with the default `chroma-agent`.
    pub fn start(key: &ClientKey) -> FakeHost {
        FakeHost::builder().authorize(key).start()
    }

    fn try_start(opts: &FakeHostBuilder, n: usize) -> Result<FakeHost, String> {
        // 127.0.0.2 .. 127.0.0.251, then 127.0.1.2 ...; the port is spread by
        // process id so concurrent test binaries rarely meet, and probed.
        let ip = Ipv4Addr::new(127, 0, (n / 250) as u8, (2 + n % 250) as u8);
        let pid = std::process::id() as usize;
        let mut port = (20000 + (pid * 131 + n * 7) % 40000) as u16;
        while TcpListener::bind((ip, port)).is_err() {
            port = if port >= 60000 { 20000 } else { port + 1 };
        }
        let hostname = opts
            .hostname
            .clone()
            .unwrap_or_else(|| format!("fake-oss{}", n + 1));

        let dir = tempfile::Builder::new()
            .prefix(&format!("imlrecover-sshd-{hostname}-"))
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        let hostkey = keygen(d, "hostkey", "");
        let host_pub = fs::read_to_string(hostkey.with_extension("pub")).expect("read host key");
        let host_key_fields = host_pub
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let mut host_keys = format!("HostKey {}\n", hostkey.display());
        for kind in &opts.extra_host_keys {
            let path = keygen_type(d, &format!("hostkey_{kind}"), kind, "");
            host_keys.push_str(&format!("HostKey {}\n", path.display()));
        }
        fs::write(d.join("authorized_keys"), opts.authorized.join("\n") + "\n")
            .expect("write authorized_keys");

        // The host's own, empty root home: the real /root's shell start-up
        // files (which may print or race) must not leak into command output.
        let home = d.join("root");
        fs::create_dir(&home).expect("mkdir root home");
        let init_d = d.join("init.d");
        fs::create_dir(&init_d).expect("mkdir init.d");
        let mut scripts = vec![("chroma-agent".to_string(), DEFAULT_AGENT_SCRIPT.to_string())];
        scripts.extend(opts.init_scripts.iter().cloned());
        for (name, body) in scripts {
            let path = init_d.join(name);
            fs::write(&path, body.replace("@DIR@", &d.to_string_lossy()))
                .expect("write init script");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                .expect("chmod init script");
        }

        let config = d.join("sshd_config");
        fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress {ip}\n{host_keys}PidFile {dir}/sshd.pid\n\
                 AuthorizedKeysFile {dir}/authorized_keys\nUsePAM no\nStrictModes no\n\
                 PermitRootLogin yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 UseDNS no\nPrintMotd no\nPrintLastLog no\nMaxStartups 100:30:200\n\
                 Subsystem sftp internal-sftp\n",
                dir = d.display(),
            ),
        )
        .expect("write sshd_config");

        let log = fs::File::create(d.join("sshd.log")).expect("create sshd.log");
        let child = Command::new("unshare")
            .args([
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
                r#"hostname "$1" && mount --bind "$2" /etc/init.d && mount --bind "$3" /root && exec /usr/sbin/sshd -D -e -f "$4""#,
                "sh",
            ])
            .arg(&hostname)
            .arg(&init_d)
            .arg(&home)
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot spawn unshare: {e}"))?;

        let mut host = FakeHost {
            dir,
            ip,
            port,
            hostname,
            host_key_fields,
            child: Some(child),
        };
        // Bounded wait until sshd accepts connections.
        for _ in 0..200 {
            if let Some(child) = host.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    host.child = None;
                    return Err(host.log());
                }
            }
            let addr = SocketAddr::from((ip, port));
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(host);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err(format!(
            "sshd never listened on {ip}:{port}\n{}",
            host.log()
        ))
    }

    /// The loopback address, e.g. `127.0.0.2`.
    pub fn ip(&self) -> String {
        self.ip.to_string()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host's own hostname (what `hostname` prints over SSH).
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// The host's temp dir (init scripts, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `ssh-ed25519 AAAA...` of the host key.
    pub fn host_key_fields(&self) -> &str {
        &self.host_key_fields
    }

    /// The host key fingerprint as `ssh-keygen -lf` prints it.
    pub fn host_key_fingerprint(&self) -> String {
        let out = run(Command::new("ssh-keygen")
            .arg("-lf")
            .arg(self.dir().join("hostkey.pub")));
        out.split_whitespace()
            .nth(1)
            .expect("ssh-keygen -lf output has a fingerprint")
            .to_string()
    }

    /// `TYPE BASE64` of the extra host key of type `kind` (see
    /// [`FakeHostBuilder::extra_host_key`]).
    pub fn extra_host_key_fields(&self, kind: &str) -> String {
        let text = fs::read_to_string(self.dir().join(format!("hostkey_{kind}.pub")))
            .unwrap_or_else(|e| panic!("no {kind} host key: {e}"));
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `[127.0.0.N]:PORT ssh-ed25519 AAAA...`
    pub fn known_hosts_line(&self) -> String {
        format!("[{}]:{} {}", self.ip, self.port, self.host_key_fields)
    }

    /// Appends this host's [`FakeHost::known_hosts_line`] to `path`.
    pub fn add_to_known_hosts(&self, path: &Path) {
        append_line(path, &self.known_hosts_line());
    }

    /// A target for root on this host with `key`, no agent, a short connect
    /// timeout.
    pub fn target(&self, key: &ClientKey, known_hosts: &Path) -> SshTarget {
        SshTarget::new(self.ip(), "root", known_hosts)
            .with_port(self.port)
            .with_identity_file(&key.private)
            .with_agent_socket(None)
            .with_connect_timeout(Duration::from_secs(10))
    }

    /// Lines written by the `chroma-agent` stand-in: `ACTION HOSTNAME`.
    pub fn actions(&self) -> Vec<String> {
        fs::read_to_string(self.dir().join("chroma-agent.actions"))
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// How many times `chroma-agent` was restarted on this host.
    pub fn restart_count(&self) -> usize {
        self.actions()
            .iter()
            .filter(|l| l.starts_with("restart "))
            .count()
    }

    /// sshd's own log (for assertion messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir().join("sshd.log")).unwrap_or_default()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops sshd (and everything it started) and waits until the port
    /// refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL to unshare; --kill-child takes sshd and its namespace down.
            let _ = child.kill();
            let _ = child.wait();
            let addr = SocketAddr::from((self.ip, self.port));
            for _ in 0..200 {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
    }
}

impl Drop for FakeHost {
    fn drop(&mut self) {
        self.stop();
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
            run(Command::new("ssh-add")
                .arg("-q")
                .arg(&key.private)
                .env("SSH_AUTH_SOCK", &agent.socket)
                .stdin(Stdio::null()));
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
