//! Spawning PostgreSQL's own programs: finding them, switching to the
//! database's OS user, capturing output without deadlocks, killing them.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, BufRead, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use super::error::{hint_for, PgError, Result};
use super::PgTarget;

/// Environment variable naming the directory that holds psql, pg_dumpall, …
pub const ENV_BINDIR: &str = "IMLRECOVER_PG_BINDIR";

/// How many stderr lines an error message quotes.
pub(crate) const TAIL_LINES: usize = 20;
/// Longest stderr line kept (a failed statement can be echoed whole).
pub(crate) const TAIL_LINE_CAP: usize = 1000;

/// Locates `program`: `bin_dir`, else `$IMLRECOVER_PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/*/bin` (Debian) or `/usr/pgsql-*/bin` (PGDG RPMs),
/// else `$PATH`. An explicitly configured directory is never second-guessed.
pub fn find_program(bin_dir: Option<&Path>, program: &str) -> Result<PathBuf> {
    let not_found = |searched: String| PgError::ProgramNotFound {
        program: program.to_string(),
        searched,
    };
    if let Some(dir) = bin_dir {
        let p = dir.join(program);
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(not_found(format!("{} (bin_dir)", dir.display())))
        };
    }
    if let Some(dir) = std::env::var_os(ENV_BINDIR).filter(|d| !d.is_empty()) {
        let p = Path::new(&dir).join(program);
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(not_found(format!("{} (${ENV_BINDIR})", p.display())))
        };
    }
    for dir in versioned_bin_dirs() {
        let p = dir.join(program);
        if is_executable(&p) {
            return Ok(p);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(program);
            if is_executable(&p) {
                return Ok(p);
            }
        }
    }
    Err(not_found(
        "/usr/lib/postgresql/*/bin, /usr/pgsql-*/bin, $PATH".into(),
    ))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// `/usr/lib/postgresql/<ver>/bin` and `/usr/pgsql-<ver>/bin`, newest first.
fn versioned_bin_dirs() -> Vec<PathBuf> {
    let mut found: Vec<(Vec<u64>, PathBuf)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/usr/lib/postgresql") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            found.push((version_key(&name), e.path().join("bin")));
        }
    }
    if let Ok(rd) = std::fs::read_dir("/usr") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(v) = name.strip_prefix("pgsql-") {
                found.push((version_key(v), e.path().join("bin")));
            }
        }
    }
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, p)| p).collect()
}

fn version_key(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// The user name of the effective uid, if it has one.
pub(crate) fn current_user_name() -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
}

impl PgTarget {
    /// The OS user to switch to: only when it differs from ours and we are
    /// root (anyone else cannot switch, and the server will say so).
    pub(crate) fn effective_run_as(&self) -> Option<&str> {
        let user = self.run_as.as_deref()?;
        if !nix::unistd::geteuid().is_root() {
            return None;
        }
        if current_user_name().as_deref() == Some(user) {
            return None;
        }
        Some(user)
    }

    /// A command running PostgreSQL's `program` against this target, as the
    /// configured OS user, with `-h/-p/-U` already set for client programs.
    pub(crate) fn client(&self, program: &str) -> Result<Command> {
        let mut cmd = self.raw_command(program)?;
        if let Some(h) = &self.host {
            cmd.arg("-h").arg(h);
        }
        if let Some(p) = self.port {
            cmd.arg("-p").arg(p.to_string());
        }
        cmd.arg("-U").arg(&self.superuser);
        Ok(cmd)
    }

    /// Like [`client`](Self::client) without connection arguments.
    pub(crate) fn raw_command(&self, program: &str) -> Result<Command> {
        let bin = find_program(self.bin_dir.as_deref(), program)?;
        let user = match self.effective_run_as() {
            Some(name) => Some(
                OsUser::lookup(name).map_err(|e| spawn_error(&program_name_of(&bin), self, e))?,
            ),
            None => None,
        };
        Ok(os_user_command(user.as_ref(), &bin))
    }

    pub(crate) fn user_hint(&self) -> String {
        match self.effective_run_as() {
            Some(u) => format!(
                " and that OS user \"{u}\" exists (imlrecover runs PostgreSQL's programs as that user; set `run_as` in the recipe to change it)"
            ),
            None => String::new(),
        }
    }
}

/// `application_name` of our own sessions, as pg_stat_activity shows them.
pub(crate) const OUR_APP: &str = "imlrecover";

