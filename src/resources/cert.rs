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
