//! `database "x" { superuser, host?, port?, run_as?, databases?, quiesce }`:
//! the whole PostgreSQL cluster as one `pg_dumpall --clean` dump.

use super::{CaptureCx, CaptureError, Captured};
use crate::recipe::{Address, DatabaseSpec};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DatabaseError {
    #[error("{address}: database capture is not available in this build")]
    Unavailable { address: Address },
}

pub fn capture(
    _cx: &mut CaptureCx,
    address: &Address,
    _spec: &DatabaseSpec,
) -> Result<Captured, CaptureError> {
    Err(DatabaseError::Unavailable {
        address: address.clone(),
    }
    .into())
}
