//! Test harness: a real OpenSSH server with its `internal-sftp` subsystem
//! on a loopback address (127.0.2.100 and up), the off-host store that
//! `push` and `pull` talk to: one host of the one sshd harness,
//! [`imlrecover::sandbox::agents::AgentHost`]. Root logs in with a
//! generated ed25519 key; remote paths are paths on this machine (mounts
//! made before the server starts are seen, `/root` is the host's own empty
//! home). Only loopback addresses.
#![allow(dead_code)]

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::cli::{Imlrecover, Output};
use imlrecover::sandbox::agents::{self, AgentHost, HostConfig};
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One sshd serving SFTP, stopped on drop.
pub struct SftpServer {
    // Declared first: sshd stops before its directory goes.
    host: AgentHost,
    pub dir: tempfile::TempDir,
    pub ip: Ipv4Addr,
    pub port: u16,
    /// The client's private key (authorized for root).
    pub identity: PathBuf,
    /// A known_hosts file holding this server's key as `[ip]:port`.
    pub known_hosts: PathBuf,
}

impl SftpServer {
    pub fn start() -> SftpServer {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the SFTP test server needs root (sshd privilege separation)"
        );
        super::sshd::setup_once();
        let mut last = String::new();
        for _ in 0..5 {
            match SftpServer::try_start() {
                Ok(s) => return s,
                Err(log) => last = log,
            }
        }
        panic!("sshd (sftp) did not come up; last log:\n{last}");
    }

    fn try_start() -> Result<SftpServer, String> {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id() as usize;
        let ip = Ipv4Addr::new(127, 0, 2, (100 + (pid + n * 7) % 150) as u8);
        let mut port = (20000 + (pid * 137 + n * 11) % 40000) as u16;
        while TcpListener::bind((ip, port)).is_err() {
            port = if port >= 60000 { 20000 } else { port + 1 };
        }
        let dir = tempfile::Builder::new()
            .prefix("imlrecover-sftp-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        let identity = agents::keygen(d, "id_ed25519", "ed25519", "").map_err(|e| e.to_string())?;
        let client_pub = fs::read_to_string(identity.with_extension("pub")).expect("client key");
        let mut config = HostConfig::new(ip, port, "sftp");
        config.authorized_keys.push(client_pub.trim().to_string());
        let host = AgentHost::start(&d.join("sshd"), &config).map_err(|e| e.to_string())?;
        let known_hosts = d.join("known_hosts");
        fs::write(&known_hosts, host.known_hosts_line() + "\n").expect("known_hosts");
        Ok(SftpServer {
            host,
            dir,
            ip,
            port,
            identity,
            known_hosts,
        })
    }

    /// `sftp://root@IP:PORT/PATH`.
    pub fn url(&self, path: &Path) -> String {
        url(&self.ip, self.port, path)
    }

    /// `--identity F --known-hosts F`.
    pub fn ssh_args(&self) -> Vec<String> {
        ssh_args(&self.identity, &self.known_hosts)
    }

    /// `imlrecover push BUNDLE` to `remote` on this server.
    pub fn push(&self, bundle: &Path, remote: &Path, extra: &[&str]) -> Output {
        Imlrecover::new()
            .arg("push")
            .arg(bundle)
            .arg(self.url(remote))
            .args(self.ssh_args())
            .args(extra)
            .run()
    }

    /// `--push URL --identity F --known-hosts F`: a backup's push to `remote`.
    pub fn push_args(&self, remote: &Path) -> Vec<String> {
        let mut args = vec!["--push".to_string(), self.url(remote)];
        args.extend(self.ssh_args());
        args
    }

    /// `imlrecover pull` from `remote` on this server into `dir`.
    pub fn pull(&self, remote: &Path, dir: &Path, extra: &[&str]) -> Output {
        self.pull_on(Imlrecover::new(), remote, dir, extra)
    }

    /// [`SftpServer::pull`] on `c` (the binary under a 3.10 kernel's filter…).
    pub fn pull_on(&self, c: Imlrecover, remote: &Path, dir: &Path, extra: &[&str]) -> Output {
        c.arg("pull")
            .arg(self.url(remote))
            .arg(dir)
            .args(self.ssh_args())
            .args(extra)
            .run()
    }

    pub fn log(&self) -> String {
        self.host.log()
    }
}

