//! `remote_service` end to end: the built binary, the recipe in
//! fixtures/remote/ (a file and the agents that must be restarted when it
//! changes) and real OpenSSH servers posing as storage servers
//! (src/sandbox/agents.rs). Only loopback addresses; nothing is timed.

use crate::support;

use std::path::PathBuf;

use support::cli::{fixtures, Output};
use support::host::Host;
use support::sshd::{fleet, Agents};
use support::world::World;
use tempfile::TempDir;

const SETTINGS: &str = "etc/chroma/agent-settings.conf";
const ADDRESS: &str = "remote_service.chroma_agent";
const TABLE_HEADER: &str = "result  seconds  last line of output";

/// The shared test world on a manager root with the fixture file and root's
/// SSH client set up for a fleet, a bundle of it, and the variables pointing
/// the recipe at the fleet.
struct Rig {
    // The root and bundles the world points at (removed when the rig goes).
    _site: Host,
    world: World,
    // Last: the fleet stops before its temp dir goes.
    agents: Agents,
    _fleet_dir: TempDir,
}

/// Settings of the fixture recipe's variables besides the fleet's.
#[derive(Default)]
struct Knobs<'a> {
    optional: bool,
    parallelism: Option<usize>,
    timeout: Option<&'a str>,
    check: Option<&'a str>,
    /// Listed after the fleet's hosts (addresses no fleet member has).
    extra_hosts: &'a [&'a str],
}

impl Rig {
    fn new(hosts: usize) -> Rig {
        Rig::with(hosts, Knobs::default())
    }

    fn with(hosts: usize, knobs: Knobs) -> Rig {
        let (fleet_dir, agents) = fleet(hosts);
        let host = Host::of("remote/root");
        agents
            .install_client(&host.root)
            .expect("install the client key");
        let vars = host.tmp.path().join("vars.hcl");
        let list: Vec<String> = agents
            .hosts()
            .iter()
            .map(String::as_str)
            .chain(knobs.extra_hosts.iter().copied())
            .map(|h| format!("{h:?}"))
            .collect();
        let mut text = format!(
            "agents = [{}]\nssh_port = {}\noptional = {}\n",
            list.join(", "),
            agents.port(),
            knobs.optional
        );
        if let Some(p) = knobs.parallelism {
            text.push_str(&format!("parallelism = {p}\n"));
        }
        if let Some(t) = knobs.timeout {
            text.push_str(&format!("timeout = {t:?}\n"));
        }
        if let Some(c) = knobs.check {
            text.push_str(&format!("check = {c:?}\n"));
        }
        std::fs::write(&vars, text).expect("write vars");
        let rig = Rig {
            world: host.world(recipe(), vec!["--var-file".into(), vars.into()]),
            _site: host,
            agents,
            _fleet_dir: fleet_dir,
        };
        rig.world.backup();
        assert_eq!(
            rig.agents.restart_counts(),
            vec![0; hosts],
            "backup never touches the agents"
        );
        rig
    }

    /// `CMD -r RECIPE --root ROOT --bundle BUNDLE --var-file VARS EXTRA...`
    fn run(&self, cmd: &str, extra: &[&str]) -> Output {
        self.world.cmd(cmd).args(extra).run()
    }

    fn plan(&self, extra: &[&str]) -> Output {
        let mut args = vec!["--detailed-exitcode"];
        args.extend_from_slice(extra);
        self.run("plan", &args)
    }

    fn apply(&self, extra: &[&str]) -> Output {
        let mut args = vec!["--auto-approve"];
        args.extend_from_slice(extra);
        self.run("apply", &args)
    }

    /// Changes the file the agents depend on (drift: the bundle has the old).
    fn drift(&self) {
        std::fs::write(
            self.world.root.join(SETTINGS),
            "SERVER_URL=https://wrong.example/\n",
        )
        .expect("drift");
    }

    fn host(&self, i: usize) -> String {
        self.agents.hosts()[i].clone()
    }

    fn fingerprint(&self, i: usize) -> String {
        self.agents.host_key_fingerprint(i).expect("fingerprint")
    }

    fn known_hosts(&self) -> PathBuf {
        self.world.root.join("root/.ssh/known_hosts")
    }

    /// Rewrites root's known_hosts with `f` applied to each line.
    fn edit_known_hosts(&self, f: impl Fn(&str) -> Option<String>) {
        let text = std::fs::read_to_string(self.known_hosts()).expect("read known_hosts");
        let out: String = text.lines().filter_map(f).map(|l| l + "\n").collect();
        std::fs::write(self.known_hosts(), out).expect("write known_hosts");
    }
}