/// An OS user a program runs as: what `runuser -u USER` would set up
/// (uid, primary and supplementary groups, HOME/USER/LOGNAME), looked up
/// once, switched to in the child between fork and exec. Cheaper than a
/// `runuser` process (and its PAM session) per psql call.
#[derive(Debug, Clone)]
pub(crate) struct OsUser {
    name: String,
    pub(crate) uid: nix::unistd::Uid,
    pub(crate) gid: nix::unistd::Gid,
    groups: Vec<nix::unistd::Gid>,
    home: PathBuf,
}

impl OsUser {
    pub(crate) fn lookup(name: &str) -> io::Result<OsUser> {
        let user = nix::unistd::User::from_name(name)
            .map_err(io::Error::from)?
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("there is no OS user \"{name}\""),
                )
            })?;
        let cname = std::ffi::CString::new(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "user name holds NUL"))?;
        let groups = nix::unistd::getgrouplist(&cname, user.gid).map_err(io::Error::from)?;
        Ok(OsUser {
            name: user.name,
            uid: user.uid,
            gid: user.gid,
            groups,
            home: user.dir,
        })
    }
}

/// `bin`, run as `user` when one is given (we are root then). The
/// environment is pinned so that messages are English (they are classified)
/// and the session is recognisable in pg_stat_activity.
pub(crate) fn os_user_command(user: Option<&OsUser>, bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    if let Some(u) = user {
        let (uid, gid, groups) = (u.uid, u.gid, u.groups.clone());
        cmd.env("HOME", &u.home)
            .env("USER", &u.name)
            .env("LOGNAME", &u.name);
        // SAFETY: between fork and exec only async-signal-safe syscalls run
        // (setgroups/setgid/setuid); `groups` was allocated before the fork.
        // Groups first, uid last: after setuid we could no longer drop them.
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::setgroups(&groups)?;
                nix::unistd::setgid(gid)?;
                nix::unistd::setuid(uid)?;
                Ok(())
            });
        }
    }
    // The OS user may not be allowed into our working directory.
    cmd.current_dir("/");
    cmd.env("LC_ALL", "C")
        .env_remove("LANGUAGE")
        .env("PGAPPNAME", OUR_APP)
        // Server messages in English: restore() classifies them by text.
        .env("PGOPTIONS", "-c lc_messages=C");
    cmd
}

/// Program name of a command, for messages.
pub(crate) fn program_name(cmd: &Command) -> String {
    program_name_of(Path::new(cmd.get_program()))
}

fn program_name_of(prog: &Path) -> String {
    prog.file_name()
        .unwrap_or(prog.as_os_str())
        .to_string_lossy()
        .into_owned()
}

/// Output of a finished short-lived program.
pub(crate) struct Captured {
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub status: ExitStatus,
}

pub(crate) fn spawn_error(program: &str, target: &PgTarget, source: io::Error) -> PgError {
    PgError::Spawn {
        program: program.to_string(),
        target: target.to_string(),
        user_hint: target.user_hint(),
        source,
    }
}

/// Runs `cmd` to completion, feeding `input` on stdin while both output
/// streams are read (std's `wait_with_output` reads them concurrently).
pub(crate) fn run_capture(
    mut cmd: Command,
    target: &PgTarget,
    input: Option<&[u8]>,
) -> Result<Captured> {
    let program = program_name(&cmd);
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| spawn_error(&program, target, e))?;
    let stdin = child.stdin.take();
    let out = std::thread::scope(|s| {
        if let (Some(mut w), Some(data)) = (stdin, input) {
            // A program that exits early closes the pipe: its stderr says why.
            s.spawn(move || {
                let _ = w.write_all(data);
            });
        }
        child.wait_with_output()
    })
    .map_err(|source| PgError::Io {
        doing: format!("waiting for `{program}` on {target}"),
        source,
    })?;
    Ok(Captured {
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: out.status,
    })
}

/// Runs `cmd` and turns a non-zero exit into [`PgError::Command`].
pub(crate) fn run_checked(
    cmd: Command,
    target: &PgTarget,
    doing: &str,
    input: Option<&[u8]>,
) -> Result<Captured> {
    let program = program_name(&cmd);
    let out = run_capture(cmd, target, input)?;
    if !out.status.success() {
        return Err(PgError::Command {
            program,
            target: target.to_string(),
            doing: doing.to_string(),
            status: out.status,
            hint: hint_for(&out.stderr),
            stderr: indent(&tail_of(&out.stderr, TAIL_LINES)),
        });
    }
    Ok(out)
}

