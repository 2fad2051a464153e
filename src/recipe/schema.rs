//! Which attributes and nested blocks each block type accepts; a resource
//! kind's own is its `Kind::SCHEMA` (`src/resources/`).

use crate::resources::registry::ResourceType;

#[derive(Debug, Clone, Copy)]
pub struct BlockSchema {
    /// (attribute, required)
    pub attrs: &'static [(&'static str, bool)],
    /// (nested block, required)
    pub blocks: &'static [(&'static str, bool)],
}

pub const VARIABLE: BlockSchema = BlockSchema {
    attrs: &[
        ("default", false),
        ("description", false),
        ("sensitive", false),
    ],
    blocks: &[],
};

pub const SETTINGS: BlockSchema = BlockSchema {
    attrs: &[
        ("services", false),
        ("recipients", false),
        ("sign_key", false),
        ("trust", false),
    ],
    blocks: &[],
};

/// Block types that may appear at the top level, for suggestions.
pub fn top_level() -> Vec<&'static str> {
    let mut all = vec!["variable", "imlrecover"];
    all.extend(ResourceType::ALL.iter().map(|k| k.as_str()));
    all
}