fn recipe() -> PathBuf {
    fixtures().join("remote/remote.hcl")
}

/// The lines of the per-host table for `host` (`HOST  ok ...`).
fn table_row<'a>(out: &'a str, host: &str) -> Vec<&'a str> {
    out.lines()
        .map(str::trim)
        .filter(|l| l.split_whitespace().next() == Some(host))
        .collect()
}

fn assert_counts(rig: &Rig, want: &[usize]) {
    assert_eq!(rig.agents.restart_counts(), want, "restarts per host");
}

#[test]
fn plan_lists_every_host_with_its_verified_key_and_runs_nothing() {
    let rig = Rig::new(3);

    // A clean host: nothing to do, nothing done, and still every host
    // listed with whether it is reachable with a verified key.
    let clean = rig.plan(&[]);
    clean
        .code(0)
        .stdout_has("No changes. The host matches the recipe.")
        .stdout_has("remote_service.chroma_agent (no action: nothing it depends on changes)");
    for i in 0..3 {
        clean.stdout_has(&format!(
            "{}: reachable, host key verified (ssh-ed25519 {})",
            rig.host(i),
            rig.fingerprint(i)
        ));
    }

    rig.drift();
    let plan = rig.plan(&[]);
    plan.code(2)
        .stdout_has("! remote_service.chroma_agent (run: restart chroma-agent on 3 hosts because file.agent_settings changed)");
    for i in 0..3 {
        plan.stdout_has(&format!(
            "{}: reachable, host key verified (ssh-ed25519 {})",
            rig.host(i),
            rig.fingerprint(i)
        ));
    }

    let json = rig.plan(&["--json"]);
    json.code(2);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("plan --json");
    let change = v["resource_changes"]
        .as_array()
        .expect("resource_changes")
        .iter()
        .find(|c| c["address"] == ADDRESS)
        .expect("the remote_service is in the plan");
    let seen = change["before"]["hosts"].as_array().expect("before.hosts");
    assert_eq!(seen.len(), 3);
    for (i, h) in seen.iter().enumerate() {
        assert_eq!(h["host"], rig.host(i).as_str());
        assert_eq!(h["reachable"], true);
        assert_eq!(h["status"], "ready");
    }

    // Planning connected to every host and ran nothing on any of them.
    for i in 0..3 {
        assert_eq!(rig.agents.actions(i), Vec::<String>::new(), "host {i}");
        assert!(rig
            .agents
            .host(i)
            .expect("host")
            .log()
            .contains("Accepted publickey for root"));
    }
}

#[test]
fn a_changed_file_restarts_every_agent_exactly_once() {
    let rig = Rig::new(3);
    rig.drift();

    let apply = rig.apply(&[]);
    apply
        .code(0)
        .stdout_has("remote remote_service.chroma_agent: restart chroma-agent on 3 of 3 hosts")
        .stdout_has(TABLE_HEADER)
        .stdout_has("Apply complete!");
    assert_counts(&rig, &[1, 1, 1]);
    for i in 0..3 {
        // The row names the host, says ok and ends with the check's output.
        let rows = table_row(&apply.stdout, &rig.host(i));
        assert_eq!(rows.len(), 1, "{}", apply.stdout);
        let cols: Vec<&str> = rows[0].split_whitespace().collect();
        assert_eq!(cols[1], "ok", "{}", rows[0]);
        assert!(
            cols[2].parse::<f64>().is_ok(),
            "seconds column: {}",
            rows[0]
        );
        assert!(
            rows[0].ends_with(&format!("chroma-agent is running on oss{}", i + 1)),
            "{}",
            rows[0]
        );
        // The agent's own log: one restart, then the check.
        assert_eq!(
            rig.agents.actions(i),
            vec![format!("restart oss{}", i + 1)],
            "host {i}"
        );
    }

    // The host is restored: planning and applying again leave the agents alone.
    rig.plan(&[]).code(0).stdout_has("No changes.");
    rig.apply(&[]).code(0);
    assert_counts(&rig, &[1, 1, 1]);
}

#[test]
fn replace_forces_the_restart_and_a_clean_apply_does_not() {
    let rig = Rig::new(2);

    rig.apply(&[]).code(0);
    assert_counts(&rig, &[0, 0]);

    rig.plan(&["--replace", ADDRESS])
        .code(2)
        .stdout_has("restart chroma-agent on 2 hosts because of --replace");
    assert_counts(&rig, &[0, 0]);

    rig.apply(&["--replace", ADDRESS])
        .code(0)
        .stdout_has("restart chroma-agent on 2 of 2 hosts");
    assert_counts(&rig, &[1, 1]);
}

