//! The manager's certificate chain made the way IML's installer makes it,
//! with the real `openssl` program: a self-signed authority, and a manager
//! certificate signed by it with `-CAcreateserial` (which writes
//! `authority.srl`).

use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {} failed: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Writes authority.{pem,crt,srl} and manager.{pem,crt} into `dir`;
/// `tag` goes into the subjects so two chains are told apart.
pub fn make_chain(dir: &Path, tag: &str, days: u32) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let days = days.to_string();
    openssl(dir, &["genrsa", "-out", "authority.pem", "2048"])?;
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-x509",
            "-key",
            "authority.pem",
            "-out",
            "authority.crt",
            "-days",
            &days,
            "-subj",
            &format!("/O=IML sandbox {tag}/CN=authority"),
        ],
    )?;
    openssl(dir, &["genrsa", "-out", "manager.pem", "2048"])?;
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "manager.pem",
            "-out",
            "manager.csr",
            "-subj",
            &format!("/O=IML sandbox {tag}/CN=manager"),
        ],
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "manager.csr",
            "-CA",
            "authority.crt",
            "-CAkey",
            "authority.pem",
            "-CAcreateserial",
            "-out",
            "manager.crt",
            "-days",
            &days,
        ],
    )?;
    let _ = std::fs::remove_file(dir.join("manager.csr"));
    for key in ["authority.pem", "manager.pem"] {
        std::fs::set_permissions(
            dir.join(key),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .map_err(|e| format!("{key}: {e}"))?;
    }
    Ok(())
}
