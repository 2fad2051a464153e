//! Signed bundles: `backup --sign-key` (or the recipe's `sign_key`) signs
//! `manifest.json` — which holds every entry's blake3 — with ed25519, into
//! `manifest.sig` beside it. With `--trust` (or the recipe's `trust`), every
//! command that reads a bundle refuses one that is unsigned, signed by
//! another key, or whose manifest changed after signing ([`check`], called
//! from [`super::check`]). Without trust, nothing changes.
//!
//! Keys are what an administrator already makes: `ssh-keygen -t ed25519`
//! (OpenSSH format; the only ed25519 tool on EL7) or `openssl genpkey
//! -algorithm ed25519` (PKCS#8 PEM, OpenSSL 1.1.1+). The signature is an
//! OpenSSH SSHSIG (namespace [`NAMESPACE`]), so `ssh-keygen -Y verify` can
//! check it independently of imlrecover.

use super::read::{open_regular, Bundle};
use super::verify::{Problem, ProblemKind};
use super::MANIFEST;
use crate::host::fs::Root;
use crate::recipe::Recipe;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The signature file in a bundle directory.
pub const SIGNATURE: &str = "manifest.sig";
/// The SSHSIG namespace: a signature made for something else (a git
/// commit, a file signed with `-n file`) never passes as a bundle's.
pub const NAMESPACE: &str = "imlrecover-bundle";
/// Key and signature files are a few hundred bytes.
const KEY_CAP: u64 = 64 << 10;
/// As `read`'s limit for a manifest.
const MANIFEST_CAP: u64 = 1 << 30;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SignError {
    #[error("cannot read the signing key {}: {message}", path.display())]
    #[diagnostic(
        code(imlrecover::sign::key),
        help("pass an unencrypted ed25519 private key: `ssh-keygen -t ed25519 -N '' -f FILE` or `openssl genpkey -algorithm ed25519 -out FILE` (README \"Signed bundles\")")
    )]
    Key { path: PathBuf, message: String },
    #[error("the signing key {} is readable by others (mode {mode:04o})", path.display())]
    #[diagnostic(
        code(imlrecover::sign::key_mode),
        help("whoever reads it can sign bundles: `chmod 600 {}`", path.display())
    )]
    KeyMode { path: PathBuf, mode: u32 },
    #[error("the signing key {} is inside the bundle directory {}", path.display(), bundle_dir.display())]
    #[diagnostic(
        code(imlrecover::sign::key_on_store),
        help("keep the signing key off the backup store (e.g. /etc/imlrecover/sign.key, mode 0600): whoever can write bundles must not be able to sign them")
    )]
    KeyOnStore { path: PathBuf, bundle_dir: PathBuf },
    #[error("the recipe captures the signing key {path}: it would be stored in the bundle")]
    #[diagnostic(
        code(imlrecover::sign::key_captured),
        help("exclude the key from the recipe's files, or keep it elsewhere; nothing was written")
    )]
    KeyCaptured { path: String },
    #[error("--trust {arg}: {message}")]
    #[diagnostic(
        code(imlrecover::sign::trust),
        help("--trust takes an ed25519 public key: a file such as sign.key.pub (`ssh-ed25519 AAAA…`) or sign.pub.pem (`openssl pkey -pubout`), or the `ssh-ed25519 AAAA…` line itself")
    )]
    Trust { arg: String, message: String },
    #[error("cannot sign the manifest: {0}")]
    #[diagnostic(code(imlrecover::sign::sign))]
    Sign(String),
}

/// The private key `backup` signs with.
pub struct Signer {
    key: PrivateKey,
    /// The file it was read from (canonical).
    pub path: PathBuf,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.fingerprint())
    }
}

