//! Recipes: the one place where HCL is understood. `load` turns a recipe file
//! (plus `--var`/`--var-file`) into a typed, validated [`Recipe`], or into
//! diagnostics that point at the file, line and column of every problem.

mod address;
mod decode;
mod diagnostic;
mod schema;
mod vars;

pub use crate::resources::registry::Spec;
pub use address::{is_identifier, Address, AddressError, ResourceType};
pub use decode::BlockValues;
pub use diagnostic::{line_col, suggest, ErrorKind, RecipeError, RecipeErrors, Source};
pub use schema::BlockSchema;
pub use vars::VarInput;

use miette::SourceSpan;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A loaded, validated recipe.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub path: PathBuf,
    pub source: Source,
    /// blake3 of the recipe's bytes; recorded in bundles and plans.
    pub hash: String,
    pub settings: Settings,
    pub variables: Vec<Variable>,
    /// In declaration order.
    pub resources: Vec<Resource>,
}

impl Recipe {
    pub fn resource(&self, address: &Address) -> Option<&Resource> {
        self.resources.iter().find(|r| &r.address == address)
    }

    /// The recipe's line:column for a span, for messages outside miette.
    pub fn location(&self, span: SourceSpan) -> String {
        let (line, col) = self.source.line_col(span.offset());
        format!("{}:{}:{}", self.source.name(), line, col)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceBackend {
    Sysv,
    Systemd,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub services: ServiceBackend,
    /// age recipients (`age1…`) that `backup` encrypts sensitive entries to.
    pub recipients: Vec<String>,
    /// ed25519 private key `backup` signs the manifest with (a path under `--root`).
    pub sign_key: Option<String>,
    /// ed25519 public keys (`ssh-ed25519 …` or PEM) a bundle must be signed by.
    pub trust: Vec<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            services: ServiceBackend::Sysv,
            recipients: Vec::new(),
            sign_key: None,
            trust: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Variable {
    pub name: String,
    /// `sensitive = true`: its value is redacted everywhere (see [`crate::redact`]).
    pub sensitive: bool,
    pub description: Option<String>,
    pub value: hcl::Value,
    pub span: SourceSpan,
}

/// Why one resource must come after another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    DependsOn,
    Notify,
    Quiesce,
    Reference,
}

impl EdgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeKind::DependsOn => "depends_on",
            EdgeKind::Notify => "notify",
            EdgeKind::Quiesce => "quiesce",
            EdgeKind::Reference => "reference",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefTarget {
    Resource(Address),
    Variable(String),
}

/// A reference written in the recipe, with where it was written.
#[derive(Debug, Clone)]
pub struct Reference {
    pub target: RefTarget,
    pub kind: EdgeKind,
    pub span: SourceSpan,
}

#[derive(Debug, Clone)]
pub struct Resource {
    pub address: Address,
    /// The block header (`file "ntp_conf"`), where diagnostics point.
    pub span: SourceSpan,
    /// Every edge this resource declares or implies; targets come first.
    pub references: Vec<Reference>,
    pub spec: Spec,
}

impl Resource {
    pub fn depends_on(&self) -> impl Iterator<Item = &Address> {
        self.resource_refs(EdgeKind::DependsOn)
    }

    pub fn notify(&self) -> impl Iterator<Item = &Address> {
        self.resource_refs(EdgeKind::Notify)
    }

    pub fn resource_refs(&self, kind: EdgeKind) -> impl Iterator<Item = &Address> {
        self.references
            .iter()
            .filter(move |r| r.kind == kind)
            .filter_map(|r| match &r.target {
                RefTarget::Resource(a) => Some(a),
                RefTarget::Variable(_) => None,
            })
    }
}

/// The state a service resource wants (see the step phases in `plan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    Running,
    Stopped,
}

/// Reads, parses and validates a recipe. Every problem found is returned.
pub fn load(path: &Path, vars: &VarInput) -> Result<Recipe, RecipeErrors> {
    let display = path.display().to_string();
    let text = read_text(path).map_err(|e| RecipeErrors {
        path: display.clone(),
        errors: vec![
            RecipeError::new(ErrorKind::Io, format!("cannot read recipe {display}: {e}"))
                .help("pass the recipe with -r FILE; the shipped ones are in plans/"),
        ],
    })?;
    load_str(&display, text, vars)
}

/// Largest recipe or var file read: far beyond any real recipe (100,000
/// resources is ~10 MiB), small enough that `-r /dev/zero`-like mistakes
/// cannot eat the memory.
pub const MAX_INPUT: u64 = 16 << 20;

/// A recipe or var file: a regular file (a FIFO or device is refused, never
/// waited on) of at most [`MAX_INPUT`] bytes of UTF-8; a byte-order mark is
/// dropped.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, device or directory); pass a file",
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_INPUT + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_INPUT {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {} MiB", MAX_INPUT >> 20),
        ));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        )
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// As [`load`], for text already in memory; `name` is used in diagnostics.
pub fn load_str(name: &str, text: String, vars: &VarInput) -> Result<Recipe, RecipeErrors> {
    let hash = blake3::hash(text.as_bytes()).to_hex().to_string();
    decode::decode(name, text, vars, hash)
}
