//! Which attributes and nested blocks each block type accepts.

use super::address::ResourceType;

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

pub const SSH: BlockSchema = BlockSchema {
    attrs: &[
        ("user", true),
        ("port", false),
        ("identity_file", false),
        ("known_hosts", true),
    ],
    blocks: &[],
};

/// Block types that may appear at the top level, for suggestions.
pub const TOP_LEVEL: &[&str] = &[
    "variable",
    "imlrecover",
    "file",
    "files",
    "absent",
    "cert",
    "database",
    "service",
    "exec",
    "remote_service",
];

pub fn resource(kind: ResourceType) -> BlockSchema {
    match kind {
        ResourceType::File => BlockSchema {
            attrs: &[
                ("path", true),
                ("mode", false),
                ("owner", false),
                ("group", false),
                ("sensitive", false),
                ("optional", false),
                ("notify", false),
                ("depends_on", false),
            ],
            blocks: &[],
        },
        ResourceType::Files => BlockSchema {
            attrs: &[
                ("glob", true),
                ("sensitive", false),
                ("optional", false),
                ("notify", false),
                ("depends_on", false),
            ],
            blocks: &[],
        },
        ResourceType::Absent => BlockSchema {
            attrs: &[("path", true), ("depends_on", false)],
            blocks: &[],
        },
        ResourceType::Cert => BlockSchema {
            attrs: &[
                ("cert", true),
                ("key", true),
                ("serial", false),
                ("ca", false),
                ("notify", false),
                ("depends_on", false),
            ],
            blocks: &[],
        },
        ResourceType::Database => BlockSchema {
            attrs: &[
                ("superuser", true),
                ("databases", false),
                ("host", false),
                ("port", false),
                ("run_as", false),
                ("bindir", false),
                ("quiesce", false),
                ("depends_on", false),
            ],
            blocks: &[],
        },
        ResourceType::Service => BlockSchema {
            attrs: &[("name", false), ("state", true), ("depends_on", false)],
            blocks: &[],
        },
        ResourceType::Exec => BlockSchema {
            attrs: &[
                ("command", true),
                ("creates", false),
                ("unless", false),
                ("timeout", false),
                ("depends_on", false),
            ],
            blocks: &[],
        },
        ResourceType::RemoteService => BlockSchema {
            attrs: &[
                ("name", true),
                ("hosts", true),
                ("action", false),
                ("optional", false),
                ("parallelism", false),
                ("timeout", false),
                ("check", false),
                ("init", false),
                ("depends_on", false),
            ],
            blocks: &[("ssh", true)],
        },
    }
}