#[test]
fn wrong_and_unknown_host_keys_fail_only_those_hosts_with_their_fingerprints() {
    let rig = Rig::new(3);
    let (h1, h2) = (rig.host(1), rig.host(2));
    // Host 1's entry now pins another key (host 0's); host 2 has no entry.
    let impostor = rig
        .agents
        .host(0)
        .expect("host")
        .host_key_fields()
        .to_string();
    rig.edit_known_hosts(|line| {
        if line.starts_with(&format!("[{h1}]:")) {
            Some(format!("[{h1}]:{} {impostor}", rig.agents.port()))
        } else if line.starts_with(&format!("[{h2}]:")) {
            None
        } else {
            Some(line.to_string())
        }
    });
    rig.drift();

    let plan = rig.plan(&[]);
    plan.code(2)
        .stdout_has(&format!(
            "{h1}: HOST KEY REFUSED: HOST KEY MISMATCH for {h1}:"
        ))
        .stdout_has(&format!("{h2}: HOST KEY REFUSED: host key of {h2}:"))
        .stdout_has(&format!(
            "2 of 3 hosts not ready: {h1}, {h2} (apply will fail on them)"
        ))
        .stdout_has(&rig.fingerprint(1))
        .stdout_has(&rig.fingerprint(2));

    let apply = rig.apply(&[]);
    apply.code(1);
    let all = format!("{}{}", apply.stdout, apply.stderr);
    for needle in [
        format!("restart chroma-agent failed on 2 of 3 hosts: {h1}, {h2}"),
        format!("HOST KEY MISMATCH for {h1}:{}", rig.agents.port()),
        format!("host key of {h2}:{} is not known", rig.agents.port()),
        rig.fingerprint(1),
        rig.fingerprint(2),
    ] {
        assert!(all.contains(&needle), "missing {needle:?} in:\n{all}");
    }
    // The good host was restarted; the refused ones never saw a credential.
    assert_counts(&rig, &[1, 0, 0]);
    for i in [1, 2] {
        let log = rig.agents.host(i).expect("host").log();
        assert!(!log.contains("Accepted publickey"), "host {i}:\n{log}");
    }
}

#[test]
fn a_stopped_sshd_and_a_failing_agent_fail_the_apply_naming_them() {
    let mut rig = Rig::new(3);
    rig.agents.stop_one(1);
    rig.agents
        .set_agent_failing(2, Some("cannot reach the manager"))
        .expect("break the agent");
    let (h1, h2) = (rig.host(1), rig.host(2));
    rig.drift();

    rig.plan(&[])
        .code(2)
        .stdout_has(&format!(
            "{h1}: UNREACHABLE: connection to {h1}:{} refused",
            rig.agents.port()
        ))
        // Planning cannot know that an agent will fail: host 2 is ready.
        .stdout_has(&format!("{h2}: reachable, host key verified"));

    let apply = rig.apply(&[]);
    apply.code(1);
    let all = format!("{}{}", apply.stdout, apply.stderr);
    for needle in [
        format!("restart chroma-agent failed on 2 of 3 hosts: {h1}, {h2}"),
        format!("connection to {h1}:{} refused", rig.agents.port()),
        "`service chroma-agent restart` exited with status 1: chroma-agent: restart failed: cannot reach the manager"
            .to_string(),
        "make the resource `optional = true`".to_string(),
    ] {
        assert!(all.contains(&needle), "missing {needle:?} in:\n{all}");
    }
    assert_counts(&rig, &[1, 0, 0]);
    assert_eq!(
        rig.agents.actions(2),
        vec!["restart-failed oss3".to_string()]
    );
}

#[test]
fn optional_agents_turn_failures_into_warnings() {
    let mut rig = Rig::with(
        3,
        Knobs {
            optional: true,
            ..Knobs::default()
        },
    );
    rig.agents.stop_one(0);
    rig.agents
        .set_agent_failing(2, Some("disk full"))
        .expect("break the agent");
    let (h0, h2) = (rig.host(0), rig.host(2));
    rig.drift();

    rig.plan(&[]).code(2).stdout_has(&format!(
        "1 of 3 hosts not ready: {h0} (optional: apply warns and goes on)"
    ));

    let apply = rig.apply(&[]);
    apply
        .code(0)
        .stdout_has("restart chroma-agent on 1 of 3 hosts")
        .stdout_has(&format!(
            "Warning: restart chroma-agent failed on 2 of 3 hosts: {h0}, {h2} (optional: apply goes on"
        ))
        .stdout_has("Apply complete!");
    let row = |i: usize| table_row(&apply.stdout, &rig.host(i)).join("\n");
    assert!(
        row(0).contains("FAILED") && row(0).contains("refused"),
        "{}",
        apply.stdout
    );
    assert!(row(1).contains(" ok "), "{}", apply.stdout);
    assert!(
        row(2).contains("FAILED") && row(2).contains("disk full"),
        "{}",
        apply.stdout
    );
    assert_counts(&rig, &[0, 1, 0]);
}

