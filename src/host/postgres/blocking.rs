//! Nothing of ours waits forever on another session's lock. While a safety
//! dump or a restore runs, [`LockWatch`] looks twice a second for our
//! sessions (`application_name` imlrecover) waiting on a lock, names the
//! sessions blocking them (`pg_blocking_pids`) and ends those, as a restore
//! ends every connected client anyway. A wait no ending can clear (a
//! prepared transaction, a session that cannot be terminated) is cancelled
//! after [`GIVE_UP`], so the step fails with the reason instead of hanging.
//! A backup only reports what blocks it ([`LockWatch::report_only`]), and
//! gives up after [`BACKUP_GIVE_UP`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::process::OUR_APP;
use super::sql::{query, sql_literal};
use super::PgTarget;

/// How often the watch looks.
const POLL: Duration = Duration::from_millis(500);
/// How long one of our sessions may wait on a lock before its blockers are ended.
const GRACE: Duration = Duration::from_secs(1);
/// How long a wait may last in all before our own statement is cancelled.
pub const GIVE_UP: Duration = Duration::from_secs(20);
/// A backup ends nobody's session; it waits this long for a lock.
pub const BACKUP_GIVE_UP: Duration = Duration::from_secs(300);

/// A session holding a lock one of ours waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    /// 0: not a session (a prepared transaction).
    pub pid: i32,
    pub database: String,
    pub user: String,
    pub application_name: String,
    pub client: String,
    pub state: String,
    /// Its current or last statement, shortened.
    pub query: String,
    /// Our waiting session's pid.
    pub blocks: i32,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.pid == 0 {
            return write!(f, "a prepared transaction (see pg_prepared_xacts)");
        }
        write!(
            f,
            "pid {} on database \"{}\" as \"{}\" from {}",
            self.pid, self.database, self.user, self.client
        )?;
        if !self.application_name.is_empty() {
            write!(f, " (application \"{}\")", self.application_name)?;
        }
        if !self.state.is_empty() {
            write!(f, ", {}", self.state)?;
        }
        if !self.query.is_empty() {
            write!(f, ", query: {}", self.query)?;
        }
        Ok(())
    }
}

/// What a watch did.
#[derive(Debug, Default, Clone)]
pub struct WatchReport {
    /// Sessions ended because they blocked ours.
    pub ended: Vec<Blocker>,
    /// Set when our statement was cancelled: why.
    pub gave_up: Option<String>,
}

/// A watch running on its own thread until [`LockWatch::finish`] (or drop).
pub struct LockWatch {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<WatchReport>>,
}

impl LockWatch {
    /// Starts watching `target`; `say` gets a line for every session ended
    /// and for a wait given up, as it happens.
    pub fn start(target: &PgTarget, say: impl Fn(&str) + Send + 'static) -> LockWatch {
        Self::spawn(target, true, GIVE_UP, say)
    }

    /// Names what blocks ours without ending it; cancels ours after `give_up`.
    pub fn report_only(
        target: &PgTarget,
        give_up: Duration,
        say: impl Fn(&str) + Send + 'static,
    ) -> LockWatch {
        Self::spawn(target, false, give_up, say)
    }

