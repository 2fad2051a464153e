//! Decides once whether output gets colour and progress bars, and writes to
//! stdout so that a closed pipe ends the program quietly instead of panicking.

use crate::cli::ColorChoice;
use console::Style;
use std::io::{self, IsTerminal, Write};

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub color: bool,
    /// Progress bars only when both stdout and stderr are terminals.
    pub progress: bool,
    pub interactive: bool,
}

impl Printer {
    pub fn detect(choice: ColorChoice) -> Printer {
        let stdout_tty = io::stdout().is_terminal();
        let stderr_tty = io::stderr().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => stdout_tty && !no_color && !dumb,
        };
        // console's own detection would otherwise override ours.
        console::set_colors_enabled(color);
        console::set_colors_enabled_stderr(color && stderr_tty || choice == ColorChoice::Always);
        Printer {
            color,
            progress: stdout_tty && stderr_tty && !dumb,
            interactive: stdout_tty && io::stdin().is_terminal(),
        }
    }

    /// Writes to stdout. A reader that went away (`| head`) ends the
    /// command quietly with [`PipeClosed`]; `run` exits 0 on it, as grep does.
    pub fn out(&self, text: &str) -> miette::Result<()> {
        let text = crate::redact::for_output(text);
        let mut out = io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| match e.kind() {
                io::ErrorKind::BrokenPipe => miette::Report::new(PipeClosed),
                _ => miette::miette!("cannot write to standard output: {e}"),
            })
    }

    pub fn line(&self, text: &str) -> miette::Result<()> {
        self.out(&format!("{text}\n"))
    }

    /// A progress bar on a terminal, a hidden one otherwise.
    pub fn bar(&self, len: u64, prefix: &str) -> indicatif::ProgressBar {
        if !self.progress {
            return indicatif::ProgressBar::hidden();
        }
        let style = indicatif::ProgressStyle::with_template(
            "  {prefix} [{bar:30.cyan/blue}] {pos}/{len} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        indicatif::ProgressBar::new(len)
            .with_style(style)
            .with_prefix(prefix.to_string())
    }

    /// A byte-counting bar (dumps, restores) on a terminal, hidden otherwise.
    pub fn bytes_bar(&self, len: Option<u64>, prefix: &str) -> indicatif::ProgressBar {
        if !self.progress {
            return indicatif::ProgressBar::hidden();
        }
        let template = match len {
            Some(_) => "  {prefix} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec}",
            None => "  {prefix} {spinner} {bytes} {bytes_per_sec}",
        };
        let style = indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        let bar = match len {
            Some(n) => indicatif::ProgressBar::new(n),
            None => indicatif::ProgressBar::new_spinner(),
        };
        bar.with_style(style).with_prefix(prefix.to_string())
    }

    pub fn style(&self, style: Style) -> Style {
        if self.color {
            style.force_styling(true)
        } else {
            Style::new().force_styling(false)
        }
    }

    pub fn bold(&self, s: &str) -> String {
        self.style(Style::new().bold()).apply_to(s).to_string()
    }

    pub fn green(&self, s: &str) -> String {
        self.style(Style::new().green()).apply_to(s).to_string()
    }

    pub fn yellow(&self, s: &str) -> String {
        self.style(Style::new().yellow()).apply_to(s).to_string()
    }

    pub fn red(&self, s: &str) -> String {
        self.style(Style::new().red()).apply_to(s).to_string()
    }

    pub fn dim(&self, s: &str) -> String {
        self.style(Style::new().dim()).apply_to(s).to_string()
    }
}

/// Standard output was closed by its reader.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("standard output was closed")]
pub struct PipeClosed;
