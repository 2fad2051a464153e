//! `cert "x" { cert, key, serial?, ca? }`: an X.509 certificate and its key.

use super::kind::{Audited, Named, Phase};
use super::{CaptureCx, CaptureError, Captured};
use crate::bundle::ResourceRecord;
use crate::recipe::{Address, BlockSchema, BlockValues, EdgeKind, ErrorKind, RefTarget};

/// An X.509 certificate and its key, optionally signed by another `cert`.
#[derive(Debug, Clone)]
pub struct CertSpec {
    pub cert: String,
    pub key: String,
    pub serial: Option<String>,
    pub ca: Option<Address>,
}

/// Captures certificate, key (always sensitive) and serial file; all are
/// required: agents trust these exact files. Checking them is `verify`'s job.
fn capture(
    cx: &mut CaptureCx,
    address: &Address,
    spec: &CertSpec,
) -> Result<Captured, CaptureError> {
    let mut done = Captured::default();
    let cert = cx.capture_path(address, &spec.cert, false, false)?;
    let key = cx.capture_path(address, &spec.key, true, false)?;
    let serial = match &spec.serial {
        Some(s) => Some(cx.capture_path(address, s, false, false)?),
        None => None,
    };
    cx.bundle.push_resource(ResourceRecord::Cert {
        address: address.clone(),
        cert: cert.path.clone(),
        key: key.path.clone(),
        serial: serial.as_ref().map(|s| s.path.clone()),
        ca: spec.ca.clone(),
    });
    for e in [Some(cert), Some(key), serial].into_iter().flatten() {
        done.add(&e);
        cx.bundle.push_entry(e);
    }
    Ok(done)
}

/// Planning a `cert`: the live certificate, key (and serial) against the
/// bundle's, with the evidence an administrator checks.
pub struct CertKind;

#[derive(Debug, serde::Serialize)]
pub struct Observed {
    pub cert: super::content::Seen,
    pub key: super::content::Seen,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<super::content::Seen>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<crate::x509::CertInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_matches: Option<bool>,
    /// "verified", or why the chain to the `ca` does not verify.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
}

fn read_live(cx: &super::kind::Cx, path: &str) -> Option<Vec<u8>> {
    use std::io::Read;
    let (file, _) = cx.root.open(path).ok()??;
    let mut buf = Vec::new();
    file.take(1 << 20).read_to_end(&mut buf).ok()?;
    Some(buf)
}

impl super::kind::Kind for CertKind {
    type Spec = CertSpec;
    const KEYWORD: &'static str = "cert";
    const SCHEMA: BlockSchema = BlockSchema {
        attrs: &[
            ("cert", true),
            ("key", true),
            ("serial", false),
            ("ca", false),
            ("notify", false),
            ("depends_on", false),
        ],
        blocks: &[],
    };
    const PHASE: Phase = Phase::Files(crate::plan::Op::Restore);
    const CAPTURES: bool = true;
    const AUDIT: Option<Suite> = Some(Suite::Certificates);

    fn decode(b: &mut BlockValues) -> Option<CertSpec> {
        let cert = b.path("cert");
        let key = b.path("key");
        let serial = b.path("serial");
        let mut ca = None;
        if b.has("ca") {
            let mut ca_refs =
                b.addresses("ca", EdgeKind::Reference, |k| k.as_str() == Self::KEYWORD);
            if b.is_list("ca") || ca_refs.len() > 1 {
                b.invalid(
                    "ca",
                    ErrorKind::WrongType,
                    "`ca` takes one cert address, e.g. ca = cert.authority".into(),
                    "not a single address",
                );
            } else if let Some(r) = ca_refs.pop() {
                if let RefTarget::Resource(addr) = &r.target {
                    ca = Some(addr.clone());
                }
                b.reference(r);
            }
        }
        Some(CertSpec {
            cert: cert?,
            key: key?,
            serial,
            ca,
        })
    }

    fn capture(
        &self,
        cx: &mut CaptureCx,
        address: &Address,
        spec: &CertSpec,
    ) -> Result<Captured, CaptureError> {
        capture(cx, address, spec)
    }

