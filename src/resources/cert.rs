//! `cert "x" { cert, key, serial?, ca? }`: an X.509 certificate and its key.

use super::{CaptureCx, CaptureError, Captured};
use crate::bundle::ResourceRecord;
use crate::recipe::{Address, CertSpec};

/// Captures certificate, key (always sensitive) and serial file; all are
/// required: agents trust these exact files. Checking them is `verify`'s job.
pub fn capture(
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
