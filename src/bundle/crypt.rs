//! Encryption at rest with the age format (<https://age-encryption.org>).
//!
//! `backup` encrypts sensitive entries (with `--encrypt-all` every entry and
//! the dump) to the recipe's `recipients` and `--recipient`s; the stored
//! file is `NAME.age` (or its parts), a standard age file that
//! `age -d -i KEY` decrypts too. Every command that reads a bundle decrypts
//! transparently with the identities of the global `--age-identity FILE`
//! (or `IMLRECOVER_AGE_IDENTITY`), loaded once by [`load_identities`].

use super::split::PartsReader;
use super::{Bundle, Stored};
use age::{Identity, Recipient};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The environment variable naming the identity file (like `--age-identity`).
pub const IDENTITY_ENV: &str = "IMLRECOVER_AGE_IDENTITY";
/// Suffix of an encrypted file in the bundle.
pub const AGE_SUFFIX: &str = ".age";

struct Loaded {
    files: Vec<PathBuf>,
    identities: Vec<Box<dyn Identity + Send + Sync>>,
}

static IDENTITIES: OnceLock<Loaded> = OnceLock::new();

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CryptError {
    #[error("`{value}` is not an age recipient: {reason}")]
    #[diagnostic(
        code(imlrecover::age::recipient),
        help("an age recipient is the public key `age1…` printed by `age-keygen` (keep the secret key file off this host)")
    )]
    Recipient { value: String, reason: String },

    #[error("cannot use the age identity file {}: {message}", path.display())]
    #[diagnostic(
        code(imlrecover::age::identity),
        help("pass a file made by `age-keygen` (lines `AGE-SECRET-KEY-1…`) with --age-identity or IMLRECOVER_AGE_IDENTITY")
    )]
    IdentityFile { path: PathBuf, message: String },

    #[error("--encrypt-all needs at least one recipient")]
    #[diagnostic(
        code(imlrecover::age::no_recipient),
        help("add `recipients = [\"age1…\"]` to the recipe's `imlrecover` block or pass --recipient age1…")
    )]
    NoRecipients,

    #[error("{bundle} holds {} age-encrypted file{} and no age identity was given; cannot read:\n{}", .entries.len(), if .entries.len() == 1 { "" } else { "s" }, .entries.join("\n"))]
    #[diagnostic(
        code(imlrecover::age::locked),
        help("pass --age-identity FILE (or set IMLRECOVER_AGE_IDENTITY=FILE) with the secret key of one of: {recipients}")
    )]
    Locked {
        bundle: String,
        entries: Vec<String>,
        recipients: String,
    },

    #[error("the age identity in {files} does not decrypt {} file{} of {bundle}:\n{}", .entries.len(), if .entries.len() == 1 { "" } else { "s" }, .entries.join("\n"))]
    #[diagnostic(
        code(imlrecover::age::wrong_identity),
        help("the bundle was encrypted to {recipients}; pass the identity file holding one of those keys")
    )]
    WrongIdentity {
        files: String,
        bundle: String,
        entries: Vec<String>,
        recipients: String,
    },
}

/// Loads the identity files once for the whole process.
pub fn load_identities(paths: &[PathBuf]) -> Result<(), CryptError> {
    if paths.is_empty() || IDENTITIES.get().is_some() {
        return Ok(());
    }
    let mut identities = Vec::new();
    for path in paths {
        let err = |message: String| CryptError::IdentityFile {
            path: path.clone(),
            message,
        };
        let file = age::IdentityFile::from_file(path.display().to_string())
            .map_err(|e| err(e.to_string()))?;
        let mut ids = file.into_identities().map_err(|e| err(e.to_string()))?;
        if ids.is_empty() {
            return Err(err("it holds no identity".into()));
        }
        identities.append(&mut ids);
    }
    let _ = IDENTITIES.set(Loaded {
        files: paths.to_vec(),
        identities,
    });
    Ok(())
}

/// The identity files given (`--age-identity`, `IMLRECOVER_AGE_IDENTITY`).
pub fn identity_paths() -> Vec<PathBuf> {
    IDENTITIES
        .get()
        .map(|l| l.files.clone())
        .unwrap_or_default()
}

/// Whether an identity was given.
pub fn have_identity() -> bool {
    IDENTITIES.get().is_some()
}