impl Signer {
    /// Reads an unencrypted ed25519 key: OpenSSH (`ssh-keygen`) or PKCS#8
    /// PEM (`openssl genpkey`). Refuses a key others can read, as ssh does.
    pub fn load(path: &Path) -> Result<Signer, SignError> {
        let err = |message: String| SignError::Key {
            path: path.to_path_buf(),
            message,
        };
        let real = std::fs::canonicalize(path).map_err(|e| err(e.to_string()))?;
        let file = open_regular(&real).map_err(|e| err(e.to_string()))?;
        let mode = file
            .metadata()
            .map_err(|e| err(e.to_string()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(SignError::KeyMode {
                path: path.to_path_buf(),
                mode: mode & 0o7777,
            });
        }
        let mut text = String::new();
        file.take(KEY_CAP)
            .read_to_string(&mut text)
            .map_err(|_| err("it is not a text key file".into()))?;
        let key = parse_private(&text).map_err(err)?;
        Ok(Signer { key, path: real })
    }

    /// `sign_key` of the recipe (a path under `--root`), else `--sign-key`.
    pub fn for_backup(
        cli: Option<&Path>,
        recipe: &Recipe,
        root: &Root,
    ) -> Result<Option<Signer>, miette::Report> {
        let path = match (cli, &recipe.settings.sign_key) {
            (Some(p), _) => p.to_path_buf(),
            (None, Some(p)) => root.path(p)?,
            (None, None) => return Ok(None),
        };
        Ok(Some(Signer::load(&path)?))
    }

    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }

    pub fn public_key(&self) -> &PublicKey {
        self.key.public_key()
    }

    /// The armored SSHSIG of `manifest` (the bytes written to manifest.json).
    pub fn sign(&self, manifest: &[u8]) -> Result<String, SignError> {
        self.key
            .sign(NAMESPACE, HashAlg::Sha512, manifest)
            .and_then(|s| s.to_pem(LineEnding::LF))
            .map_err(|e| SignError::Sign(e.to_string()))
    }

    /// Refuses a key kept inside the bundle directory.
    pub fn check_off_store(&self, bundle_dir: &Path) -> Result<(), SignError> {
        let dir = std::fs::canonicalize(bundle_dir).unwrap_or_else(|_| bundle_dir.to_path_buf());
        if self.path.starts_with(&dir) {
            return Err(SignError::KeyOnStore {
                path: self.path.clone(),
                bundle_dir: dir,
            });
        }
        Ok(())
    }

    /// The key's path as the recipe would name it under `root`, if inside.
    pub fn host_path(&self, root: &Path) -> Option<String> {
        let root = std::fs::canonicalize(root).ok()?;
        let rel = self.path.strip_prefix(&root).ok()?;
        Some(format!("/{}", rel.display()))
    }
}

/// What `backup` says of signing: by which key, or why the recipe's own
/// `trust` will refuse this bundle.
pub fn backup_note(signer: Option<&Signer>, recipe: &Recipe) -> Option<String> {
    let trust = trusted(Some(recipe));
    match signer {
        Some(s) if trust.is_empty() || trust.iter().any(|k| k.key_data() == s.public_key().key_data()) => {
            Some(format!("signed: {SIGNATURE} (ed25519 {})", s.fingerprint()))
        }
        Some(s) => Some(format!(
            "warning: signed by {}, which is not in the recipe's `trust`: plan and apply with this recipe will refuse the bundle",
            s.fingerprint()
        )),
        None if !recipe.settings.trust.is_empty() => Some(
            "warning: not signed (no --sign-key or sign_key), but the recipe's `trust` requires a signature: plan and apply with this recipe will refuse the bundle".into(),
        ),
        None => None,
    }
}

