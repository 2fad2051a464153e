//! Authentication: ssh-agent first, then the identity file, whose
//! passphrase comes from the caller, the environment, or a person asked
//! through the [`PassphrasePrompt`] the views install.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ssh2::Session;

use super::connect::is_timeout;
use super::errors::human;
use super::{SshError, SshTarget, PASSPHRASE_ENV};

/// ssh-agent first, then the identity file. Each attempt is recorded so the
/// error can say exactly what was offered.
pub(super) fn authenticate(
    session: &Session,
    target: &SshTarget,
    endpoint: &str,
) -> Result<(), SshError> {
    let user = target.user.as_str();
    let mut tried = Vec::new();

    if let Some(socket) = &target.agent_socket {
        match try_agent(session, user, socket) {
            Ok(()) => return Ok(()),
            Err(what) => tried.push(what),
        }
    }

    if let Some(identity) = &target.identity_file {
        let from_env = std::env::var(PASSPHRASE_ENV).ok().filter(|p| !p.is_empty());
        let passphrase = target.passphrase.as_deref().or(from_env.as_deref());
        if !identity.exists() {
            tried.push(format!(
                "identity file {} (it does not exist)",
                identity.display()
            ));
        } else {
            match session.userauth_pubkey_file(user, None, identity, passphrase) {
                Ok(()) if session.authenticated() => return Ok(()),
                Ok(()) => tried.push(format!(
                    "identity file {} (not accepted)",
                    identity.display()
                )),
                Err(e) if is_timeout(&e) => {
                    tried.push(format!(
                        "identity file {} (timed out after {})",
                        identity.display(),
                        human(&target.connect_timeout)
                    ));
                }
                Err(e) => tried.push(format!(
                    "identity file {}{} (rejected: {})",
                    identity.display(),
                    if passphrase.is_some() {
                        " with passphrase"
                    } else {
                        ""
                    },
                    e.message()
                )),
            }
        }
    }

    if tried.is_empty() {
        tried.push("nothing: no ssh-agent (SSH_AUTH_SOCK unset) and no identity file given".into());
    }
    Err(SshError::Auth {
        endpoint: endpoint.to_string(),
        user: user.to_string(),
        tried,
    })
}

fn try_agent(session: &Session, user: &str, socket: &Path) -> Result<(), String> {
    let where_ = socket.display();
    let mut agent = session
        .agent()
        .map_err(|e| format!("ssh-agent at {where_} (unavailable: {})", e.message()))?;
    agent
        .set_identity_path(socket)
        .map_err(|e| format!("ssh-agent at {where_} (unusable path: {})", e.message()))?;
    agent
        .connect()
        .map_err(|e| format!("ssh-agent at {where_} (cannot connect: {})", e.message()))?;
    let result = (|| {
        agent
            .list_identities()
            .map_err(|e| format!("ssh-agent at {where_} (cannot list keys: {})", e.message()))?;
        let identities = agent
            .identities()
            .map_err(|e| format!("ssh-agent at {where_} (cannot list keys: {})", e.message()))?;
        if identities.is_empty() {
            return Err(format!("ssh-agent at {where_} (it holds no keys)"));
        }
        for id in &identities {
            if agent.userauth(user, id).is_ok() && session.authenticated() {
                return Ok(());
            }
        }
        Err(format!(
            "ssh-agent at {where_} ({} key(s), none accepted)",
            identities.len()
        ))
    })();
    let _ = agent.disconnect();
    result
}