    fn audit(
        &self,
        address: &Address,
        spec: &CertSpec,
        i: &Inputs,
        out: &mut Audited,
    ) -> Result<(), AuditError> {
        audit(i, address, spec, out)
    }

    fn named(spec: &CertSpec, out: &mut Named) {
        use crate::bundle::normalize;
        out.paths.push(normalize(&spec.cert));
        out.paths.push(normalize(&spec.key));
        if let Some(serial) = &spec.serial {
            out.paths.push(normalize(serial));
        }
    }

    fn owns_entry(spec: &CertSpec, entry: &crate::bundle::Entry) -> Result<(), String> {
        use crate::bundle::normalize;
        let path = normalize(&entry.path);
        let own = [Some(&spec.cert), Some(&spec.key), spec.serial.as_ref()]
            .into_iter()
            .flatten()
            .any(|p| normalize(p) == path);
        if own {
            Ok(())
        } else {
            Err(format!(
                "{path} is not its cert {}, key {} or serial",
                spec.cert, spec.key
            ))
        }
    }
    type Observed = Observed;

    fn observe(
        &self,
        address: &Address,
        spec: &CertSpec,
        cx: &super::kind::Cx,
    ) -> Result<Observed, super::kind::ResourceError> {
        use super::content::observe;
        use crate::bundle::normalize;
        let cert = observe(address, &normalize(&spec.cert), cx)?;
        let key = observe(address, &normalize(&spec.key), cx)?;
        let serial = spec
            .serial
            .as_ref()
            .map(|s| observe(address, &normalize(s), cx))
            .transpose()?;
        let x509 = read_live(cx, &cert.path).and_then(|b| crate::x509::parse_cert(&b).ok());
        let pkey = read_live(cx, &key.path).and_then(|b| crate::x509::parse_key(&b).ok());
        let key_matches = match (&x509, &pkey) {
            (Some(c), Some(k)) => Some(crate::x509::key_matches(c, k)),
            _ => None,
        };
        let ca_cert =
            spec.ca
                .as_ref()
                .and_then(|ca| match cx.recipe.resource(ca).map(|r| &r.spec) {
                    Some(crate::recipe::Spec::Cert(c)) => read_live(cx, &normalize(&c.cert))
                        .and_then(|b| crate::x509::parse_cert(&b).ok()),
                    _ => None,
                });
        let chain = match (&x509, &ca_cert, &spec.ca) {
            (Some(leaf), Some(ca), Some(_)) => Some(match crate::x509::verify_chain(leaf, ca) {
                Ok(()) => "verified".to_string(),
                Err(e) => e,
            }),
            (Some(_), None, Some(ca)) => Some(format!(
                "cannot check: {ca}'s certificate is missing or unreadable"
            )),
            _ => None,
        };
        Ok(Observed {
            info: x509.as_ref().map(crate::x509::info),
            cert,
            key,
            serial,
            key_matches,
            chain,
        })
    }