fn parse_private(text: &str) -> Result<PrivateKey, String> {
    if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
        let key = PrivateKey::from_openssh(text.trim())
            .map_err(|e| format!("not an OpenSSH private key ({e})"))?;
        if key.is_encrypted() {
            return Err("it is protected by a passphrase; backup runs unattended, so use a key without one (ssh-keygen -N '') and protect the file instead (mode 0600, root only)".into());
        }
        if key.algorithm() != ssh_key::Algorithm::Ed25519 {
            return Err(format!(
                "it is a {} key; bundles are signed with ed25519 (ssh-keygen -t ed25519)",
                key.algorithm()
            ));
        }
        return Ok(key);
    }
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err("it is encrypted; backup runs unattended, so use a key without a passphrase and protect the file instead (mode 0600, root only)".into());
    }
    if text.contains("-----BEGIN PRIVATE KEY-----") {
        let sk = ed25519_dalek::SigningKey::from_pkcs8_pem(text.trim()).map_err(|e| {
            format!("not an ed25519 PKCS#8 key ({e}); make one with `openssl genpkey -algorithm ed25519`")
        })?;
        return Ok(PrivateKey::from(ssh_key::private::Ed25519Keypair::from(sk)));
    }
    Err("it is not a private key file (expected `-----BEGIN OPENSSH PRIVATE KEY-----` or `-----BEGIN PRIVATE KEY-----`)".into())
}

/// Public keys in `text`: `ssh-ed25519 AAAA… comment` lines (a `.pub` file,
/// `#` comments allowed) or one `-----BEGIN PUBLIC KEY-----` PEM block.
pub fn parse_public(text: &str) -> Result<Vec<PublicKey>, String> {
    let text = text.trim_start_matches('\u{feff}');
    if text.contains("-----BEGIN PUBLIC KEY-----") {
        let vk = ed25519_dalek::VerifyingKey::from_public_key_pem(text.trim()).map_err(|e| {
            format!("not an ed25519 public key ({e}); make it with `openssl pkey -in KEY -pubout`")
        })?;
        let data = ssh_key::public::Ed25519PublicKey::from(vk);
        return Ok(vec![PublicKey::from(data)]);
    }
    let mut keys = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = PublicKey::from_openssh(line).map_err(|_| {
            let shown: String = line.chars().take(40).collect();
            format!("`{shown}` is not an OpenSSH public key line (`ssh-ed25519 AAAA… comment`)")
        })?;
        if key.algorithm() != ssh_key::Algorithm::Ed25519 {
            return Err(format!(
                "{} keys are not accepted; bundles are signed with ed25519",
                key.algorithm()
            ));
        }
        keys.push(key);
    }
    if keys.is_empty() {
        return Err("it holds no public key".into());
    }
    Ok(keys)
}

/// One `--trust` value: a key file, or the `ssh-ed25519 …` line itself.
pub fn read_trust(arg: &str) -> Result<Vec<PublicKey>, SignError> {
    let err = |message: String| SignError::Trust {
        arg: arg.to_string(),
        message,
    };
    if arg.trim_start().starts_with("ssh-") || arg.contains("-----BEGIN") {
        return parse_public(arg).map_err(err);
    }
    let path = Path::new(arg);
    let file = std::fs::canonicalize(path)
        .and_then(|p| open_regular(&p))
        .map_err(|e| err(e.to_string()))?;
    let mut text = String::new();
    file.take(KEY_CAP)
        .read_to_string(&mut text)
        .map_err(|_| err("it is not a text key file".into()))?;
    if text.contains("PRIVATE KEY-----") {
        return Err(err(
            "it is a private key; give the public key (sign.key.pub, or `openssl pkey -in KEY -pubout`) and keep the private key on the manager".into(),
        ));
    }
    parse_public(&text).map_err(err)
}

static CLI_TRUST: OnceLock<Vec<PublicKey>> = OnceLock::new();

/// Loads `--trust` once for the whole process (as `--age-identity`).
pub fn load_trust(args: &[String]) -> Result<(), SignError> {
    if args.is_empty() || CLI_TRUST.get().is_some() {
        return Ok(());
    }
    let mut keys = Vec::new();
    for a in args {
        keys.extend(read_trust(a)?);
    }
    let _ = CLI_TRUST.set(keys);
    Ok(())
}

