//! What `push`, `pull` and `backup --push` show: the byte bar while the
//! transfer runs, and the words about what it did.

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