pub fn identity_files() -> String {
    IDENTITIES
        .get()
        .map(|l| {
            l.files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// Parses recipients (`age1…`, X25519), refusing anything else.
pub fn recipients(list: &[String]) -> Result<Vec<Box<dyn Recipient + Send>>, CryptError> {
    list.iter()
        .map(|r| {
            r.trim()
                .parse::<age::x25519::Recipient>()
                .map(|r| Box::new(r) as Box<dyn Recipient + Send>)
                .map_err(|e| CryptError::Recipient {
                    value: r.clone(),
                    reason: e.to_string(),
                })
        })
        .collect()
}

/// An age writer to `recipients` around `out`; call `finish` at the end.
pub fn encrypt_to<W: Write>(
    recipients: &[Box<dyn Recipient + Send>],
    out: W,
) -> io::Result<age::stream::StreamWriter<W>> {
    let enc =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r.as_ref() as &dyn Recipient))
            .map_err(|e| io::Error::other(format!("age: {e}")))?;
    enc.wrap_output(out)
}

/// Why a stored file cannot be read.
#[derive(Debug)]
pub enum OpenFail {
    /// Encrypted, and no identity was given.
    NoIdentity,
    /// The identities given do not open it.
    NoMatch,
    Other(String),
}

/// The plaintext of a stored file: its parts chained, then decrypted.
pub fn open_stored(bundle: &Bundle, stored: &Stored) -> Result<Box<dyn Read + Send>, OpenFail> {
    let parts = PartsReader::new(&bundle.dir, &stored.parts);
    if !stored.encrypted {
        return Ok(Box::new(parts));
    }
    let loaded = IDENTITIES.get().ok_or(OpenFail::NoIdentity)?;
    let dec = age::Decryptor::new(io::BufReader::with_capacity(1 << 20, parts))
        .map_err(|e| OpenFail::Other(format!("not a readable age file: {e}")))?;
    match dec.decrypt(
        loaded
            .identities
            .iter()
            .map(|i| i.as_ref() as &dyn Identity),
    ) {
        Ok(r) => Ok(Box::new(r)),
        Err(age::DecryptError::NoMatchingKeys) => Err(OpenFail::NoMatch),
        Err(e) => Err(OpenFail::Other(e.to_string())),
    }
}

/// The encrypted files of a bundle, as `plain name (host path)`.
fn encrypted_entries(bundle: &Bundle) -> Vec<(String, String)> {
    let m = &bundle.manifest;
    m.stored
        .iter()
        .filter(|(_, s)| s.encrypted)
        .map(|(rel, s)| {
            let host = m
                .entries
                .iter()
                .find(|e| e.file.as_deref() == Some(rel.as_str()))
                .map(|e| e.path.clone())
                .unwrap_or_else(|| "the database dump".to_string());
            let stored = s.parts.first().map(|p| p.file.clone()).unwrap_or_default();
            (rel.clone(), format!("  {stored} ({host})"))
        })
        .collect()
}

/// For commands that must read everything (`plan`, `apply`): every
/// encrypted file opens with the identity given. Only the age headers are
/// read. Lists exactly the files that cannot be read.
pub fn check_readable(bundle: &Bundle) -> Result<(), CryptError> {
    let encrypted = encrypted_entries(bundle);
    if encrypted.is_empty() {
        return Ok(());
    }
    let recipients = if bundle.manifest.recipients.is_empty() {
        "(not recorded)".to_string()
    } else {
        bundle.manifest.recipients.join(", ")
    };
    if !have_identity() {
        return Err(CryptError::Locked {
            bundle: bundle.dir.display().to_string(),
            entries: encrypted.into_iter().map(|(_, l)| l).collect(),
            recipients,
        });
    }
    let mut failed = Vec::new();
    for (rel, line) in encrypted {
        let Some(stored) = bundle.manifest.stored.get(&rel) else {
            continue;
        };
        match open_stored(bundle, stored) {
            Ok(_) => {}
            Err(OpenFail::NoMatch) | Err(OpenFail::NoIdentity) => failed.push(line),
            // Damage is reported where the file is read, with its path.
            Err(OpenFail::Other(_)) => {}
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CryptError::WrongIdentity {
            files: identity_files(),
            bundle: bundle.dir.display().to_string(),
            entries: failed,
            recipients,
        })
    }
}

/// The message for a file that cannot be opened.
pub fn describe(rel: &str, fail: &OpenFail) -> String {
    match fail {
        OpenFail::NoIdentity => format!(
            "{rel} is encrypted with age and no identity was given (--age-identity FILE or {IDENTITY_ENV})"
        ),
        OpenFail::NoMatch => format!(
            "{rel} is encrypted with age to another key: the identity in {} does not decrypt it",
            identity_files()
        ),
        OpenFail::Other(m) => format!("{rel}: {m}"),
    }
}
