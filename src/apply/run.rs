//! A run directory per apply, `<root>/var/lib/imlrecover/runs/<timestamp>/`:
//! the plan being applied, a journal of finished steps (restarts and remote
//! actions fsynced as they finish),
//! the previous content of every file replaced or removed (`previous/`), and
//! the safety dump taken before a database restore. Never deleted by us.

use crate::plan::{Op, Plan, Step};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const PLAN: &str = "plan.json";
pub const JOURNAL: &str = "journal.jsonl";
/// Written when every step finished.
pub const COMPLETE: &str = "complete";
/// Written when a later run took over the unfinished steps.
pub const SUPERSEDED: &str = "superseded";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalLine {
    pub step: usize,
    pub op: Op,
    pub address: String,
    /// "done" or "failed".
    pub status: String,
    pub elapsed_ms: u64,
    pub message: String,
}

pub struct RunDir {
    pub dir: PathBuf,
    journal: File,
}

fn io_ctx(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl RunDir {
    pub fn create(runs: &Path, plan: &Plan) -> io::Result<RunDir> {
        fs::create_dir_all(runs).map_err(|e| io_ctx(runs, e))?;
        let stamp = humantime::format_rfc3339_millis(std::time::SystemTime::now())
            .to_string()
            .replace(':', "-");
        let mut dir = runs.join(&stamp);
        let mut n = 1;
        while dir.exists() {
            dir = runs.join(format!("{stamp}-{n}"));
            n += 1;
        }
        fs::create_dir(&dir).map_err(|e| io_ctx(&dir, e))?;
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let text = serde_json::to_string_pretty(plan).map_err(io::Error::other)?;
        let text = crate::redact::text(&text);
        let plan_path = dir.join(PLAN);
        let mut f = File::create(&plan_path).map_err(|e| io_ctx(&plan_path, e))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        let journal_path = dir.join(JOURNAL);
        let journal = OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&journal_path)
            .map_err(|e| io_ctx(&journal_path, e))?;
        crate::host::atomic::sync_dir(runs)?;
        Ok(RunDir { dir, journal })
    }

    pub fn previous(&self) -> PathBuf {
        self.dir.join("previous")
    }

    /// Appends one line; fsyncs it when `durable`. A resumed apply plans
    /// afresh and needs the journal only to not repeat a restart or a
    /// remote action (see [`Unfinished::owed`]): those lines are synced,
    /// the others survive a killed process (page cache), and losing them
    /// to a power cut loses nothing but the "N steps done" count.
    pub fn record(&mut self, line: &JournalLine, durable: bool) -> io::Result<()> {
        let mut text = serde_json::to_string(line).map_err(io::Error::other)?;
        text = crate::redact::text(&text).into_owned();
        text.push('\n');
        self.journal.write_all(text.as_bytes())?;
        if durable {
            self.journal.sync_data()?;
        }
        Ok(())
    }

    pub fn mark(&self, marker: &str) -> io::Result<()> {
        self.journal.sync_data()?;
        File::create(self.dir.join(marker))?.sync_all()?;
        crate::host::atomic::sync_dir(&self.dir)
    }
}

/// An earlier run that did not finish: its plan and the steps it finished.
pub struct Unfinished {
    pub dir: PathBuf,
    pub plan: Plan,
    pub done: Vec<usize>,
}

impl Unfinished {
    /// Steps a fresh plan cannot rediscover from the host: restarts owed to
    /// a change already made, and remote actions owed to a restore. Every
    /// such step the run did not record as done counts, whether or not the
    /// change behind it was recorded: a change the run made is invisible to
    /// a fresh plan, and one it did not make is planned again together with
    /// its restart (the caller drops what the fresh plan already has).
    pub fn owed(&self) -> Vec<&Step> {
        self.plan
            .steps
            .iter()
            .filter(|s| !self.done.contains(&s.id))
            .filter(|s| matches!(s.op, Op::Restart | Op::RemoteAction))
            .collect()
    }

    pub fn mark_superseded(&self) -> io::Result<()> {
        File::create(self.dir.join(SUPERSEDED))?.sync_all()
    }
}

/// The newest run without `complete` or `superseded`, if any.
pub fn unfinished(runs: &Path) -> io::Result<Option<Unfinished>> {
    let mut dirs: Vec<PathBuf> = match fs::read_dir(runs) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_ctx(runs, e)),
    };
    dirs.sort();
    for dir in dirs.into_iter().rev() {
        if dir.join(COMPLETE).exists() || dir.join(SUPERSEDED).exists() {
            return Ok(None);
        }
        let Ok(text) = fs::read_to_string(dir.join(PLAN)) else {
            continue;
        };
        let Ok(plan) = serde_json::from_str::<Plan>(&text) else {
            continue;
        };
        let mut done = Vec::new();
        if let Ok(f) = File::open(dir.join(JOURNAL)) {
            // A torn last line (killed mid-write) is ignored.
            for line in io::BufReader::new(f).lines().map_while(Result::ok) {
                if let Ok(j) = serde_json::from_str::<JournalLine>(&line) {
                    if j.status == "done" {
                        done.push(j.step);
                    }
                }
            }
        }
        return Ok(Some(Unfinished { dir, plan, done }));
    }
    Ok(None)
}
