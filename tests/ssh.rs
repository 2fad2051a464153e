//! The SSH boundary against real OpenSSH servers (see tests/support/sshd.rs):
//! host key verification, authentication, remote commands, fan-out.

use crate::support;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use imlrecover::host::ssh::{
    self, connect, fan_out, run_on_all, Progress, SshError, MAX_OUTPUT_BYTES,
};
use support::sshd::{append_line, Agent, ClientKey, FakeHost};
use tempfile::TempDir;

const T: Duration = Duration::from_secs(20);

fn known_hosts_for(hosts: &[&FakeHost]) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("known_hosts");
    for h in hosts {
        h.add_to_known_hosts(&path);
    }
    (dir, path)
}

fn connect_err(target: &ssh::SshTarget) -> SshError {
    match connect(target) {
        Ok(c) => panic!(
            "connecting to {} should have failed (host key {})",
            c.endpoint(),
            c.host_key_fingerprint()
        ),
        Err(e) => e,
    }
}

fn endpoint(h: &FakeHost) -> String {
    format!("{}:{}", h.ip(), h.port())
}

#[test]
fn runs_a_command_on_the_right_host_with_stdout_and_stderr_merged() {
    let key = ClientKey::generate();
    let host = FakeHost::start(&key);
    let (_d, kh) = known_hosts_for(&[&host]);

    let conn = connect(&host.target(&key, &kh)).expect("connect");
    assert_eq!(conn.host_key_fingerprint(), host.host_key_fingerprint());
    let out = conn
        .run("echo to-stdout; echo to-stderr >&2; hostname", T)
        .expect("run");
    assert!(out.success());
    assert_eq!(out.exit_status, 0);
    // Both streams arrive; SSH carries them separately, so only the order
    // within each stream is defined.
    let mut lines: Vec<&str> = out.output.lines().collect();
    lines.sort();
    let mut want = vec!["to-stdout", "to-stderr", host.hostname()];
    want.sort();
    assert_eq!(lines, want, "{out:?}");
    assert!(out.output.find("to-stdout") < out.output.find(host.hostname()));
    assert!(!out.output_truncated);

    // The same connection runs further commands.
    let again = conn.run("echo second", T).expect("second run");
    assert_eq!(again.output, "second\n");
}

#[test]
fn service_restart_runs_that_hosts_own_init_script_exactly_once() {
    let key = ClientKey::generate();
    let host = FakeHost::start(&key);
    let (_d, kh) = known_hosts_for(&[&host]);

    let conn = connect(&host.target(&key, &kh)).expect("connect");
    let out = conn.run("service chroma-agent restart", T).expect("run");
    assert!(out.success(), "{out:?}");
    assert!(out.output.contains("chroma-agent: restart done"), "{out:?}");
    assert_eq!(host.actions(), vec![format!("restart {}", host.hostname())]);
}

#[test]
fn a_command_flooding_stderr_does_not_deadlock_and_output_is_capped() {
    let key = ClientKey::generate();
    let host = FakeHost::start(&key);
    let (_d, kh) = known_hosts_for(&[&host]);

    let conn = connect(&host.target(&key, &kh)).expect("connect");
    // 3 MB on stderr is more than libssh2's 2 MiB channel window.
    let out = conn
        .run(
            "head -c 3000000 /dev/zero | tr '\\0' e >&2; echo finished; exit 4",
            T,
        )
        .expect("run");
    assert_eq!(out.exit_status, 4);
    assert!(out.output_truncated);
    assert_eq!(out.output.len(), MAX_OUTPUT_BYTES);
    assert!(out.output.bytes().all(|b| b == b'e'));
}

#[test]
fn a_failing_command_reports_its_exit_status_and_signal() {
    let key = ClientKey::generate();
    let host = FakeHost::start(&key);
    let (_d, kh) = known_hosts_for(&[&host]);

    let conn = connect(&host.target(&key, &kh)).expect("connect");
    let out = conn
        .run("echo 'chroma-agent: unrecognized service' >&2; exit 3", T)
        .expect("run");
    assert_eq!(out.exit_status, 3);
    assert!(!out.success());
    assert_eq!(out.output, "chroma-agent: unrecognized service\n");

    let out = conn.run("kill -TERM $$", T).expect("run");
    assert_eq!(out.exit_signal.as_deref(), Some("TERM"));
    assert!(!out.success());
}