/// The keys a bundle must be signed by: `--trust` and the recipe's `trust`.
/// Empty: signatures are not required.
pub fn trusted(recipe: Option<&Recipe>) -> Vec<PublicKey> {
    let mut keys: Vec<PublicKey> = CLI_TRUST.get().cloned().unwrap_or_default();
    if let Some(r) = recipe {
        // Checked when the recipe was loaded; a bad one cannot reach here.
        for text in &r.settings.trust {
            keys.extend(parse_public(text).unwrap_or_default());
        }
    }
    keys
}

/// Whether `bundle` carries a valid signature by one of `trusted`: the
/// fingerprint of the key, or the problem (which says what to do).
pub fn check(bundle: &Bundle, trusted: &[PublicKey]) -> Result<String, Problem> {
    let problem = |message: String| Problem {
        path: SIGNATURE.to_string(),
        kind: ProblemKind::Signature,
        address: None,
        message,
    };
    let fingerprints = || {
        trusted
            .iter()
            .map(|k| k.fingerprint(HashAlg::Sha256).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sig_path = bundle.dir.join(SIGNATURE);
    if sig_path.symlink_metadata().is_err() {
        return Err(problem(format!(
            "the bundle is not signed, and a signature by a trusted key ({}) is required: anyone who can write to the backup store could have made it. Use a bundle made by `backup --sign-key` (or the recipe's sign_key)",
            fingerprints()
        )));
    }
    let read = |path: &Path| -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        open_regular(path)?
            .take(MANIFEST_CAP)
            .read_to_end(&mut bytes)?;
        Ok(bytes)
    };
    let sig = read(&sig_path).map_err(|e| problem(format!("cannot read the signature: {e}")))?;
    let sig = std::str::from_utf8(&sig)
        .ok()
        .and_then(|s| SshSig::from_pem(s.trim()).ok())
        .ok_or_else(|| {
            problem(
                "the signature file is damaged (not an SSH signature); use another bundle".into(),
            )
        })?;
    let by = sig.public_key().fingerprint(HashAlg::Sha256).to_string();
    let Some(key) = trusted.iter().find(|k| k.key_data() == sig.public_key()) else {
        return Err(problem(format!(
            "signed by the key {by}, which is not trusted (trusted: {}): the bundle was not made by your backup. Use another bundle, or add the key's public half to --trust if it is yours",
            fingerprints()
        )));
    };
    let tampered = || {
        problem(format!(
            "{MANIFEST} changed after it was signed by {by}: the bundle was altered on the backup store. Use another bundle"
        ))
    };
    let manifest = read(&bundle.dir.join(MANIFEST))
        .map_err(|e| problem(format!("cannot read {MANIFEST}: {e}")))?;
    key.verify(NAMESPACE, &manifest, &sig)
        .map_err(|_| tampered())?;
    // The bytes checked must be the manifest this command uses.
    let parsed: Option<super::Manifest> = serde_json::from_slice(&manifest).ok();
    if parsed.as_ref() != Some(&bundle.manifest) {
        return Err(tampered());
    }
    Ok(by)
}

/// The bundle's signature file, if it has one (for `push`).
pub fn read_signature(dir: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let path = dir.join(SIGNATURE);
    if path.symlink_metadata().is_err() {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    open_regular(&path)?.take(KEY_CAP).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// Largest signature file read from a remote store.
pub const SIGNATURE_CAP: u64 = KEY_CAP;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_and_openssh_public_keys_parse() {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let k = PrivateKey::from(ssh_key::private::Ed25519Keypair::from(&sk));
        let line = k.public_key().to_openssh().unwrap();
        let keys = parse_public(&format!("# ours\n{line}\n")).unwrap();
        assert_eq!(keys[0].key_data(), k.public_key().key_data());
        assert!(parse_public("ssh-rsa AAAAB3NzaC1yc2E").is_err());
        assert!(parse_public("").is_err());
    }
}
