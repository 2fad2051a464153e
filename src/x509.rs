//! Certificates as a person checks them: subject, SHA-256 fingerprint,
//! expiry, whether the key belongs to the certificate, whether it verifies
//! against its authority. Pure functions over PEM bytes (OpenSSL).

use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509NameRef, X509StoreContext, X509};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    /// `AB:CD:…`, as `openssl x509 -fingerprint -sha256` prints it.
    pub sha256: String,
    pub not_after: String,
    /// Days until expiry; negative once expired.
    pub days_left: i64,
}

pub fn parse_cert(pem: &[u8]) -> Result<X509, String> {
    X509::from_pem(pem).map_err(|_| "not a PEM certificate that OpenSSL can read".to_string())
}

pub fn parse_key(pem: &[u8]) -> Result<PKey<Private>, String> {
    PKey::private_key_from_pem(pem)
        .map_err(|_| "not a PEM private key that OpenSSL can read".to_string())
}

pub fn info(cert: &X509) -> CertInfo {
    let sha256 = cert
        .digest(MessageDigest::sha256())
        .map(|d| {
            d.iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":")
        })
        .unwrap_or_default();
    let serial = cert
        .serial_number()
        .to_bn()
        .and_then(|b| b.to_hex_str().map(|s| s.to_string()))
        .unwrap_or_default();
    let days_left = openssl::asn1::Asn1Time::days_from_now(0)
        .ok()
        .and_then(|now| now.diff(cert.not_after()).ok())
        .map_or(0, |d| i64::from(d.days));
    CertInfo {
        subject: name(cert.subject_name()),
        issuer: name(cert.issuer_name()),
        serial,
        sha256,
        not_after: cert.not_after().to_string(),
        days_left,
    }
}

fn name(n: &X509NameRef) -> String {
    n.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = String::from_utf8_lossy(e.data().as_slice()).into_owned();
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Does this private key belong to this certificate?
pub fn key_matches(cert: &X509, key: &PKey<Private>) -> bool {
    cert.public_key().is_ok_and(|public| public.public_eq(key))
}

/// Does `leaf` verify against `ca`? Time is not checked here: expiry is
/// reported separately, with the days left.
pub fn verify_chain(leaf: &X509, ca: &X509) -> Result<(), String> {
    let err = |e: openssl::error::ErrorStack| e.to_string();
    let mut store = X509StoreBuilder::new().map_err(err)?;
    store.add_cert(ca.clone()).map_err(err)?;
    store
        .set_flags(X509VerifyFlags::NO_CHECK_TIME)
        .map_err(err)?;
    let store = store.build();
    let chain = Stack::new().map_err(err)?;
    let mut ctx = X509StoreContext::new().map_err(err)?;
    ctx.init(&store, leaf, &chain, |c| {
        Ok(if c.verify_cert()? {
            Ok(())
        } else {
            Err(c.error().error_string().to_string())
        })
    })
    .map_err(err)?
}
