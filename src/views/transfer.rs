//! What `push`, `pull` and `backup --push` show: the byte bar while the
//! transfer runs, and the words about what it did.

use super::document::{Case, Record};
use crate::printer::Printer;
use crate::transfer::{Events, Pulled, Pushed, RemoteTarget};
use indicatif::{HumanBytes, ProgressBar};
use std::sync::OnceLock;
use std::time::Duration;

/// The byte bar of one transfer (hidden where the printer shows no progress).
pub struct Bar<'a> {
    printer: &'a Printer,
    bar: OnceLock<ProgressBar>,
}

impl<'a> Bar<'a> {
    pub fn new(printer: &'a Printer) -> Bar<'a> {
        Bar {
            printer,
            bar: OnceLock::new(),
        }
    }
}

impl Events for Bar<'_> {
    fn started(&self, what: &'static str, total: u64) {
        let _ = self.bar.set(self.printer.bytes_bar(Some(total), what));
    }

    fn moved(&self, n: u64) {
        if let Some(bar) = self.bar.get() {
            bar.inc(n);
        }
    }

    fn ended(&self) {
        if let Some(bar) = self.bar.get() {
            bar.finish_and_clear();
        }
    }
}

/// A finished push, `elapsed` after it began.
pub fn pushed(
    printer: &Printer,
    target: &RemoteTarget,
    pushed: &Pushed,
    elapsed: Duration,
) -> miette::Result<()> {
    if pushed.already_there {
        printer.line(&format!(
            "{} {} is already on {target} (nothing sent)",
            printer.green("Push complete:"),
            printer.bold(&pushed.name),
        ))?;
    } else {
        let secs = elapsed.as_secs_f64().max(0.001);
        printer.line(&format!(
            "{} {} → {}/{}",
            printer.green("Push complete:"),
            printer.bold(&pushed.name),
            target.to_string().trim_end_matches('/'),
            pushed.name,
        ))?;
        printer.line(&format!(
            "  {} files, {} sent and verified (blake3 of every byte, remote sizes) in {} ({}/s)",
            pushed.files,
            HumanBytes(pushed.bytes),
            humantime::format_duration(Duration::from_millis(elapsed.as_millis() as u64)),
            HumanBytes((pushed.bytes as f64 / secs) as u64),
        ))?;
    }
    if let Some(why) = &pushed.one_connection {
        printer.line(&format!(
            "  {} big files went over one SSH connection: the second one failed ({why})",
            printer.yellow("Note:")
        ))?;
    }
    for old in &pushed.pruned {
        printer.line(&format!("  pruned remote {old}"))?;
    }
    Ok(())
}

/// A finished pull.
pub fn pulled(printer: &Printer, pulled: &Pulled) -> miette::Result<()> {
    printer.line(&format!(
        "{} {} → {}",
        printer.green("Pull complete:"),
        printer.bold(&pulled.name),
        pulled.path.display()
    ))?;
    printer.line(&format!(
        "  {} files, {} fetched; the bundle verifies (every hash, the dump, the certificates)",
        pulled.files,
        HumanBytes(pulled.bytes)
    ))?;
    printer.line(&format!(
        "  restore with: imlrecover plan -r RECIPE --bundle {}",
        pulled.path.display()
    ))
}

/// `push --format json|junit` (and `backup --push`): what went where.
#[derive(Debug, Default, serde::Serialize)]
pub struct PushRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    pub destination: String,
    pub host: String,
    pub files: usize,
    pub bytes: u64,
    pub already_there: bool,
    pub pruned: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_connection: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub seconds: f64,
}

impl PushRecord {
    pub fn new(target: &RemoteTarget) -> PushRecord {
        PushRecord {
            destination: target.to_string(),
            host: target.host.clone(),
            ..PushRecord::default()
        }
    }

    pub fn pushed(&mut self, target: &RemoteTarget, pushed: &Pushed, elapsed: Duration) {
        self.bundle = Some(pushed.name.clone());
        self.destination = format!(
            "{}/{}",
            target.to_string().trim_end_matches('/'),
            pushed.name
        );
        self.files = pushed.files;
        self.bytes = pushed.bytes;
        self.already_there = pushed.already_there;
        self.pruned = pushed.pruned.clone();
        self.one_connection = pushed.one_connection.clone();
        self.seconds = elapsed.as_secs_f64();
    }

    /// One testcase: the host the bundle went to (failed with `error`
    /// unless it arrived).
    pub fn case(&self, error: Option<&str>) -> Case {
        let name = format!("push to {}", self.host);
        match (&self.error, self.bundle.is_some()) {
            (Some(e), _) => Case::failed(name, self.seconds, e),
            (None, false) => Case::failed(name, self.seconds, error.unwrap_or("not pushed")),
            (None, true) => Case::passed(name, self.seconds),
        }
    }
}

impl Record for PushRecord {
    fn cases(&self, error: Option<&str>) -> Vec<Case> {
        vec![self.case(error)]
    }
}

/// `pull --format json|junit`: what came back, and where it is.
#[derive(Debug, Default, serde::Serialize)]
pub struct PullRecord {
    pub source: String,
    pub host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    pub files: usize,
    pub bytes: u64,
    /// The fetched copy passed `verify` before it was put in place.
    pub verified: bool,
    pub seconds: f64,
}

impl PullRecord {
    pub fn new(target: &RemoteTarget) -> PullRecord {
        PullRecord {
            source: target.to_string(),
            host: target.host.clone(),
            ..PullRecord::default()
        }
    }

    pub fn pulled(&mut self, pulled: &Pulled, elapsed: Duration) {
        self.bundle = Some(pulled.name.clone());
        self.destination = Some(pulled.path.display().to_string());
        self.files = pulled.files;
        self.bytes = pulled.bytes;
        self.verified = true;
        self.seconds = elapsed.as_secs_f64();
    }
}

impl Record for PullRecord {
    fn cases(&self, error: Option<&str>) -> Vec<Case> {
        let name = format!("pull from {}", self.host);
        vec![match error {
            None if self.verified => Case::passed(name, self.seconds),
            _ => Case::failed(name, self.seconds, error.unwrap_or("not pulled")),
        }]
    }
}
