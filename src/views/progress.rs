//! What the engine reports while it works (bars, a session it waits for,
//! a warning), through [`Progress`]: on a terminal as bars and lines,
//! under `--format json|junit` on stderr only, so stdout holds the
//! document alone. Also the words of an interrupted run.

use crate::printer::{eprint, Printer};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use std::sync::Mutex;

/// The engine's side of a view: everything it shows while a step runs.
pub trait Progress {
    /// `dumping ADDRESS: N of SQL` while pg_dumpall runs.
    fn dump_spinner(&self, message: &str) -> ProgressBar;
    /// The drill's restore of `len` compressed bytes.
    fn restore_bar(&self, len: u64, message: &str) -> ProgressBar;
    /// A session blocks ours (said at once, `indent`ed under its step).
    fn blocked(&self, indent: &str, line: &str);
    /// Something about the run a person should know; kept for the document.
    fn warning(&self, text: &str);
}

static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The warnings reported so far, for the run's document.
pub fn take_warnings() -> Vec<String> {
    WARNINGS
        .lock()
        .map(|mut w| std::mem::take(&mut *w))
        .unwrap_or_default()
}

impl Progress for Printer {
    fn dump_spinner(&self, message: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template(
                "{spinner} {msg} {bytes} of SQL ({bytes_per_sec}, {elapsed})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    }

    fn restore_bar(&self, len: u64, message: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len).with_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(message.to_string());
        bar
    }

    fn blocked(&self, indent: &str, line: &str) {
        let text = format!("{indent}{} {line}", self.yellow("Blocked:"));
        if self.document {
            eprint(&format!("{text}\n"));
        } else {
            let _ = self.line(&text);
        }
    }

    fn warning(&self, text: &str) {
        eprint(&format!("{} {text}\n", self.yellow("warning:")));
        if let Ok(mut w) = WARNINGS.lock() {
            w.push(text.to_string());
        }
    }
}

/// Ctrl-C removed an incomplete bundle.
pub fn interrupted_bundle(dir: &Path) {
    eprint(&format!(
        "interrupted: removed the incomplete bundle {}\n",
        dir.display()
    ));
}

/// Ctrl-C stopped throwaway clusters.
pub fn interrupted_clusters(n: usize) {
    eprint(&format!(
        "interrupted: stopped and removed {n} throwaway PostgreSQL cluster(s)\n"
    ));
}

/// Ctrl-C, with nothing to clean up.
pub fn interrupted() {
    eprint("interrupted\n");
}
