//! `push`, `pull` and `backup --push` against a real OpenSSH SFTP server on
//! a loopback address: a golden manager is backed up and pushed, destroyed,
//! and restored from the pulled copy; failures (a killed push, a wrong host
//! key, an unreachable target, a full remote disk) never leave a remote
//! bundle that looks complete, and never touch the local one.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::cli::Imlrecover;
use support::host::{blake3_of, Host};
use support::manager::Manager;
use support::sftp::{is_bundle_name, names, Later, Relay, SftpServer, TinyDisk};

fn files_backup(host: &Host) {
    host.backup(&host.files_recipe());
}

/// Every file below `dir` with its blake3, relative paths.
fn tree_hashes(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, blake3_of(&p)));
            }
        }
    }
    out.sort();
    out
}

fn complete_names(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| is_bundle_name(n))
        .collect()
}

#[test]
fn backup_push_then_pull_restores_a_destroyed_manager() {
    let server = SftpServer::start();
    let mut m = Manager::new();
    let remote = m.tmp.path().join("offsite/iml");
    m.record();

    m.backup_with(&server.push_args(&remote))
        .stdout_has("Backup complete:")
        .stdout_has("Push complete:");
    let local = std::fs::canonicalize(&m.bundle).unwrap();
    let name = local.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        names(&remote),
        vec![name.clone()],
        "only the complete bundle"
    );
    assert_eq!(tree_hashes(&local), tree_hashes(&remote.join(&name)));
    // The remote copy keeps the bundle's protections.
    assert_eq!(support::host::mode(&remote.join(&name)), 0o700);
    assert_eq!(
        support::host::mode(&remote.join(&name).join("files/etc/shadow")),
        0o600
    );

    // The manager dies, taking its local bundles with it.
    m.sb.disaster().unwrap();
    std::fs::remove_dir_all(&m.sb.bundles).unwrap();

    let fetched = m.tmp.path().join("fetched");
    server
        .pull(&remote, &fetched, &[])
        .code(0)
        .stdout_has("Pull complete:")
        .stdout_has(&name);
    Imlrecover::new()
        .arg("verify")
        .arg(&fetched)
        .run()
        .code(0)
        .stdout_has("Bundle intact:");
    m.apply_from(Imlrecover::new(), &fetched)
        .run()
        .code(0)
        .stdout_has("Apply complete!");
    // Rows and the kept files' bytes (shadow, ntp.conf, the keys, the certificates).
    m.assert_as_recorded();
}

