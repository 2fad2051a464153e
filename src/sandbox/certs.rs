//! The manager's certificate chain made the way IML's installer makes it,
//! with the real `openssl` program: a self-signed authority, and a manager
//! certificate signed by it with `-CAcreateserial` (which writes
//! `authority.srl`). The one certificate maker of the demo and the tests:
//! tests re-sign, replace or self-sign the manager certificate with it.

use std::path::Path;
use std::process::Command;

/// `openssl ARGS` run in `dir`; its stderr in the error.
pub fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
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
    sign_manager(dir, &format!("/O=IML sandbox {tag}/CN=manager"), &days)?;
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

/// `dir/manager.crt` for the key `dir/manager.pem` and `subject`, valid for
/// `days`, signed by `dir/authority.{crt,pem}` as IML does
/// (`-CAcreateserial`); leaves `manager.csr` behind.
fn sign_manager(dir: &Path, subject: &str, days: &str) -> Result<(), String> {
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
            subject,
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
            days,
        ],
    )
}

/// A new EC (P-256) private key at `dir/name`.
pub fn new_key(dir: &Path, name: &str) -> Result<(), String> {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-out",
            name,
        ],
    )
}

/// Replaces `dir/manager.{pem,crt}` with a new key and a certificate for
/// `subject` valid for `days`, signed by `dir/authority.{crt,pem}` as IML
/// does (`-CAcreateserial`).
pub fn resign_manager(dir: &Path, subject: &str, days: &str) -> Result<(), String> {
    new_key(dir, "manager.pem")?;
    sign_manager(dir, subject, days)?;
    std::fs::remove_file(dir.join("manager.csr")).map_err(|e| format!("manager.csr: {e}"))
}

/// Replaces `dir/manager.{pem,crt}` with a new key and a self-signed
/// certificate (one the authority never signed).
pub fn self_signed_manager(dir: &Path, subject: &str, days: &str) -> Result<(), String> {
    new_key(dir, "manager.pem")?;
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-key",
            "manager.pem",
            "-subj",
            subject,
            "-days",
            days,
            "-out",
            "manager.crt",
        ],
    )
}
