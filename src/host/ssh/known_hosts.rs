//! OpenSSH `known_hosts` verification, implemented here rather than with
//! libssh2's `KnownHosts`.
//!
//! Why not libssh2: it matches a line without `[host]:port` for *every* port,
//! so a key pinned for `oss1` (port 22) would silently vouch for whatever
//! answers on `oss1:2222`. An administrator expects OpenSSH's rules, which is
//! what this module implements:
//!
//! * The name looked up is `host` for port 22 and `[host]:port` for any other
//!   port, lower-cased. **A line without a port only covers port 22**; for
//!   another port the file needs a `[host]:port` line (that is what
//!   `ssh-keyscan -p PORT HOST` writes). As a harmless extension, `[host]:22`
//!   is also accepted for port 22.
//! * Host fields are comma-separated patterns with `*` and `?` wildcards; a
//!   pattern starting with `!` that matches excludes the line.
//! * Hashed host fields (`|1|base64(salt)|base64(HMAC-SHA1(salt, name))`, as
//!   written by `ssh-keygen -H` or `HashKnownHosts yes`) are supported.
//! * `@revoked` lines reject the key they name; `@cert-authority` lines are
//!   ignored (host certificates are not supported).
//! * Lines that cannot be parsed are skipped, as OpenSSH does.

use std::io;
use std::path::{Path, PathBuf};

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

/// The SHA-256 fingerprint of a raw public key blob, exactly as OpenSSH
/// prints it (`ssh-keygen -lf`, `ssh -v`): `SHA256:` followed by the
/// unpadded base64 of the digest.
pub fn fingerprint_sha256(key_blob: &[u8]) -> String {
    let digest = openssl::sha::sha256(key_blob);
    let b64 = openssl::base64::encode_block(&digest);
    format!("SHA256:{}", b64.trim_end_matches('='))
}

/// The algorithm name embedded at the start of an SSH public key blob
/// (`ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`, ...).
pub fn key_type_of_blob(blob: &[u8]) -> Option<String> {
    let len_bytes: [u8; 4] = blob.get(..4)?.try_into().ok()?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    let name = blob.get(4..4usize.checked_add(len)?)?;
    String::from_utf8(name.to_vec()).ok()
}

/// The name OpenSSH looks up in known_hosts for `host` on `port`.
pub fn lookup_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// The names that vouch for `host:port` (see the module documentation).
fn accepted_names(host: &str, port: u16) -> Vec<String> {
    let mut names = vec![lookup_name(host, port)];
    if port == 22 {
        names.push(format!("[{}]:22", host.to_ascii_lowercase()));
    }
    names
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

#[derive(Debug, Clone)]
enum HostField {
    /// `|1|salt|hash`
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
    /// comma-separated patterns, lower-cased
    Patterns(Vec<String>),
}

#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    marker: Marker,
    hosts: HostField,
    key_type: String,
    key_blob: Vec<u8>,
}

/// A parsed known_hosts file.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    path: PathBuf,
    exists: bool,
    entries: Vec<Entry>,
}

/// The outcome of checking a presented host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A line for this host carries exactly this key.
    Trusted { line: usize },
    /// Lines exist for this host but none carries this key.
    Mismatch { lines: Vec<usize> },
    /// An `@revoked` line names this key.
    Revoked { line: usize },
    /// No line covers this host and port. `portless_lines` lists lines that
    /// name the bare host (port 22 only) when a non-22 port was asked for,
    /// so the error can explain why they did not count.
    Unknown { portless_lines: Vec<usize> },
}