#[test]
fn a_hanging_command_becomes_a_timeout_error() {
    let key = ClientKey::generate();
    let host = FakeHost::start(&key);
    let (_d, kh) = known_hosts_for(&[&host]);

    let conn = connect(&host.target(&key, &kh)).expect("connect");
    let err = conn
        .run("echo started; sleep 30", Duration::from_secs(2))
        .expect_err("sleep 30 must not finish within 2 s");
    match &err {
        SshError::CommandTimeout {
            partial_output,
            command,
            ..
        } => {
            assert_eq!(partial_output, "started\n");
            assert_eq!(command, "echo started; sleep 30");
        }
        other => panic!("expected a command timeout, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&endpoint(&host)) && msg.contains("2s"),
        "{msg}"
    );
}

#[test]
fn a_mismatched_host_key_is_refused_before_any_credential_is_offered() {
    let key = ClientKey::generate();
    let host = FakeHost::start(&key);
    let impostor_key = ClientKey::generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let kh = dir.path().join("known_hosts");
    // The file pins another key for this host and port.
    append_line(&kh, "# fleet keys");
    append_line(
        &kh,
        &format!(
            "[{}]:{} {}",
            host.ip(),
            host.port(),
            impostor_key.key_fields()
        ),
    );

    let err = connect_err(&host.target(&key, &kh));
    assert!(matches!(err, SshError::HostKeyMismatch { .. }), "{err:?}");
    let msg = err.to_string();
    for needle in [
        host.host_key_fingerprint(),
        endpoint(&host),
        kh.display().to_string(),
        "line 2".to_string(),
        format!(
            "ssh-keygen -R '[{}]:{}' -f {}",
            host.ip(),
            host.port(),
            kh.display()
        ),
        format!(
            "ssh-keyscan -p {} {} >> {}",
            host.port(),
            host.ip(),
            kh.display()
        ),
    ] {
        assert!(msg.contains(&needle), "missing {needle:?} in: {msg}");
    }
    assert!(!host.log().contains("Accepted publickey"), "{}", host.log());
}

#[test]
fn an_unknown_host_is_refused_and_the_suggested_keyscan_fixes_it() {
    let key = ClientKey::generate();
    let host = FakeHost::start(&key);
    let dir = tempfile::tempdir().expect("tempdir");
    let kh = dir.path().join("known_hosts"); // does not exist yet
    let target = host.target(&key, &kh);

    let err = connect_err(&target);
    assert!(matches!(err, SshError::UnknownHostKey { .. }), "{err:?}");
    let msg = err.to_string();
    let keyscan = format!(
        "ssh-keyscan -p {} {} >> {}",
        host.port(),
        host.ip(),
        kh.display()
    );
    for needle in [
        host.host_key_fingerprint(),
        endpoint(&host),
        "does not exist".to_string(),
        keyscan.clone(),
    ] {
        assert!(msg.contains(&needle), "missing {needle:?} in: {msg}");
    }

    // Following the advice verbatim makes the host known.
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{keyscan} 2>/dev/null"))
        .status()
        .expect("run ssh-keyscan");
    assert!(status.success());
    let conn = connect(&target).expect("connect after ssh-keyscan");
    assert_eq!(
        conn.run("hostname", T).expect("run").output.trim(),
        host.hostname()
    );
}

#[test]
fn a_portless_entry_does_not_vouch_for_another_port() {
    let key = ClientKey::generate();
    let host = FakeHost::start(&key);
    let dir = tempfile::tempdir().expect("tempdir");
    let kh = dir.path().join("known_hosts");
    // Right key, but recorded for port 22 only (what `ssh-keyscan HOST` writes).
    append_line(&kh, &format!("{} {}", host.ip(), host.host_key_fields()));

    let err = connect_err(&host.target(&key, &kh));
    assert!(matches!(err, SshError::UnknownHostKey { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("line 1 names this host without a port"),
        "{msg}"
    );
    assert!(msg.contains(&host.host_key_fingerprint()), "{msg}");
}

#[test]
fn a_hashed_known_hosts_entry_is_accepted() {
    let key = ClientKey::generate();
    let host = FakeHost::start(&key);
    let other = ClientKey::generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let kh = dir.path().join("known_hosts");
    append_line(&kh, &format!("oss99.example {}", other.key_fields()));
    host.add_to_known_hosts(&kh);
    // Hash it with OpenSSH's own tool (HashKnownHosts format).
    let status = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&kh)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("ssh-keygen -H");
    assert!(status.success());
    let text = std::fs::read_to_string(&kh).expect("read known_hosts");
    assert!(
        !text.contains(&host.ip()) && text.starts_with("|1|"),
        "{text}"
    );

    let conn = connect(&host.target(&key, &kh)).expect("connect with hashed entry");
    assert_eq!(conn.host_key_fingerprint(), host.host_key_fingerprint());
}

#[test]
fn a_bracketed_host_port_entry_among_others_is_accepted() {
    let key = ClientKey::generate();
    let host = FakeHost::start(&key);
    let other = ClientKey::generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let kh = dir.path().join("known_hosts");
    append_line(&kh, "# managed by imlrecover tests");
    append_line(&kh, &format!("mds1,oss1 {}", other.key_fields()));
    append_line(
        &kh,
        &format!(
            "oss7.lustre,[{}]:{} {}",
            host.ip(),
            host.port(),
            host.host_key_fields()
        ),
    );

    let conn = connect(&host.target(&key, &kh)).expect("connect");
    assert!(conn.run("true", T).expect("run").success());
    assert!(
        host.log().contains("Accepted publickey for root"),
        "{}",
        host.log()
    );
}

#[test]
fn a_host_with_several_keys_presents_the_one_known_hosts_records() {
    let key = ClientKey::generate();
    let host = FakeHost::builder()
        .authorize(&key)
        .extra_host_key("ecdsa")
        .extra_host_key("rsa")
        .start();
    // Older fleets often only have the RSA key recorded.
    for (kind, algo) in [("rsa", "ssh-rsa"), ("ecdsa", "ecdsa-sha2-nistp256")] {
        let dir = tempfile::tempdir().expect("tempdir");
        let kh = dir.path().join("known_hosts");
        append_line(
            &kh,
            &format!(
                "[{}]:{} {}",
                host.ip(),
                host.port(),
                host.extra_host_key_fields(kind)
            ),
        );
        let conn = connect(&host.target(&key, &kh))
            .unwrap_or_else(|e| panic!("with only the {kind} key recorded: {e}"));
        assert_eq!(conn.host_key_type(), algo);
    }
}

#[test]
fn a_stopped_sshd_is_connection_refused() {
    let key = ClientKey::generate();
    let mut host = FakeHost::start(&key);
    let (_d, kh) = known_hosts_for(&[&host]);
    host.stop();

    let err = connect_err(&host.target(&key, &kh));
    assert!(matches!(err, SshError::Refused { .. }), "{err:?}");
    assert!(err.to_string().contains(&endpoint(&host)), "{err}");
}

#[test]
fn a_silent_server_is_a_handshake_timeout_not_a_hang() {
    // Accepts TCP connections and never says anything.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let holder = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
    let key = ClientKey::generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let target = ssh::SshTarget::new("127.0.0.1", "root", dir.path().join("known_hosts"))
        .with_port(port)
        .with_identity_file(&key.private)
        .with_agent_socket(None)
        .with_connect_timeout(Duration::from_secs(1));

    let err = connect_err(&target);
    assert!(matches!(err, SshError::HandshakeTimeout { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    drop(holder.join());
}

#[test]
fn a_key_the_server_does_not_accept_is_an_auth_failure_naming_what_was_tried() {
    let authorized = ClientKey::generate();
    let wrong = ClientKey::generate();
    let host = FakeHost::start(&authorized);
    let (_d, kh) = known_hosts_for(&[&host]);

    let err = connect_err(&host.target(&wrong, &kh));
    assert!(matches!(err, SshError::Auth { .. }), "{err:?}");
    let msg = err.to_string();
    for needle in [
        "`root`".to_string(),
        endpoint(&host),
        wrong.private.display().to_string(),
    ] {
        assert!(msg.contains(&needle), "missing {needle:?} in: {msg}");
    }
}

#[test]
fn an_encrypted_identity_file_needs_its_passphrase() {
    let key = ClientKey::with_passphrase("correct horse");
    let host = FakeHost::start(&key);
    let (_d, kh) = known_hosts_for(&[&host]);

    let err = connect_err(&host.target(&key, &kh).with_passphrase("wrong"));
    assert!(matches!(err, SshError::Auth { .. }), "{err:?}");
    assert!(err.to_string().contains("with passphrase"), "{err}");

    let conn = connect(&host.target(&key, &kh).with_passphrase("correct horse")).expect("connect");
    assert!(conn.run("true", T).expect("run").success());
}

#[test]
fn ssh_agent_is_tried_first_and_the_identity_file_is_the_fallback() {
    let authorized = ClientKey::generate();
    let other = ClientKey::generate();
    let host = FakeHost::start(&authorized);
    let (_d, kh) = known_hosts_for(&[&host]);

    // The agent alone is enough.
    let agent = Agent::start(&[&authorized]);
    let mut target = host
        .target(&authorized, &kh)
        .with_agent_socket(Some(agent.socket.clone()));
    target.identity_file = None;
    let conn = connect(&target).expect("connect with the agent only");
    assert!(conn.run("true", T).expect("run").success());

    // An agent without the right key falls through to the identity file.
    let wrong_agent = Agent::start(&[&other]);
    let target = host
        .target(&authorized, &kh)
        .with_agent_socket(Some(wrong_agent.socket.clone()));
    connect(&target).expect("connect via identity file after the agent failed");

    // Neither works: the error lists both attempts.
    let mut target = host
        .target(&other, &kh)
        .with_agent_socket(Some(wrong_agent.socket.clone()));
    target.identity_file = Some(other.private.clone());
    let msg = connect_err(&target).to_string();
    assert!(
        msg.contains("ssh-agent at") && msg.contains("none accepted"),
        "{msg}"
    );
    assert!(msg.contains(&other.private.display().to_string()), "{msg}");
}

#[test]
fn fan_out_restarts_every_agent_once_and_reports_per_host_in_order() {
    let key = ClientKey::generate();
    let mut hosts: Vec<FakeHost> = (0..9).map(|_| FakeHost::start(&key)).collect();
    let refs: Vec<&FakeHost> = hosts.iter().collect();
    let (_d, kh) = known_hosts_for(&refs);
    // One server of the fleet is down.
    hosts[5].stop();
    let targets: Vec<_> = hosts.iter().map(|h| h.target(&key, &kh)).collect();

    let mut reports: Vec<Progress> = Vec::new();
    let results = run_on_all(
        &targets,
        "hostname; service chroma-agent restart",
        T,
        4,
        |p| reports.push(p),
    );

    assert_eq!(results.len(), 9);
    for (i, (host, result)) in hosts.iter().zip(&results).enumerate() {
        if i == 5 {
            let err = result.as_ref().expect_err("host 5 is down");
            assert!(matches!(err, SshError::Refused { .. }), "{err:?}");
            assert_eq!(err.endpoint(), endpoint(host));
            assert_eq!(host.restart_count(), 0);
        } else {
            let out = result.as_ref().unwrap_or_else(|e| panic!("host {i}: {e}"));
            assert!(out.success(), "host {i}: {out:?}");
            assert!(
                out.output.starts_with(&format!("{}\n", host.hostname())),
                "host {i}: {out:?}"
            );
            assert_eq!(host.actions(), vec![format!("restart {}", host.hostname())]);
        }
    }
    let last = reports.last().copied().expect("progress was reported");
    assert_eq!(
        (last.done, last.failed, last.pending, last.total),
        (8, 1, 0, 9)
    );
    assert_eq!(reports.len(), 10);
}

#[test]
fn fan_out_handles_256_connections_with_bounded_parallelism() {
    let key = ClientKey::generate();
    let hosts: Vec<FakeHost> = (0..8).map(|_| FakeHost::start(&key)).collect();
    let refs: Vec<&FakeHost> = hosts.iter().collect();
    let (_d, kh) = known_hosts_for(&refs);
    let targets: Vec<_> = (0..256).map(|i| hosts[i % 8].target(&key, &kh)).collect();
    let jobs: Vec<usize> = (0..256).collect();

    // Each job opens its own connection and closes it when done, so at most
    // 32 sockets and threads are in use at any time.
    let results = fan_out(&jobs, 32, |&i| {
        connect(&targets[i])?.run(&format!("echo job-{i}; hostname"), T)
    });

    assert_eq!(results.len(), 256);
    for (i, r) in results.iter().enumerate() {
        let out = r.as_ref().unwrap_or_else(|e| panic!("job {i}: {e}"));
        assert_eq!(
            out.output,
            format!("job-{i}\n{}\n", hosts[i % 8].hostname())
        );
    }
}
