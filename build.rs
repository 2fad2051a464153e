//! Build facts for `imlrecover --version`: git revision, target, glibc floor.

use std::process::Command;

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=IMLRECOVER_GIT_REVISION");
    println!("cargo:rerun-if-env-changed=IMLRECOVER_GLIBC_FLOOR");
    // Rebuild when HEAD or the branch it names moves (worktrees included).
    if let Some(p) = run("git", &["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={p}");
    }
    if let Some(branch) = run("git", &["symbolic-ref", "-q", "HEAD"]) {
        if let Some(p) = run("git", &["rev-parse", "--git-path", &branch]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    let rev = std::env::var("IMLRECOVER_GIT_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| run("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    // dist/build says which glibc it links against; a plain cargo build
    // links against the build host's own, the floor is then that version.
    let glibc = match std::env::var("IMLRECOVER_GLIBC_FLOOR") {
        Ok(v) if !v.is_empty() => format!("{v} (portable build)"),
        _ => match run("getconf", &["GNU_LIBC_VERSION"]) {
            Some(v) => format!(
                "{} (the build host's; use dist/build for EL7/EL6)",
                v.trim_start_matches("glibc ")
            ),
            None => "unknown".into(),
        },
    };
    let linkage = if std::env::var_os("CARGO_FEATURE_PORTABLE").is_some() {
        "OpenSSL, libssh2, zlib built in; needs only glibc"
    } else {
        "the build host's libssl, libcrypto"
    };
    println!("cargo:rustc-env=IMLRECOVER_LINKAGE={linkage}");
    println!("cargo:rustc-env=IMLRECOVER_GIT_REVISION={rev}");
    println!("cargo:rustc-env=IMLRECOVER_TARGET={target}");
    println!("cargo:rustc-env=IMLRECOVER_GLIBC_FLOOR={glibc}");
}
