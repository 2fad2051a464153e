//! Certificates in a bundle: each key matches its certificate, and a
//! certificate with a `ca` verifies against that CA's.

use super::{Problem, ProblemKind};
use crate::bundle::read::Bundle;
use crate::bundle::{Entry, EntryKind, ResourceRecord, MANIFEST};
use crate::recipe::Address;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use std::collections::BTreeMap;
use std::io::Read;

/// Each `cert`: the key matches the certificate, and a certificate with a
/// `ca` verifies against that CA's certificate. Expiry is not checked here:
/// a bundle stays what it was; `plan` reports expiry.
pub(super) fn check_certs(bundle: &Bundle) -> (Vec<Problem>, Vec<String>) {
    let m = &bundle.manifest;
    let entry = |address: &Address, path: &str| -> Option<&Entry> {
        m.entries
            .iter()
            .find(|e| &e.address == address && e.path == path && e.kind == EntryKind::File)
    };
    let mut problems = Vec::new();
    let mut confirmed = Vec::new();
    let mut certs: BTreeMap<&Address, X509> = BTreeMap::new();
    for r in &m.resources {
        let ResourceRecord::Cert {
            address, cert, key, ..
        } = r
        else {
            continue;
        };
        let (Some(ce), Some(ke)) = (entry(address, cert), entry(address, key)) else {
            problems.push(
                Problem::new(
                    MANIFEST,
                    ProblemKind::Manifest,
                    format!("no captured files for {cert} and {key}"),
                )
                .at(address),
            );
            continue;
        };
        let Some((crt_rel, x509)) = load(bundle, ce, address, &mut problems, X509::from_pem) else {
            continue;
        };
        certs.insert(address, x509.clone());
        let Some((key_rel, pkey)) = load(bundle, ke, address, &mut problems, |b| {
            PKey::<Private>::private_key_from_pem(b)
        }) else {
            continue;
        };
        if crate::x509::key_matches(&x509, &pkey) {
            confirmed.push(format!("{address}: the key matches the certificate"));
        } else {
            problems.push(
                Problem::new(
                    key_rel,
                    ProblemKind::Cert,
                    format!("this private key does not belong to the certificate {crt_rel}"),
                )
                .at(address),
            );
        }
    }
    for r in &m.resources {
        let ResourceRecord::Cert {
            address,
            cert,
            ca: Some(ca),
            ..
        } = r
        else {
            continue;
        };
        let (Some(leaf), Some(ca_cert)) = (certs.get(address), certs.get(ca)) else {
            if !certs.contains_key(ca) && !m.resources.iter().any(|r| r.address() == ca) {
                problems.push(
                    Problem::new(
                        MANIFEST,
                        ProblemKind::Manifest,
                        format!("its CA {ca} is not in the bundle"),
                    )
                    .at(address),
                );
            }
            continue;
        };
        if let Err(why) = crate::x509::verify_chain(leaf, ca_cert) {
            let rel = entry(address, cert)
                .and_then(|e| e.file.clone())
                .unwrap_or_else(|| cert.clone());
            problems.push(
                Problem::new(
                    rel,
                    ProblemKind::Cert,
                    format!("does not verify against {ca}'s certificate: {why}"),
                )
                .at(address),
            );
        } else {
            confirmed.push(format!(
                "{address}: the certificate verifies against {ca}'s"
            ));
        }
    }
    (problems, confirmed)
}

fn load<T>(
    bundle: &Bundle,
    e: &Entry,
    address: &Address,
    problems: &mut Vec<Problem>,
    parse: impl Fn(&[u8]) -> Result<T, openssl::error::ErrorStack>,
) -> Option<(String, T)> {
    let rel = e.file.clone()?;
    // Missing, unsafe or sealed files were already reported by their entry.
    let mut bytes = Vec::new();
    bundle
        .open_file(&rel)
        .ok()?
        .take(1 << 20)
        .read_to_end(&mut bytes)
        .ok()?;
    match parse(&bytes) {
        Ok(v) => Some((rel, v)),
        Err(_) => {
            problems.push(
                Problem::new(
                    rel,
                    ProblemKind::Cert,
                    format!("{} is not PEM that OpenSSL can read", e.path),
                )
                .at(address),
            );
            None
        }
    }
}