    fn compare(
        &self,
        address: &Address,
        spec: &CertSpec,
        seen: &Observed,
        cx: &super::kind::Cx,
    ) -> Result<super::kind::Verdict, super::kind::ResourceError> {
        use super::content::{self, Overrides};
        use super::kind::Verdict;
        use crate::plan::Action;
        let mut pairs = vec![(&seen.cert, false), (&seen.key, true)];
        if let Some(s) = &seen.serial {
            pairs.push((s, false));
        }
        let mut files = Vec::new();
        for (s, secret) in pairs {
            let Some(e) = content::entry(cx, address, &s.path) else {
                return Ok(Verdict::no_op(
                    cx.bundle.manifest.why_missing(address),
                    serde_json::Value::Null,
                ));
            };
            let o = Overrides {
                sensitive: secret,
                diff: false,
                ..Default::default()
            };
            files.push(content::compare(cx, address, e, s, o)?);
        }
        let bundle_info = content::entry(cx, address, &seen.cert.path)
            .and_then(|e| e.file.as_deref())
            // Through open_file: the copy may be stored encrypted or split.
            .and_then(|rel| cx.bundle.open_file(rel).ok())
            .and_then(|f| {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut std::io::Read::take(f, 1 << 20), &mut b).ok()?;
                Some(b)
            })
            .and_then(|b| crate::x509::parse_cert(&b).ok())
            .map(|c| crate::x509::info(&c));
        let mut details = Vec::new();
        match &seen.info {
            Some(i) => {
                details.push(format!("live:   {} (sha256 {})", i.subject, i.sha256));
                details.push(format!(
                    "        expires {} ({} days)",
                    i.not_after, i.days_left
                ));
            }
            None if seen.cert.exists => details.push("live:   not a readable certificate".into()),
            None => details.push("live:   missing".into()),
        }
        if let Some(b) = &bundle_info {
            details.push(format!("bundle: {} (sha256 {})", b.subject, b.sha256));
        }
        match seen.key_matches {
            Some(true) => details.push("live key matches the live certificate".into()),
            Some(false) => details.push("live key does NOT match the live certificate".into()),
            None => {}
        }
        if let (Some(chain), Some(ca)) = (&seen.chain, &spec.ca) {
            details.push(format!("chain to {ca}: {chain}"));
        }
        let after = serde_json::json!({
            "cert": seen.cert.path,
            "sha256": bundle_info.as_ref().map(|b| b.sha256.clone()),
        });
        let differ: Vec<&str> = files
            .iter()
            .filter(|f| f.action != Action::NoOp)
            .map(|f| f.path.as_str())
            .collect();
        let mut v = if differ.is_empty() {
            Verdict::no_op("certificate, key and serial match the bundle", after)
        } else {
            Verdict::new(
                Action::Restore,
                format!(
                    "{} {} from the bundle",
                    differ.join(", "),
                    if differ.len() == 1 {
                        "differs"
                    } else {
                        "differ"
                    }
                ),
                after,
            )
        };
        v.details = details;
        v.files = files;
        v.sensitive = true;
        Ok(v)
    }

    fn apply(
        &self,
        address: &Address,
        _spec: &CertSpec,
        _step: &crate::plan::Step,
        change: &crate::plan::ResourceChange,
        cx: &super::kind::ApplyCx,
    ) -> Result<super::kind::Applied, super::kind::ResourceError> {
        super::content::apply_files(cx, address, &change.files, Default::default())
    }
}

// The audit's certificate checks.

use crate::audit::checks::{read_live as read_host, AuditError, Inputs};
use crate::audit::{check, CertExpiry, Finding, Status, Suite};
use crate::bundle::normalize;

/// Expiry, key match and chain of a `cert`, on the live files (what
/// agents see today), not on the bundle's copies.
fn audit(i: &Inputs, a: &Address, spec: &CertSpec, out: &mut Audited) -> Result<(), AuditError> {
    let cert_path = normalize(&spec.cert);
    let finding =
        |check, status, msg: String| Finding::new(Suite::Certificates, check, status, msg).at(a);
    let cert = match read_host(i.root, &cert_path)? {
        None => {
            out.findings.push(
                Finding::fail(
                    Suite::Certificates,
                    check::CERT_EXPIRY,
                    format!("no certificate at {cert_path}: cannot check expiry, key or chain"),
                )
                .at(a)
                .path(cert_path),
            );
            return Ok(());
        }
        Some(pem) => match crate::x509::parse_cert(&pem) {
            Ok(c) => c,
            Err(e) => {
                out.findings.push(
                    Finding::fail(
                        Suite::Certificates,
                        check::CERT_EXPIRY,
                        format!("{cert_path}: {e}: cannot check expiry, key or chain"),
                    )
                    .at(a)
                    .path(cert_path),
                );
                return Ok(());
            }
        },
    };
    let info = crate::x509::info(&cert);
    let days = info.days_left;
    if let Some(not_after) = unix_time(cert.not_after()) {
        out.certs.push(CertExpiry {
            address: a.to_string(),
            path: cert_path.clone(),
            not_after,
            days_left: days,
        });
    }
    let min = i64::from(i.cert_min_days);
    use Status::{Fail, Pass};
    out.findings.push(
        if days < 0 {
            finding(
                check::CERT_EXPIRY,
                Fail,
                format!(
                    "expired {} days ago (not after {}): renew it",
                    -days, info.not_after
                ),
            )
        } else if days < min {
            finding(
                check::CERT_EXPIRY,
                Fail,
                format!(
                    "expires in {days} days (not after {}), within --cert-min-days {}: renew it",
                    info.not_after, i.cert_min_days
                ),
            )
        } else {
            finding(
                check::CERT_EXPIRY,
                Pass,
                format!("expires in {days} days (not after {})", info.not_after),
            )
        }
        .path(cert_path.clone()),
    );
    out.findings.push(key_check(i, a, spec)?);
    if let Some(ca) = &spec.ca {
        out.findings.push(chain_check(i, a, ca, &cert, &cert_path)?);
    }
    Ok(())
}

