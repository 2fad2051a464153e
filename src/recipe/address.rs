//! Resource addresses: `TYPE.NAME`, e.g. `service.httpd`.

pub use crate::resources::registry::ResourceType;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// `TYPE.NAME`: how resources are named everywhere (plans, `--replace`, DOT).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    pub kind: ResourceType,
    pub name: String,
}

impl Address {
    pub fn new(kind: ResourceType, name: impl Into<String>) -> Address {
        Address {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind, self.name)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("`{0}` is not a resource address; expected TYPE.NAME, e.g. service.httpd")]
    Malformed(String),
    #[error("`{0}` is not a resource type ({kinds})", kinds = ResourceType::keywords())]
    UnknownType(String),
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Address, AddressError> {
        let (kind, name) = s
            .split_once('.')
            .filter(|(k, n)| !k.is_empty() && is_identifier(n))
            .ok_or_else(|| AddressError::Malformed(s.to_string()))?;
        let kind = ResourceType::from_keyword(kind)
            .ok_or_else(|| AddressError::UnknownType(kind.into()))?;
        Ok(Address::new(kind, name))
    }
}

impl Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// HCL identifiers: a letter or `_`, then letters, digits, `_` or `-`.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_addresses() {
        let a: Address = "remote_service.chroma_agent".parse().unwrap();
        assert_eq!(a.kind.as_str(), "remote_service");
        assert_eq!(a.to_string(), "remote_service.chroma_agent");
        assert!(matches!(
            "svc.x".parse::<Address>(),
            Err(AddressError::UnknownType(_))
        ));
        assert!(matches!(
            "service".parse::<Address>(),
            Err(AddressError::Malformed(_))
        ));
        assert!(matches!(
            "service.".parse::<Address>(),
            Err(AddressError::Malformed(_))
        ));
    }
}
