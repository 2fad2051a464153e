//! Decides once whether output gets colour and progress bars, and writes to
//! stdout and stderr so that a closed pipe ends the program quietly instead of
//! panicking.

use crate::cli::ColorChoice;
use console::Style;
use std::fmt;
use std::io::{self, IsTerminal, Write};

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub color: bool,
    /// Progress bars only when both stdout and stderr are terminals.
    pub progress: bool,
    pub interactive: bool,
    /// Stdout carries one document (`--format json|junit`): the engine's
    /// progress lines go to stderr and nothing is asked.
    pub document: bool,
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
            document: false,
        }
    }

    /// The printer of a run whose stdout is one document: no colour, no
    /// bars, no questions.
    pub fn for_document(&self) -> Printer {
        Printer {
            color: false,
            progress: false,
            interactive: false,
            document: true,
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

/// Writes to stderr, the one way anything reaches it (secrets redacted,
/// control characters escaped). A closed stderr
/// (`2>&1 | head -1`) is ignored: `eprintln!` would panic there (exit 101)
/// and the exit code must stay the command's own.
pub fn eprint(text: &str) {
    let text = crate::redact::for_output(text);
    let mut err = io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
}

/// Standard output was closed by its reader.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("standard output was closed")]
pub struct PipeClosed;

/// Renders errors for people: miette's graphical report without the
/// diagnostic codes (internal names such as `imlrecover::root`; a related
/// error's `Error: CODE` line goes with its code) and without Rust's
/// `(os error N)` after the system's own message.
pub struct ErrorRenderer(pub miette::GraphicalReportHandler);

impl miette::ReportHandler for ErrorRenderer {
    fn debug(
        &self,
        diagnostic: &dyn miette::Diagnostic,
        f: &mut fmt::Formatter<'_>,
    ) -> fmt::Result {
        if f.alternate() {
            return fmt::Debug::fmt(diagnostic, f);
        }
        let mut text = String::new();
        self.0.render_report(&mut text, &Uncoded::new(diagnostic))?;
        let text = without_os_error_numbers(&text);
        for line in text.split_inclusive('\n') {
            if !matches!(line.trim_end(), "Error:" | "Warning:" | "Advice:") {
                f.write_str(line)?;
            }
        }
        Ok(())
    }
}

impl ErrorRenderer {
    /// Without colour or unicode, for tests.
    pub fn plain() -> ErrorRenderer {
        ErrorRenderer(
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::ascii())
                .with_links(false)
                .with_wrap_lines(false),
        )
    }

    pub fn render(&self, diagnostic: &dyn miette::Diagnostic) -> String {
        struct Show<'a>(&'a ErrorRenderer, &'a dyn miette::Diagnostic);
        impl fmt::Debug for Show<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                miette::ReportHandler::debug(self.0, self.1, f)
            }
        }
        format!("{:?}", Show(self, diagnostic))
    }
}

pub(crate) fn without_os_error_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(" (os error ") {
        let tail = &rest[i + " (os error ".len()..];
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && tail[digits..].starts_with(')') {
            out.push_str(&rest[..i]);
            rest = &tail[digits + 1..];
        } else {
            out.push_str(&rest[..i + 1]);
            rest = &rest[i + 1..];
        }
    }
    out.push_str(rest);
    out
}

/// A diagnostic shown as it is, minus its code (and its related ones' codes).
struct Uncoded<'a> {
    inner: &'a dyn miette::Diagnostic,
    related: Vec<Uncoded<'a>>,
    source: Option<Box<Uncoded<'a>>>,
}

impl<'a> Uncoded<'a> {
    fn new(inner: &'a dyn miette::Diagnostic) -> Uncoded<'a> {
        Uncoded {
            inner,
            related: inner
                .related()
                .map(|r| r.map(Uncoded::new).collect())
                .unwrap_or_default(),
            source: inner.diagnostic_source().map(|s| Box::new(Uncoded::new(s))),
        }
    }
}

impl fmt::Debug for Uncoded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.inner, f)
    }
}

impl fmt::Display for Uncoded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.inner, f)
    }
}

impl Uncoded<'_> {
    /// A cause whose text the message already quotes (whole, or its end as
    /// the message's last `: …` part) is not repeated under it.
    fn repeats(&self, cause: &dyn fmt::Display) -> bool {
        let (message, cause) = (self.inner.to_string(), cause.to_string());
        message.contains(&cause)
            || message
                .rsplit_once(": ")
                .is_some_and(|(_, tail)| !tail.is_empty() && cause.ends_with(tail))
    }
}

impl std::error::Error for Uncoded<'_> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let mut cause = self.inner.source();
        while let Some(c) = cause.filter(|c| self.repeats(c)) {
            cause = c.source();
        }
        cause
    }
}

impl miette::Diagnostic for Uncoded<'_> {
    fn severity(&self) -> Option<miette::Severity> {
        self.inner.severity()
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.inner.help()
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.inner.source_code()
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.inner.labels()
    }

    fn related<'b>(&'b self) -> Option<Box<dyn Iterator<Item = &'b dyn miette::Diagnostic> + 'b>> {
        if self.related.is_empty() {
            return None;
        }
        Some(Box::new(
            self.related.iter().map(|r| r as &dyn miette::Diagnostic),
        ))
    }

    fn diagnostic_source(&self) -> Option<&dyn miette::Diagnostic> {
        // A repeated one falls back to `source`, which skips it.
        self.source
            .as_deref()
            .filter(|s| !self.repeats(s))
            .map(|s| s as &dyn miette::Diagnostic)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn os_error_numbers_go_and_the_rest_stays() {
        assert_eq!(
            super::without_os_error_numbers(
                "cannot read a: No such file or directory (os error 2)\n (os error x) (os error 13)"
            ),
            "cannot read a: No such file or directory\n (os error x)"
        );
    }
}
