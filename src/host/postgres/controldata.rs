//! The system identifier of a server older than 9.6 (no
//! `pg_control_system()`): `pg_controldata` on its data directory, run as
//! the recipe's `run_as` (the data directory is that user's, mode 0700).

use std::path::{Path, PathBuf};

use super::error::{PgError, Result};
use super::process::{find_program, run_checked};
use super::version::{dir_for_major, local_server, major_of};
use super::PgTarget;

/// `pg_controldata DATA_DIR`'s "Database system identifier". The program of
/// the server's own major is preferred; the identifier is the first field
/// of pg_control in every version, so another major's still reads it (with
/// a warning about the layout, which is ignored).
pub(crate) fn system_identifier(
    target: &PgTarget,
    data_dir: &Path,
    server_version_num: u32,
) -> Result<String> {
    if data_dir.as_os_str().is_empty() {
        return Err(unexpected(
            target,
            "the server did not say its data_directory",
        ));
    }
    let server_bin = local_server(target).and_then(|s| s.bin_dir);
    let dir: Option<PathBuf> = dir_for_major(
        &major_of(server_version_num),
        &["pg_controldata"],
        server_bin.as_deref(),
    )
    .or_else(|| {
        find_program(target.bin_dir.as_deref(), "pg_controldata")
            .or_else(|_| find_program(None, "pg_controldata"))
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
    });
    let Some(dir) = dir else {
        return Err(PgError::ProgramNotFound {
            program: "pg_controldata".into(),
            searched: "the server's own directory, /usr/lib/postgresql/*/bin, \
                       /usr/pgsql-*/bin, $PATH (a server older than 9.6 reports its \
                       system identifier only through pg_controldata)"
                .into(),
        });
    };
    let runner = PgTarget {
        bin_dir: Some(dir),
        ..target.clone()
    };
    let mut cmd = runner.raw_command("pg_controldata")?;
    cmd.arg(data_dir);
    let doing = format!(
        "reading the system identifier of {} (the server is older than 9.6)",
        data_dir.display()
    );
    let out = run_checked(cmd, target, &doing, None)?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_identifier(&text).ok_or_else(|| unexpected(target, &text))
}

fn parse_identifier(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.strip_prefix("Database system identifier:")?.trim();
        (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())).then(|| v.to_string())
    })
}

fn unexpected(target: &PgTarget, output: &str) -> PgError {
    PgError::UnexpectedOutput {
        program: "pg_controldata".into(),
        target: target.to_string(),
        doing: "reading the cluster's system identifier".into(),
        output: output.chars().take(2000).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifier_line_is_found() {
        let out = "pg_control version number:            1002\n\
                   Catalog version number:               201707211\n\
                   Database system identifier:           6905419264537157662\n";
        assert_eq!(
            parse_identifier(out).as_deref(),
            Some("6905419264537157662")
        );
        assert_eq!(parse_identifier("nothing"), None);
    }
}