/// The last `n` lines of `text`.
pub(crate) fn tail_of(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..]
        .iter()
        .map(|l| truncate(l, TAIL_LINE_CAP))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Indents every line by four spaces (messages nested in an error).
pub(crate) fn indent(text: &str) -> String {
    if text.trim().is_empty() {
        return "    (no output)".into();
    }
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Calls `f` for every line of `r` (without the newline), keeping at most
/// `cap` bytes of each so that a huge line cannot exhaust memory.
pub(crate) fn for_each_line_capped(
    mut r: impl BufRead,
    cap: usize,
    mut f: impl FnMut(&[u8]),
) -> io::Result<()> {
    let mut line = Vec::new();
    let mut in_line = false;
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            if in_line {
                f(&line);
            }
            return Ok(());
        }
        let (chunk, consumed, ends) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        let room = cap.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        in_line = true;
        r.consume(consumed);
        if ends {
            f(&line);
            line.clear();
            in_line = false;
        }
    }
}

/// Keeps the last lines of a stream (a program's stderr).
#[derive(Debug, Default)]
pub(crate) struct LineTail {
    lines: VecDeque<String>,
}

impl LineTail {
    pub fn push(&mut self, line: &[u8]) {
        if self.lines.len() == TAIL_LINES {
            self.lines.pop_front();
        }
        let s = String::from_utf8_lossy(line);
        self.lines
            .push_back(truncate(s.trim_end_matches('\r'), TAIL_LINE_CAP));
    }

    /// Reads `r` to its end, keeping the last lines.
    pub fn read_all(r: impl io::Read) -> Self {
        let mut tail = LineTail::default();
        // A read error only loses the remaining diagnostics.
        let _ = for_each_line_capped(io::BufReader::new(r), TAIL_LINE_CAP, |l| tail.push(l));
        tail
    }

    pub fn text(&self) -> String {
        self.lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// Kills `child` and every process below it (pg_dumpall forks pg_dump
/// through a shell), deepest first, then reaps `child`. SIGKILL is deliberate: psql
/// that sees end-of-input instead would execute a half-received statement
/// (and end a half-received COPY as if it were complete).
pub(crate) fn kill_tree(child: &mut Child) {
    kill_descendants(child.id() as i32);
    let _ = child.kill();
    let _ = child.wait();
}

/// SIGKILLs every process below `pid` (not `pid` itself), deepest first.
pub(crate) fn kill_descendants(pid: i32) {
    let mut order = Vec::new();
    collect_descendants(pid, &children_map(), &mut order);
    for p in order.iter().rev() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

fn children_map() -> BTreeMap<i32, Vec<i32>> {
    let mut map: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return map;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid …": comm may contain spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        if let Some(ppid) = rest
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<i32>().ok())
        {
            map.entry(ppid).or_default().push(pid);
        }
    }
    map
}

fn collect_descendants(pid: i32, map: &BTreeMap<i32, Vec<i32>>, out: &mut Vec<i32>) {
    if let Some(kids) = map.get(&pid) {
        for &k in kids {
            if !out.contains(&k) {
                out.push(k);
                collect_descendants(k, map, out);
            }
        }
    }
}

/// A libpq connection-string value: `'…'` with `\` and `'` escaped, so that
/// any database name (spaces, quotes, `=`) reaches `psql -d` intact.
pub(crate) fn conninfo_dbname(db: &str) -> String {
    let mut s = String::from("dbname='");
    for c in db.chars() {
        if c == '\'' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('\'');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_dirs_sort_numerically() {
        let mut v = vec![version_key("9.6"), version_key("15"), version_key("10")];
        v.sort();
        assert_eq!(v, vec![vec![9, 6], vec![10], vec![15]]);
    }

    #[test]
    fn conninfo_quotes_everything() {
        assert_eq!(conninfo_dbname("My DB's"), r"dbname='My DB\'s'");
        assert_eq!(conninfo_dbname(r"a\b"), r"dbname='a\\b'");
    }

    #[test]
    fn capped_lines_keep_prefix() {
        let data = b"short\nloooooooooong\n\nlast";
        let mut got = Vec::new();
        for_each_line_capped(&data[..], 4, |l| got.push(l.to_vec())).unwrap();
        assert_eq!(
            got,
            vec![b"shor".to_vec(), b"looo".to_vec(), vec![], b"last".to_vec()]
        );
    }
}