impl KnownHosts {
    /// Reads and parses `path`. A missing file is an empty file (every host
    /// is then unknown, and the error says the file does not exist); any
    /// other read error is returned.
    pub fn load(path: &Path) -> io::Result<KnownHosts> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(KnownHosts::parse(path, &String::from_utf8_lossy(&bytes))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(KnownHosts {
                path: path.to_path_buf(),
                exists: false,
                entries: Vec::new(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Parses the text of a known_hosts file; `path` is only kept for messages.
    pub fn parse(path: &Path, text: &str) -> KnownHosts {
        let entries = text
            .lines()
            .enumerate()
            .filter_map(|(i, line)| parse_line(i + 1, line))
            .collect();
        KnownHosts {
            path: path.to_path_buf(),
            exists: true,
            entries,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// False when the file did not exist.
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// Key algorithms recorded for `host:port`, in file order, so the
    /// handshake can prefer a key type we can actually verify (OpenSSH does
    /// the same).
    pub fn known_key_types(&self, host: &str, port: u16) -> Vec<String> {
        let names = accepted_names(host, port);
        let mut types: Vec<String> = Vec::new();
        for e in &self.entries {
            if e.marker == Marker::None
                && names.iter().any(|n| host_matches(&e.hosts, n))
                && !types.contains(&e.key_type)
            {
                types.push(e.key_type.clone());
            }
        }
        types
    }

    /// Checks the key `host:port` presented against the file.
    pub fn check(&self, host: &str, port: u16, key_blob: &[u8]) -> Verdict {
        let names = accepted_names(host, port);
        let mut matching_lines = Vec::new();
        let mut trusted = None;
        for e in &self.entries {
            if !names.iter().any(|n| host_matches(&e.hosts, n)) {
                continue;
            }
            match e.marker {
                Marker::Revoked if e.key_blob == key_blob => {
                    return Verdict::Revoked { line: e.line }
                }
                Marker::None => {
                    if e.key_blob == key_blob {
                        trusted.get_or_insert(e.line);
                    } else {
                        matching_lines.push(e.line);
                    }
                }
                Marker::Revoked | Marker::CertAuthority => {}
            }
        }
        if let Some(line) = trusted {
            return Verdict::Trusted { line };
        }
        if !matching_lines.is_empty() {
            return Verdict::Mismatch {
                lines: matching_lines,
            };
        }
        let portless_lines = if port == 22 {
            Vec::new()
        } else {
            let bare = host.to_ascii_lowercase();
            self.entries
                .iter()
                .filter(|e| e.marker == Marker::None && host_matches(&e.hosts, &bare))
                .map(|e| e.line)
                .collect()
        };
        Verdict::Unknown { portless_lines }
    }
}

fn parse_line(line_no: usize, line: &str) -> Option<Entry> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        m if m.starts_with('@') => return None,
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = fields.next()?;
    }
    let key_type = fields.next()?.to_string();
    let key_blob = openssl::base64::decode_block(fields.next()?).ok()?;
    // A blob whose embedded type disagrees with the type field is corrupt.
    if key_type_of_blob(&key_blob).as_deref() != Some(key_type.as_str()) {
        return None;
    }
    let hosts = if let Some(rest) = first.strip_prefix("|1|") {
        let (salt, hash) = rest.split_once('|')?;
        HostField::Hashed {
            salt: openssl::base64::decode_block(salt).ok()?,
            hash: openssl::base64::decode_block(hash).ok()?,
        }
    } else if first.starts_with('|') {
        return None; // unknown hash scheme
    } else {
        HostField::Patterns(
            first
                .split(',')
                .filter(|p| !p.is_empty())
                .map(str::to_ascii_lowercase)
                .collect(),
        )
    };
    Some(Entry {
        line: line_no,
        marker,
        hosts,
        key_type,
        key_blob,
    })
}

fn host_matches(field: &HostField, name: &str) -> bool {
    match field {
        HostField::Hashed { salt, hash } => match hmac_sha1(salt, name.as_bytes()) {
            Some(mac) => mac.len() == hash.len() && openssl::memcmp::eq(&mac, hash),
            None => false,
        },
        HostField::Patterns(patterns) => {
            let mut positive = false;
            for p in patterns {
                if let Some(negated) = p.strip_prefix('!') {
                    if wildcard_match(negated.as_bytes(), name.as_bytes()) {
                        return false;
                    }
                } else if wildcard_match(p.as_bytes(), name.as_bytes()) {
                    positive = true;
                }
            }
            positive
        }
    }
}

fn hmac_sha1(key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    let pkey = PKey::hmac(key).ok()?;
    let mut signer = Signer::new(MessageDigest::sha1(), &pkey).ok()?;
    signer.sign_oneshot_to_vec(data).ok()
}

/// `*` matches any run of characters, `?` exactly one (OpenSSH's
/// `match_pattern`). Iterative with backtracking to the last `*`, so it
/// cannot blow up on hostile patterns.
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    // Generated with ssh-keygen (OpenSSH 9.2): the key, its `ssh-keygen -lf`
    // fingerprint, and `ssh-keygen -H` hashes of `[127.0.0.5]:2222` and
    // `oss1.example.com`.
    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAINBKvz6TBHdzf9UbxqLLq5F0MogNCKzMM/pjv70/aSMJ";
    const FP: &str = "SHA256:+69N5h0hEMW4J6i+utk5O5r9kMGvG974uMPGDQ+1SOU";
    const HASHED_PORT: &str = "|1|uD/+BvPG7ZxBkCzlo3Q5Y2ur6jc=|FCi4YeOvN55bK/TToV87fh/KPZQ=";
    const HASHED_NAME: &str = "|1|52+cDq4aqJu2BYhAdSHKuW6b65I=|NWQpmveJMBZQAlrfu9yMvRQbSUI=";
    const OTHER_KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIFXD+STRCpb4CeV+SKdI4C4jJHclSma6X9oj+u7X7GAI";

    fn blob(k: &str) -> Vec<u8> {
        openssl::base64::decode_block(k).unwrap_or_default()
    }

    fn kh(text: &str) -> KnownHosts {
        KnownHosts::parse(Path::new("/k"), text)
    }

    #[test]
    fn fingerprint_matches_ssh_keygen() {
        assert_eq!(fingerprint_sha256(&blob(KEY)), FP);
        assert_eq!(key_type_of_blob(&blob(KEY)).as_deref(), Some("ssh-ed25519"));
    }

    #[test]
    fn hashed_entries_match_only_their_name_and_port() {
        let k = kh(&format!(
            "{HASHED_PORT} ssh-ed25519 {KEY}\n{HASHED_NAME} ssh-ed25519 {KEY}\n"
        ));
        assert_eq!(
            k.check("127.0.0.5", 2222, &blob(KEY)),
            Verdict::Trusted { line: 1 }
        );
        assert_eq!(
            k.check("OSS1.example.com", 22, &blob(KEY)),
            Verdict::Trusted { line: 2 }
        );
        assert!(matches!(
            k.check("127.0.0.5", 2223, &blob(KEY)),
            Verdict::Unknown { .. }
        ));
        assert!(matches!(
            k.check("oss1.example.com", 2222, &blob(KEY)),
            Verdict::Unknown { .. }
        ));
        assert_eq!(
            k.check("127.0.0.5", 2222, &blob(OTHER_KEY)),
            Verdict::Mismatch { lines: vec![1] }
        );
    }

    #[test]
    fn portless_line_covers_port_22_only() {
        let k = kh(&format!("# comment\n\noss1,oss2 ssh-ed25519 {KEY}\n"));
        assert_eq!(
            k.check("oss2", 22, &blob(KEY)),
            Verdict::Trusted { line: 3 }
        );
        assert_eq!(
            k.check("oss2", 2222, &blob(KEY)),
            Verdict::Unknown {
                portless_lines: vec![3]
            }
        );
        let k = kh(&format!(
            "[oss1]:2222 ssh-ed25519 {KEY}\n[oss1]:22 ssh-ed25519 {OTHER_KEY}\n"
        ));
        assert_eq!(
            k.check("oss1", 2222, &blob(KEY)),
            Verdict::Trusted { line: 1 }
        );
        assert_eq!(
            k.check("oss1", 22, &blob(OTHER_KEY)),
            Verdict::Trusted { line: 2 }
        );
    }

    #[test]
    fn wildcards_negation_revocation_and_junk() {
        let k = kh(&format!(
            "garbage line\n|2|x|y ssh-ed25519 {KEY}\noss? ssh-rsa {KEY}\n\
             @revoked * ssh-ed25519 {OTHER_KEY}\n*.lustre,!mds*.lustre ssh-ed25519 {KEY}\n"
        ));
        assert_eq!(
            k.check("oss7.lustre", 22, &blob(KEY)),
            Verdict::Trusted { line: 5 }
        );
        assert!(matches!(
            k.check("mds1.lustre", 22, &blob(KEY)),
            Verdict::Unknown { .. }
        ));
        assert_eq!(
            k.check("oss7.lustre", 22, &blob(OTHER_KEY)),
            Verdict::Revoked { line: 4 }
        );
        // line 3 claims ssh-rsa for an ed25519 blob: skipped as corrupt
        assert!(matches!(
            k.check("oss1", 22, &blob(KEY)),
            Verdict::Unknown { .. }
        ));
        assert_eq!(
            k.known_key_types("oss7.lustre", 22),
            vec!["ssh-ed25519".to_string()]
        );
    }

    #[test]
    fn wildcard_matcher() {
        for (p, t, want) in [
            ("*", "", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("?ss1", "oss1", true),
            ("[oss1]:*", "[oss1]:2222", true),
            ("oss1", "oss10", false),
        ] {
            assert_eq!(
                wildcard_match(p.as_bytes(), t.as_bytes()),
                want,
                "{p} vs {t}"
            );
        }
    }
}