#[test]
fn keep_prunes_the_remote_and_pull_fetches_a_named_bundle() {
    let server = SftpServer::start();
    let host = Host::new();
    let remote = host.tmp.path().join("remote");
    let mut pushed = Vec::new();
    for _ in 0..3 {
        files_backup(&host);
        let b = host.latest();
        server.push(&b, &remote, &["--keep", "2"]).code(0);
        pushed.push(b.file_name().unwrap().to_string_lossy().into_owned());
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert_eq!(names(&remote), pushed[1..].to_vec());
    // Pushing the same bundle again sends nothing.
    server
        .push(&host.latest(), &remote, &[])
        .code(0)
        .stdout_has("already on");

    let dir = host.tmp.path().join("pulled");
    server
        .pull(&remote, &dir, &["--bundle", &pushed[1]])
        .code(0)
        .stdout_has(&pushed[1]);
    assert_eq!(
        tree_hashes(&dir.join(&pushed[1])),
        tree_hashes(&host.bundles.join(&pushed[1]))
    );
    server
        .pull(&remote, &dir, &["--bundle", &pushed[0]])
        .code(1)
        .stderr_has("has no complete bundle named")
        .stderr_has(&pushed[2]);
    // Newest by default; `latest` follows.
    server
        .pull(&remote, &dir, &[])
        .code(0)
        .stdout_has(&pushed[2]);
    assert_eq!(
        std::fs::read_link(dir.join("latest")).unwrap(),
        PathBuf::from(&pushed[2])
    );
    // Never over an existing copy.
    server
        .pull(&remote, &dir, &[])
        .code(1)
        .stderr_has("already exists");
}

#[test]
fn a_damaged_remote_copy_is_not_kept_by_pull() {
    let server = SftpServer::start();
    let host = Host::new();
    files_backup(&host);
    let remote = host.tmp.path().join("remote");
    server.push(&host.latest(), &remote, &[]).code(0);
    let name = complete_names(&remote).remove(0);
    std::fs::write(remote.join(&name).join("files/etc/hosts"), "tampered\n").unwrap();
    let dir = host.tmp.path().join("pulled");
    server
        .pull(&remote, &dir, &[])
        .code(1)
        .stderr_has("does not verify")
        .stderr_has("files/etc/hosts");
    assert!(complete_names(&dir).is_empty(), "{:?}", names(&dir));
    assert!(!names(&dir).iter().any(|n| n.starts_with(".incomplete-")));
}

#[test]
fn a_wrong_host_key_and_an_unreachable_target_are_refused() {
    let server = SftpServer::start();
    let host = Host::new();
    files_backup(&host);
    let bundle = host.latest();
    let before = tree_hashes(&bundle);
    let remote = host.tmp.path().join("remote");

    // known_hosts vouches for another key under this host's name.
    let wrong = host.tmp.path().join("known_hosts.wrong");
    let other = host.tmp.path().join("other_key");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(st.success());
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let fields: Vec<&str> = other_pub.split_whitespace().take(2).collect();
    std::fs::write(
        &wrong,
        format!("[{}]:{} {}\n", server.ip, server.port, fields.join(" ")),
    )
    .unwrap();
    Imlrecover::new()
        .arg("push")
        .arg(&bundle)
        .arg(server.url(&remote))
        .args(["--identity"])
        .arg(&server.identity)
        .arg("--known-hosts")
        .arg(&wrong)
        .run()
        .code(1)
        .stderr_has("HOST KEY MISMATCH");
    assert!(!remote.exists(), "nothing was created before the key check");

    // Nothing listens there.
    let closed = std::net::TcpListener::bind((server.ip, 0)).unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    Imlrecover::new()
        .arg("push")
        .arg(&bundle)
        .arg(format!(
            "sftp://root@{}:{port}{}",
            server.ip,
            remote.display()
        ))
        .args(server.ssh_args())
        .run()
        .code(1)
        .stderr_has("refused");
    Imlrecover::new()
        .arg("push")
        .arg(&bundle)
        .arg("ftp://example/x")
        .run()
        .code(1)
        .stderr_has("is not an SFTP target");
    assert_eq!(
        tree_hashes(&bundle),
        before,
        "the local bundle is untouched"
    );
}

/// A recipe of the fixture host's files plus one big file, so a push takes
/// long enough to be killed in the middle.
fn big_bundle(host: &Host, mib: usize) -> PathBuf {
    let big = host.file("/var/lib/big.bin");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    let mut data = vec![0u8; mib << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        // xorshift: incompressible, so nothing on the way shortens it.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(&big, &data).unwrap();
    let recipe = host.tmp.path().join("big.hcl");
    let mut text = std::fs::read_to_string(host.files_recipe()).unwrap();
    text.push_str("\nfile \"big\" {\n  path = \"/var/lib/big.bin\"\n}\n");
    std::fs::write(&recipe, text).unwrap();
    host.backup(&recipe);
    host.latest()
}

#[test]
fn a_push_killed_midway_leaves_nothing_that_looks_complete() {
    let server = SftpServer::start();
    let host = Host::new();
    let bundle = big_bundle(&host, 256);
    let before = tree_hashes(&bundle);
    let remote = host.tmp.path().join("remote");
    let mut child = Command::new(env!("CARGO_BIN_EXE_imlrecover"))
        .arg("push")
        .arg(&bundle)
        .arg(server.url(&remote))
        .args(server.ssh_args())
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it as soon as its temporary directory exists.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if names(&remote).iter().any(|n| n.starts_with(".incomplete-")) {
            break;
        }
        assert!(Instant::now() < deadline, "the push never started");
        if let Ok(Some(st)) = child.try_wait() {
            panic!("push ended before it could be killed: {st}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left = names(&remote);
    assert!(
        left.iter().all(|n| n.starts_with(".incomplete-")),
        "{left:?}"
    );
    assert!(complete_names(&remote).is_empty());
    // pull finds nothing to restore from, and says why.
    let dir = host.tmp.path().join("pulled");
    server
        .pull(&remote, &dir, &[])
        .code(1)
        .stderr_has("holds no complete bundle")
        .stderr_has("incomplete");
    // A new push from this host completes and removes the dead push's
    // leftover (its pid is gone).
    server.push(&bundle, &remote, &[]).code(0);
    assert_eq!(complete_names(&remote).len(), 1);
    assert_eq!(names(&remote), complete_names(&remote), "leftover removed");
    assert_eq!(
        tree_hashes(&bundle),
        before,
        "the local bundle is untouched"
    );
}

/// Pushes a bundle with a `mib` MiB file onto a tmpfs of `disk` size: the
/// push fails with the disk named, leaves nothing there and the bundle as
/// it was.
fn push_onto_a_full_disk_fails_cleanly(mib: usize, disk: &str) {
    let host = Host::new();
    let bundle = big_bundle(&host, mib);
    let before = tree_hashes(&bundle);
    let disk = TinyDisk::mount(&host.tmp.path().join("tiny"), disk);
    let server = SftpServer::start();
    let remote = disk.dir.join("iml");
    server
        .push(&bundle, &remote, &[])
        .code(1)
        .stderr_has("SFTP error")
        .stderr_has("disk may be full");
    assert!(complete_names(&remote).is_empty(), "{:?}", names(&remote));
    assert!(
        names(&remote).is_empty(),
        "the incomplete copy was removed: {:?}",
        names(&remote)
    );
    assert_eq!(
        tree_hashes(&bundle),
        before,
        "the local bundle is untouched"
    );
}

#[test]
fn a_full_remote_disk_fails_cleanly() {
    push_onto_a_full_disk_fails_cleanly(8, "2m");
}

/// Pages of `path` in the page cache that are clean (written to disk):
/// cached - dirty - under writeback, in bytes, with the file's size.
/// `None` where the kernel has no cachestat(2) (before Linux 6.5).
fn clean_bytes(path: &Path) -> Option<(u64, u64)> {
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).ok()?;
    let size = file.metadata().ok()?.len();
    let range = Range { off: 0, len: 0 };
    let mut st = Stat::default();
    // cachestat(2) is 451 on x86_64 and aarch64.
    let rc = unsafe {
        nix::libc::syscall(
            451,
            file.as_raw_fd(),
            &range as *const Range,
            &mut st as *mut Stat,
            0u32,
        )
    };
    if rc != 0 {
        return None;
    }
    let page = 4096;
    let clean = st.nr_cache.saturating_sub(st.nr_dirty + st.nr_writeback);
    Some((size, clean * page))
}

#[test]
fn a_big_file_goes_over_two_connections_and_reaches_the_disk_while_it_is_sent() {
    let server = SftpServer::start();
    let host = Host::new();
    let bundle = big_bundle(&host, 160);
    let remote = host.tmp.path().join("remote");
    let mut child = Command::new(env!("CARGO_BIN_EXE_imlrecover"))
        .arg("push")
        .arg(&bundle)
        .arg(server.url(&remote))
        .args(server.ssh_args())
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Watch the remote copy of the big file while it grows: some of it must
    // be on disk (clean in the page cache) before the transfer ends, instead
    // of all of it being flushed by the final fsync. Needs cachestat(2), and
    // a file system with write-back (not tmpfs).
    let observable = clean_bytes(&bundle.join("files/var/lib/big.bin")).is_some()
        && nix::sys::statfs::statfs(host.tmp.path())
            .is_ok_and(|fs| fs.filesystem_type() != nix::sys::statfs::TMPFS_MAGIC);
    let full = 160u64 << 20;
    let mut flushed_early = 0u64;
    let mut watched = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the push did not finish");
        let big = names(&remote)
            .into_iter()
            .find(|n| n.starts_with(".incomplete-"))
            .map(|n| remote.join(n).join("files/var/lib/big.bin"));
        if let Some((size, clean)) = big.as_deref().and_then(clean_bytes) {
            watched = true;
            if size < full {
                flushed_early = flushed_early.max(clean);
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "push failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if observable {
        assert!(watched, "the remote file was never seen while it was sent");
        assert!(
            flushed_early >= 32 << 20,
            "only {flushed_early} bytes of the big file were on disk before it was complete"
        );
    } else {
        eprintln!("no cachestat(2) or a tmpfs here: the flush while sending is not observed");
    }
    // The second connection was made, and the copy is whole.
    let accepted = server.log().matches("Accepted publickey").count();
    assert_eq!(accepted, 2, "{}", server.log());
    let name = bundle.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(complete_names(&remote), vec![name.clone()]);
    assert_eq!(tree_hashes(&bundle), tree_hashes(&remote.join(&name)));
    let dir = host.tmp.path().join("pulled");
    server.pull(&remote, &dir, &[]).code(0);
    assert_eq!(tree_hashes(&bundle), tree_hashes(&dir.join(&name)));
}

#[test]
fn a_second_connection_that_fails_leaves_the_push_to_the_first() {
    let server = SftpServer::start();
    let host = Host::new();
    let bundle = big_bundle(&host, 80);
    let name = bundle.file_name().unwrap().to_string_lossy().into_owned();
    let push_via = |relay: &Relay, remote: &Path| {
        Imlrecover::new()
            .arg("push")
            .arg(&bundle)
            .arg(relay.url(remote))
            .args(relay.ssh_args())
            .run()
    };

    // A server that takes one connection per client: the second is closed
    // at once, the first lane sends everything.
    let refusing = Relay::start(&server, Later::Refuse);
    let remote = host.tmp.path().join("refused");
    push_via(&refusing, &remote)
        .code(0)
        .stdout_has("Push complete:")
        .stdout_has("Note: big files went over one SSH connection: the second one failed (it could not connect");
    assert_eq!(refusing.connections(), 2, "the second connection was tried");
    assert_eq!(complete_names(&remote), vec![name.clone()]);
    assert_eq!(tree_hashes(&bundle), tree_hashes(&remote.join(&name)));

    // The second connection dies in the middle of the big file: the first
    // lane writes what it did not finish.
    let cutting = Relay::start(&server, Later::CutAfter(2 << 20));
    let remote = host.tmp.path().join("cut");
    push_via(&cutting, &remote)
        .code(0)
        .stdout_has("Push complete:")
        .stdout_has("the second one failed (it was lost while sending");
    assert!(
        cutting.was_cut(),
        "the second connection carried data and was cut"
    );
    assert_eq!(complete_names(&remote), vec![name.clone()]);
    assert_eq!(tree_hashes(&bundle), tree_hashes(&remote.join(&name)));
    let dir = host.tmp.path().join("pulled");
    server.pull(&remote, &dir, &[]).code(0);
    assert_eq!(tree_hashes(&bundle), tree_hashes(&dir.join(&name)));
}

#[test]
fn a_full_remote_disk_fails_cleanly_on_either_connection() {
    push_onto_a_full_disk_fails_cleanly(72, "24m");
}
