//! Planning an InfluxDB resource: the live server's databases and counts
//! against what the bundle recorded at backup.

use super::InfluxdbSpec;
use crate::recipe::Address;
use crate::resources::kind::{Cx, ResourceError, Verdict};

#[derive(Debug, serde::Serialize)]
pub struct Observed {}

pub(super) fn observe(
    address: &Address,
    _spec: &InfluxdbSpec,
    _cx: &Cx,
) -> Result<Observed, ResourceError> {
    Err(ResourceError::new(address, "not implemented yet"))
}

pub(super) fn compare(
    address: &Address,
    _spec: &InfluxdbSpec,
    _seen: &Observed,
    _cx: &Cx,
) -> Result<Verdict, ResourceError> {
    Err(ResourceError::new(address, "not implemented yet"))
}