/// Does this private key file need a passphrase? OpenSSH's own format
/// names its cipher (`none` when clear); PEM keys say `ENCRYPTED`.
pub fn key_is_encrypted(path: &Path) -> io::Result<bool> {
    let text = std::fs::read_to_string(path)?;
    if text.contains("ENCRYPTED") {
        return Ok(true);
    }
    let Some(body) = text
        .split("-----BEGIN OPENSSH PRIVATE KEY-----")
        .nth(1)
        .and_then(|rest| rest.split("-----END").next())
    else {
        return Ok(false);
    };
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let raw = openssl::base64::decode_block(&b64).map_err(io::Error::other)?;
    // "openssh-key-v1\0", then a length-prefixed cipher name.
    let rest = raw.strip_prefix(b"openssh-key-v1\0").unwrap_or(&[]);
    let len = rest
        .get(..4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    Ok(rest.get(4..4 + len).is_some_and(|cipher| cipher != b"none"))
}

/// Asks a person for an identity file's passphrase. The host boundary never
/// talks to a terminal itself: `views::prompt` installs the one that does.
pub trait PassphrasePrompt: Send + Sync {
    /// The passphrase of `path`, or `None` when nobody can be asked.
    fn ask(&self, path: &Path) -> Option<String>;
}

static PROMPT: OnceLock<Box<dyn PassphrasePrompt>> = OnceLock::new();

/// Installs the prompt [`prompt_passphrase`] asks through (the first one
/// installed stays).
pub fn set_passphrase_prompt(prompt: Box<dyn PassphrasePrompt>) {
    let _ = PROMPT.set(prompt);
}

/// The passphrase for an encrypted identity file when none is in
/// [`PASSPHRASE_ENV`]: asked once per file through the installed
/// [`PassphrasePrompt`] (the first host to need it asks; the others wait for
/// the answer), never without one.
pub fn prompt_passphrase(path: &Path) -> Option<String> {
    type Cache = std::sync::Mutex<std::collections::HashMap<PathBuf, Option<String>>>;
    static ASKED: OnceLock<Cache> = OnceLock::new();
    if std::env::var_os(PASSPHRASE_ENV).is_some_and(|v| !v.is_empty()) {
        return None;
    }
    if !key_is_encrypted(path).unwrap_or(false) {
        return None;
    }
    let mut cache = ASKED.get_or_init(Default::default).lock().ok()?;
    if let Some(known) = cache.get(path) {
        return known.clone();
    }
    let answer = PROMPT.get().and_then(|p| p.ask(path));
    cache.insert(path.to_path_buf(), answer.clone());
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_encrypted_keys_from_clear_ones() {
        let dir = tempfile::tempdir().unwrap();
        for (name, kind, pass, encrypted) in [
            ("clear_ed", "ed25519", "", false),
            ("locked_ed", "ed25519", "s3cret", true),
            ("clear_rsa", "rsa", "", false),
            ("locked_rsa", "rsa", "s3cret", true),
        ] {
            let key = dir.path().join(name);
            let out = std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", kind, "-N", pass, "-f"])
                .arg(&key)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "ssh-keygen: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(key_is_encrypted(&key).unwrap(), encrypted, "{name}");
        }
        // A legacy PEM key with a passphrase.
        let pem = dir.path().join("locked_pem");
        let out = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "rsa", "-m", "PEM", "-N", "s3cret", "-f"])
            .arg(&pem)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(key_is_encrypted(&pem).unwrap());
    }

    #[test]
    fn the_installed_prompt_is_asked_once_per_encrypted_key() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static ASKED: AtomicUsize = AtomicUsize::new(0);
        struct Counting;
        impl PassphrasePrompt for Counting {
            fn ask(&self, _: &Path) -> Option<String> {
                ASKED.fetch_add(1, Ordering::SeqCst);
                Some("s3cret".into())
            }
        }
        set_passphrase_prompt(Box::new(Counting));
        let dir = tempfile::tempdir().unwrap();
        for (name, pass) in [("locked", "s3cret"), ("clear", "")] {
            let out = std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", pass, "-f"])
                .arg(dir.path().join(name))
                .output()
                .unwrap();
            assert!(out.status.success());
        }
        let locked = dir.path().join("locked");
        assert_eq!(prompt_passphrase(&locked).as_deref(), Some("s3cret"));
        assert_eq!(prompt_passphrase(&locked).as_deref(), Some("s3cret"));
        assert_eq!(prompt_passphrase(&dir.path().join("clear")), None);
        assert_eq!(ASKED.load(Ordering::SeqCst), 1);
    }
}