#[test]
fn a_hanging_check_fails_that_host_within_its_timeout() {
    let rig = Rig::with(
        3,
        Knobs {
            timeout: Some("6s"),
            // Only oss2 hangs; the others answer at once.
            check: Some(
                r#"if [ "$(hostname)" = oss2 ]; then echo waiting; sleep 60; fi; service chroma-agent status"#,
            ),
            ..Knobs::default()
        },
    );
    let h1 = rig.host(1);
    rig.drift();

    let apply = rig.apply(&[]);
    apply.code(1);
    let all = format!("{}{}", apply.stdout, apply.stderr);
    for needle in [
        format!("restart chroma-agent failed on 1 of 3 hosts: {h1}"),
        "did not finish within the 6s timeout (it may still be running there); last output: waiting".to_string(),
    ] {
        assert!(all.contains(&needle), "missing {needle:?} in:\n{all}");
    }
    // The action itself ran everywhere; only the check hung.
    assert_counts(&rig, &[1, 1, 1]);
}

#[test]
fn thirty_two_hosts_at_parallelism_32_are_each_restarted_once() {
    let rig = Rig::with(
        32,
        Knobs {
            parallelism: Some(32),
            ..Knobs::default()
        },
    );
    rig.drift();
    rig.apply(&[])
        .code(0)
        .stdout_has("restart chroma-agent on 32 of 32 hosts");
    assert_counts(&rig, &[1; 32]);
    for i in 0..32 {
        assert_eq!(rig.agents.actions(i), vec![format!("restart oss{}", i + 1)]);
    }
}

#[test]
fn a_host_that_accepts_and_never_speaks_fails_on_its_own() {
    // A listener that never accepts, on the fleet's port and an address no
    // fleet uses: the kernel completes the TCP handshake (backlog), but no
    // SSH server ever sends a banner.
    let silent_ip = "127.0.0.254";
    let rig = Rig::with(
        2,
        Knobs {
            timeout: Some("6s"),
            extra_hosts: &[silent_ip],
            ..Knobs::default()
        },
    );
    let _silent = std::net::TcpListener::bind((silent_ip, rig.agents.port()))
        .expect("bind a silent listener");
    let silent = format!("{silent_ip}:{}", rig.agents.port());
    rig.drift();

    rig.plan(&[]).code(2).stdout_has(&format!(
        "{silent_ip}: UNREACHABLE: SSH handshake with {silent} timed out after 2s"
    ));

    let apply = rig.apply(&[]);
    apply.code(1);
    let all = format!("{}{}", apply.stdout, apply.stderr);
    for needle in [
        format!("restart chroma-agent failed on 1 of 3 hosts: {silent_ip}"),
        format!("SSH handshake with {silent} timed out after 2s"),
    ] {
        assert!(all.contains(&needle), "missing {needle:?} in:\n{all}");
    }
    assert_counts(&rig, &[1, 1]);
}

#[test]
fn a_key_the_hosts_do_not_accept_fails_every_host_naming_the_key() {
    let rig = Rig::with(
        2,
        Knobs {
            optional: true,
            ..Knobs::default()
        },
    );
    // root's key on the manager is not the one the storage servers trust.
    let other = tempfile::tempdir().expect("tempdir");
    let key =
        imlrecover::sandbox::agents::keygen(other.path(), "id_rsa", "ed25519", "").expect("keygen");
    std::fs::copy(&key, rig.world.root.join("root/.ssh/id_rsa")).expect("replace the key");
    rig.drift();

    let plan = rig.plan(&[]);
    plan.code(2);
    for i in 0..2 {
        plan.stdout_has(&format!(
            "{}: AUTHENTICATION FAILED: authentication as `root` on {}:{} failed",
            rig.host(i),
            rig.host(i),
            rig.agents.port()
        ));
    }

    // optional: warnings, exit 0, and nothing restarted.
    let apply = rig.apply(&[]);
    apply
        .code(0)
        .stdout_has(&format!(
            "Warning: restart chroma-agent failed on 2 of 2 hosts: {}, {}",
            rig.host(0),
            rig.host(1)
        ))
        .stdout_has(&format!(
            "{} (rejected: ",
            rig.world.root.join("root/.ssh/id_rsa").display()
        ));
    assert_counts(&rig, &[0, 0]);
}
