//! One module per subcommand; `run` parses arguments, installs the
//! diagnostic hook and maps outcomes to exit codes (0 ok, 1 error, 2 changes).

mod apply;
mod audit;
mod backup;
mod completions;
mod demo;
mod graph;
mod import;
mod init;
mod man;
mod plan;
mod prune;
mod pull;
mod push;
mod show;
mod validate;
mod verify;

use crate::cli::{Cli, Command};
use crate::printer::Printer;
use clap::Parser;
use std::process::ExitCode;

/// What a successful command found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Clean,
    /// Changes or drift present; exit 2 where the command says so.
    Changes,
    /// An exit code of its own convention (`audit --format nagios`: 0–3).
    Code(u8),
}

pub type CmdResult = miette::Result<Outcome>;

pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e)
            if nagios_requested()
                && !matches!(
                    e.kind(),
                    clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
                ) =>
        {
            let _ = e.print();
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            println!(
                "IMLRECOVER UNKNOWN - {}",
                one_line(first.trim_start_matches("error: "))
            );
            return ExitCode::from(NAGIOS_UNKNOWN);
        }
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(1),
            };
        }
    };
    let printer = Printer::detect(cli.color);
    install_hook(&printer);
    crate::views::prompt::install();
    let nagios =
        matches!(&cli.command, Command::Audit(a) if a.format == crate::cli::AuditFormat::Nagios);
    let fail = |report: miette::Report| {
        crate::printer::eprint(&format!("{report:?}\n"));
        if nagios {
            // The plugin convention: an error of the check is UNKNOWN.
            let chain: Vec<String> = report.chain().map(|e| e.to_string()).collect();
            let line = one_line(&chain.join(": "));
            println!("IMLRECOVER UNKNOWN - {}", crate::redact::for_output(&line));
            ExitCode::from(NAGIOS_UNKNOWN)
        } else {
            ExitCode::from(1)
        }
    };
    // Refused before the command began: its document (if asked for) says so.
    let refuse = |report| match crate::views::document::refused(&printer, &cli.command, report) {
        Err(report) if !is_broken_pipe(&report) => fail(report),
        _ => ExitCode::from(1),
    };
    if let Err(e) = crate::bundle::crypt::load_identities(age_identities(&cli.command)) {
        return refuse(miette::Report::new(e));
    }
    if let Err(e) = crate::bundle::sign::load_trust(trusted_keys(&cli.command)) {
        return refuse(miette::Report::new(e));
    }
    let metrics = metrics_target(&cli.command);
    if let Some((_, path)) = metrics {
        if let Err(e) = crate::metrics::check_path(path) {
            return refuse(miette::Report::new(e));
        }
    }
    let started = std::time::Instant::now();
    let result = match &cli.command {
        Command::Validate(args) => validate::run(&printer, args),
        Command::Graph(args) => graph::run(&printer, args),
        Command::Backup(args) => backup::run(&printer, args),
        Command::Verify(args) => verify::run(&printer, args),
        Command::Plan(args) => plan::run(&printer, args),
        Command::Show(args) => show::run(&printer, args),
        Command::Apply(args) => apply::run(&printer, args),
        Command::Audit(args) => audit::run(&printer, args),
        Command::Demo(args) => demo::run(&printer, args),
        Command::Push(args) => push::run(&printer, args),
        Command::Pull(args) => pull::run(&printer, args),
        Command::Prune(args) => prune::run(&printer, args),
        Command::Import(args) => import::run(&printer, args),
        Command::Init(args) => init::run(&printer, args),
        Command::Completions(args) => completions::run(&printer, args),
        Command::Man(args) => man::run(&printer, args),
    };
    let result = match metrics {
        Some((command, path)) => {
            match crate::metrics::finish(path, command, started.elapsed(), result.is_ok()) {
                Ok(()) => result,
                Err(e) if result.is_ok() => Err(miette::Report::new(e).wrap_err(format!(
                    "`{command}` succeeded, but its metrics were not written"
                ))),
                Err(e) => {
                    crate::printer::eprint(&format!("{:?}\n", miette::Report::new(e)));
                    result
                }
            }
        }
        None => result,
    };
    crate::views::document::flush(&result);
    match result {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Changes) => ExitCode::from(2),
        Ok(Outcome::Code(code)) => ExitCode::from(code),
        Err(report) if is_broken_pipe(&report) => ExitCode::SUCCESS,
        Err(report) => fail(report),
    }
}

/// The Nagios plugin exit code for "the check itself failed".
pub const NAGIOS_UNKNOWN: u8 = 3;

/// `audit --format nagios` on a command line clap refused.
fn nagios_requested() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--format=nagios")
        || args
            .windows(2)
            .any(|w| w[0] == "--format" && w[1] == "nagios")
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The command whose metrics `--metrics-file` asks for, and the path.
fn metrics_target(command: &Command) -> Option<(&'static str, &std::path::Path)> {
    let (name, path) = match command {
        Command::Backup(a) => ("backup", &a.metrics_file),
        Command::Verify(a) => ("verify", &a.metrics_file),
        Command::Push(a) => ("push", &a.metrics_file),
        Command::Apply(a) => ("apply", &a.metrics_file),
        Command::Audit(a) => ("audit", &a.metrics_file),
        _ => return None,
    };
    path.as_deref().map(|p| (name, p))
}

/// Must run before any `Report` is created (DESIGN.md §5).
fn install_hook(printer: &Printer) {
    let color = printer.color;
    // Wrap for a person at a terminal; keep lines whole for logs and grep.
    let wrap = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let unicode = color || std::env::var("LANG").is_ok_and(|l| l.contains("UTF-8"));
    let width = console::Term::stderr()
        .size_checked()
        .map_or(80, |(_, cols)| usize::from(cols));
    let _ = miette::set_hook(Box::new(move |_| {
        let theme = match (color, unicode) {
            (true, _) => miette::GraphicalTheme::unicode(),
            (false, true) => miette::GraphicalTheme::unicode_nocolor(),
            (false, false) => miette::GraphicalTheme::ascii(),
        };
        Box::new(crate::printer::ErrorRenderer(
            miette::GraphicalReportHandler::new_themed(theme)
                .with_links(false)
                .with_width(width)
                .with_wrap_lines(wrap),
        ))
    }));
}

/// `--age-identity` files, given only to the commands that read bundles.
fn age_identities(command: &Command) -> &[std::path::PathBuf] {
    match command {
        Command::Verify(a) => &a.age.age_identity,
        Command::Plan(a) => &a.age.age_identity,
        Command::Apply(a) => &a.age.age_identity,
        Command::Audit(a) => &a.age.age_identity,
        Command::Pull(a) => &a.age.age_identity,
        _ => &[],
    }
}

/// `--trust` keys, given only to the commands that read bundles.
fn trusted_keys(command: &Command) -> &[String] {
    match command {
        Command::Verify(a) => &a.trust.trust,
        Command::Plan(a) => &a.trust.trust,
        Command::Apply(a) => &a.trust.trust,
        Command::Audit(a) => &a.trust.trust,
        Command::Pull(a) => &a.trust.trust,
        _ => &[],
    }
}

fn is_broken_pipe(report: &miette::Report) -> bool {
    report
        .downcast_ref::<crate::printer::PipeClosed>()
        .is_some()
}