    fn spawn(
        target: &PgTarget,
        end: bool,
        give_up: Duration,
        say: impl Fn(&str) + Send + 'static,
    ) -> LockWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let target = target.clone();
        let handle = std::thread::Builder::new()
            .name("lock-watch".into())
            .spawn(move || watch(&target, &flag, end, give_up, &say))
            .ok();
        LockWatch { stop, handle }
    }

    pub fn finish(mut self) -> WatchReport {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for LockWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn watch(
    target: &PgTarget,
    stop: &AtomicBool,
    end: bool,
    give_up: Duration,
    say: &dyn Fn(&str),
) -> WatchReport {
    let mut report = WatchReport::default();
    let mut named: Vec<(i32, i32)> = Vec::new();
    // Our waiting pid → when it was first seen waiting.
    let mut waiting: HashMap<i32, Instant> = HashMap::new();
    let mut cancelled: Vec<i32> = Vec::new();
    loop {
        // Sleep in small slices, so finishing never waits a whole poll.
        let next = Instant::now() + POLL;
        while Instant::now() < next {
            if stop.load(Ordering::Relaxed) {
                return report;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        // The server may be down or restarting: the step itself reports that.
        let Ok(blockers) = blocked_sessions(target) else {
            continue;
        };
        let now = Instant::now();
        waiting.retain(|pid, _| blockers.iter().any(|b| b.blocks == *pid));
        for b in &blockers {
            let since = *waiting.entry(b.blocks).or_insert(now);
            if now.duration_since(since) < GRACE {
                continue;
            }
            // One of ours queued behind another of ours is not a blocker to end.
            let ours_waiting = blockers.iter().any(|x| x.blocks == b.pid);
            if !end {
                if !named.contains(&(b.blocks, b.pid)) {
                    say(&format!("the dump waits for a lock held by {b}"));
                    named.push((b.blocks, b.pid));
                }
            } else if b.pid != 0
                && !ours_waiting
                && !report.ended.iter().any(|e| e.pid == b.pid)
                && terminate(target, b.pid)
            {
                say(&format!("ended session blocking the restore: {b}"));
                report.ended.push(b.clone());
            }
            if now.duration_since(since) >= give_up
                && !cancelled.contains(&b.blocks)
                && (!end || b.pid == 0 || report.ended.iter().all(|e| e.pid != b.pid))
            {
                let why = format!(
                    "waited {} s for a lock held by {b}{}",
                    now.duration_since(since).as_secs(),
                    if end {
                        ", which could not be ended"
                    } else {
                        ""
                    }
                );
                say(&format!("giving up: {why}"));
                let _ = ask(target, &format!("SELECT pg_cancel_backend({})", b.blocks));
                cancelled.push(b.blocks);
                report.gave_up = Some(why);
            }
        }
    }
}

fn terminate(target: &PgTarget, pid: i32) -> bool {
    let Ok(rows) = ask(target, &format!("SELECT pg_terminate_backend({pid})")) else {
        return false;
    };
    if rows.first().and_then(|r| r.first()).map(String::as_str) != Some("t") {
        return false;
    }
    // Only a signal: wait (bounded) until its locks are released.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let gone = ask(
            target,
            &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"),
        );
        if gone.is_ok_and(|r| r.first().and_then(|r| r.first()).map(String::as_str) == Some("0")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// A restore drops and re-creates `postgres` (a short session there does
/// not stop it: DROP DATABASE waits 5 s for others to leave); meanwhile
/// `template1` answers.
fn ask(target: &PgTarget, sql: &str) -> super::Result<Vec<Vec<String>>> {
    query(target, "postgres", sql).or_else(|_| query(target, "template1", sql))
}

/// Sessions blocking one of ours that waits on a lock (PostgreSQL ≥ 9.6).
pub fn blocked_sessions(target: &PgTarget) -> super::Result<Vec<Blocker>> {
    let clean = |col: &str| {
        format!(
            "translate(left(coalesce({col}, ''), 300), E'\\n\\r' || chr(31) || chr(30), '    ')"
        )
    };
    let sql = format!(
        "SELECT w.pid, x.pid, coalesce(b.datname::text, ''), coalesce(b.usename::text, ''), \
         {}, coalesce(host(b.client_addr), 'local socket'), coalesce(b.state, ''), {} \
         FROM pg_stat_activity w \
         CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS x(pid) \
         LEFT JOIN pg_stat_activity b ON b.pid = x.pid \
         WHERE w.application_name = {} AND w.wait_event_type = 'Lock' \
         AND w.pid <> pg_backend_pid() AND x.pid <> pg_backend_pid() ORDER BY 1, 2",
        clean("b.application_name"),
        clean("b.query"),
        sql_literal(OUR_APP),
    );
    let rows = ask(target, &sql)?;
    Ok(rows
        .into_iter()
        .filter_map(|r| match r.as_slice() {
            [ours, pid, db, user, app, client, state, q] => Some(Blocker {
                blocks: ours.parse().ok()?,
                pid: pid.parse().ok()?,
                database: db.clone(),
                user: user.clone(),
                application_name: app.clone(),
                client: client.clone(),
                state: state.clone(),
                query: q.clone(),
            }),
            _ => None,
        })
        .collect())
}