/// An ASN.1 time as seconds since the epoch.
fn unix_time(t: &openssl::asn1::Asn1TimeRef) -> Option<i64> {
    let epoch = openssl::asn1::Asn1Time::from_unix(0).ok()?;
    let d = epoch.diff(t).ok()?;
    Some(i64::from(d.days) * 86_400 + i64::from(d.secs))
}

fn key_check(i: &Inputs, a: &Address, spec: &CertSpec) -> Result<Finding, AuditError> {
    let key_path = normalize(&spec.key);
    let cert_path = normalize(&spec.cert);
    let f = |status, msg: String| {
        Finding::new(Suite::Certificates, check::CERT_KEY, status, msg)
            .at(a)
            .path(key_path.clone())
    };
    use Status::{Fail, Pass};
    let Some(pem) = read_host(i.root, &key_path)? else {
        return Ok(f(Fail, format!("no private key at {key_path}")));
    };
    let key = match crate::x509::parse_key(&pem) {
        Ok(k) => k,
        Err(e) => return Ok(f(Fail, format!("{key_path}: {e}"))),
    };
    // The cert was read a moment ago; re-read to keep this check self-contained.
    let cert = read_host(i.root, &cert_path)?.and_then(|b| crate::x509::parse_cert(&b).ok());
    Ok(match cert {
        Some(c) if crate::x509::key_matches(&c, &key) => f(Pass, format!("{key_path} is the key of {cert_path}")),
        Some(_) => f(
            Fail,
            format!("{key_path} is not the private key of {cert_path}: the services using it will fail their TLS handshakes"),
        ),
        None => f(Fail, format!("{cert_path} cannot be read any more")),
    })
}

fn chain_check(
    i: &Inputs,
    a: &Address,
    ca: &Address,
    cert: &openssl::x509::X509,
    cert_path: &str,
) -> Result<Finding, AuditError> {
    use Status::{Fail, Pass};
    let f = |status, msg: String| {
        Finding::new(Suite::Certificates, check::CERT_CHAIN, status, msg)
            .at(a)
            .path(cert_path)
    };
    let ca_path = match i.recipe.resource(ca).map(|r| &r.spec) {
        Some(crate::recipe::Spec::Cert(s)) => normalize(&s.cert),
        // The recipe loader rejects a `ca` that is not a cert; be safe anyway.
        _ => {
            return Ok(f(
                Fail,
                format!("its ca {ca} is not a cert resource of this recipe"),
            ))
        }
    };
    let Some(pem) = read_host(i.root, &ca_path)? else {
        return Ok(f(
            Fail,
            format!("the authority certificate of {ca} is missing ({ca_path})"),
        ));
    };
    let ca_cert = match crate::x509::parse_cert(&pem) {
        Ok(c) => c,
        Err(e) => {
            return Ok(f(
                Fail,
                format!("the authority certificate of {ca} ({ca_path}): {e}"),
            ))
        }
    };
    Ok(match crate::x509::verify_chain(cert, &ca_cert) {
        Ok(()) => f(Pass, format!("verifies against {ca} ({ca_path})")),
        Err(e) => f(
            Fail,
            format!("does not verify against {ca} ({ca_path}): {e}; agents that trust the authority will reject it"),
        ),
    })
}