/// Names in `dir`, sorted (empty when it does not exist).
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Whether a name is a complete bundle's (timestamp) name.
pub fn is_bundle_name(name: &str) -> bool {
    imlrecover::bundle::parse_bundle_name(name).is_some()
}

/// A tmpfs of `size` (e.g. `2m`) mounted at `dir`, unmounted on drop: a
/// remote disk that fills up.
pub struct TinyDisk {
    pub dir: PathBuf,
}

impl TinyDisk {
    pub fn mount(dir: &Path, size: &str) -> TinyDisk {
        fs::create_dir_all(dir).expect("mkdir");
        run(Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir));
        TinyDisk {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// What a [`Relay`] does with every connection after the first.
#[derive(Clone, Copy, Debug)]
pub enum Later {
    /// Closed at once: a server that takes one connection per client.
    Refuse,
    /// Relayed until the client has sent this many bytes, then both ends
    /// are shut: a connection lost in the middle of a transfer.
    CutAfter(u64),
}

/// A TCP relay on another port of the server's loopback address: the first
/// connection goes through untouched, later ones as [`Later`] says. Stops
/// accepting on drop.
pub struct Relay {
    pub port: u16,
    ip: Ipv4Addr,
    known_hosts: PathBuf,
    identity: PathBuf,
    connections: std::sync::Arc<AtomicUsize>,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    pub fn start(server: &SftpServer, later: Later) -> Relay {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let listener = TcpListener::bind((server.ip, 0)).expect("bind the relay");
        let port = listener.local_addr().expect("relay address").port();
        // The server's key, vouched for at the relay's port too.
        let line = fs::read_to_string(&server.known_hosts).expect("known_hosts");
        let key = line.split_once(' ').expect("known_hosts line").1;
        let known_hosts = server.dir.path().join(format!("known_hosts.relay{port}"));
        fs::write(&known_hosts, format!("[{}]:{port} {key}", server.ip)).expect("write");
        let connections = Arc::new(AtomicUsize::new(0));
        let cut = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = SocketAddr::from((server.ip, server.port));
        let (n, c, s) = (connections.clone(), cut.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let limit = match (n.fetch_add(1, Ordering::SeqCst), later) {
                    (0, _) => None,
                    (_, Later::Refuse) => continue,
                    (_, Later::CutAfter(bytes)) => Some(bytes),
                };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                relay_pair(client, server, limit, c.clone());
            }
        });
        Relay {
            port,
            ip: server.ip,
            known_hosts,
            identity: server.identity.clone(),
            connections,
            cut,
            stop,
        }
    }

    /// `sftp://root@IP:RELAYPORT/PATH`.
    pub fn url(&self, path: &Path) -> String {
        url(&self.ip, self.port, path)
    }

    /// `--identity F --known-hosts F` (host keys listed for the relay's port).
    pub fn ssh_args(&self) -> Vec<String> {
        ssh_args(&self.identity, &self.known_hosts)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Whether a connection was cut (`Later::CutAfter`).
    pub fn was_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect((self.ip, self.port));
    }
}

fn relay_pair(
    client: TcpStream,
    server: TcpStream,
    limit: Option<u64>,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::io::{Read, Write};
    use std::net::Shutdown;
    let pipe = move |mut from: TcpStream, mut to: TcpStream, limit: Option<u64>| {
        let mut buf = vec![0u8; 64 << 10];
        let mut sent = 0u64;
        loop {
            let room = limit.map_or(buf.len() as u64, |l| (l - sent).min(buf.len() as u64));
            if room == 0 {
                cut.store(true, Ordering::SeqCst);
                break;
            }
            match from.read(&mut buf[..room as usize]) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    sent += n as u64;
                }
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    };
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = pipe.clone();
    std::thread::spawn(move || up(client, server, limit));
    std::thread::spawn(move || pipe(s2, c2, None));
}

fn url(ip: &Ipv4Addr, port: u16, path: &Path) -> String {
    format!("sftp://root@{ip}:{port}{}", path.display())
}

fn ssh_args(identity: &Path, known_hosts: &Path) -> Vec<String> {
    vec![
        "--identity".into(),
        identity.display().to_string(),
        "--known-hosts".into(),
        known_hosts.display().to_string(),
    ]
}
