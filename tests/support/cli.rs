//! Runs the built `imlrecover` binary the way a user would, with a fixed,
//! colourless environment so that output can be snapshot-tested.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixtures() -> PathBuf {
    repo().join("fixtures")
}

/// A fluent builder around one invocation.
pub struct Imlrecover {
    cmd: Command,
}

/// What a user sees: exit code and both streams.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Imlrecover {
    pub fn new() -> Imlrecover {
        Imlrecover::from_command(Command::new(env!("CARGO_BIN_EXE_imlrecover")))
    }

    /// The same environment around a prepared command (another binary, a
    /// seccomp filter: support::oldkernel).
    pub fn from_command(mut cmd: Command) -> Imlrecover {
        cmd.current_dir(repo())
            .env("NO_COLOR", "1")
            .env("LANG", "C.UTF-8")
            .env_remove("CLICOLOR_FORCE")
            .env_remove("TERM");
        Imlrecover { cmd }
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.arg(arg);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    /// Started, not waited for (to be killed or raced); stdout and stderr piped.
    pub fn spawn(self) -> std::process::Child {
        self.spawn_to(std::process::Stdio::piped)
    }

    /// Started, not waited for, its output thrown away (nothing need read it).
    pub fn spawn_silent(self) -> std::process::Child {
        self.spawn_to(std::process::Stdio::null)
    }

    fn spawn_to(mut self, stdio: fn() -> std::process::Stdio) -> std::process::Child {
        self.cmd
            .stdout(stdio())
            .stderr(stdio())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run imlrecover: {e}"))
    }

    pub fn run(mut self) -> Output {
        let out = self
            .cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run imlrecover: {e}"));
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Output {
    #[track_caller]
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{}",
            self.stdout
        );
        self
    }
}
