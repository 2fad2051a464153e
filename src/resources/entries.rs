//! The bundle's entries by (address, path), looked up by every kind that
//! compares files.

use crate::bundle::Entry;
use crate::recipe::Address;

/// The bundle's entries by (resource, path): looked up once per file, so a
/// `files` set of thousands stays linear.
pub struct EntryIndex<'a> {
    map: std::collections::HashMap<(&'a Address, &'a str), &'a Entry>,
}

impl<'a> EntryIndex<'a> {
    pub fn new(manifest: &'a crate::bundle::Manifest) -> EntryIndex<'a> {
        EntryIndex {
            map: manifest
                .entries
                .iter()
                .map(|e| ((&e.address, e.path.as_str()), e))
                .collect(),
        }
    }

    pub fn get(&self, address: &Address, path: &str) -> Option<&'a Entry> {
        self.map.get(&(address, path)).copied()
    }
}
