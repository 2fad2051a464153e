//! `imlrecover init`: which IML release runs under a root, and a ready
//! recipe for it. `detect` reads the host (read-only); `render` fills the
//! shipped recipe of that release family with what was found.
//!
//! The families are the shipped recipes; a recipe's family is told by its
//! services ([`Family::of_recipe`]), so a hand-written recipe is judged the
//! same way as a shipped one and the recipe language needs no new setting.

pub mod detect;
pub mod render;

pub use detect::{detect, Detection, NotIml};
pub use render::{render, InitError};

use crate::recipe::Recipe;

/// The releases a recipe serves, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// EL6, SysV: IML 3.x and 4.0.0–4.0.8 (`chroma-supervisor`, httpd).
    El6,
    /// EL7: IML 4.0.9–5.0 (`iml-manager.target`, PostgreSQL 9.2).
    El7_409,
    /// EL7: IML 5.1–6.0 (adds InfluxDB and Grafana).
    El7_51,
    /// EL7: IML 6.1–6.3 (PostgreSQL 9.6 as `postgresql-9.6`).
    El7_61,
}

impl Family {
    pub const ALL: [Family; 4] = [Family::El6, Family::El7_409, Family::El7_51, Family::El7_61];

    /// Stable identifier: `el6`, `el7-4.0.9`, `el7-5.1`, `el7-6.1`.
    pub fn id(self) -> &'static str {
        match self {
            Family::El6 => "el6",
            Family::El7_409 => "el7-4.0.9",
            Family::El7_51 => "el7-5.1",
            Family::El7_61 => "el7-6.1",
        }
    }

    pub fn releases(self) -> &'static str {
        match self {
            Family::El6 => "IML 3.x–4.0.8 on EL6 (SysV)",
            Family::El7_409 => "IML 4.0.9–5.0 on EL7",
            Family::El7_51 => "IML 5.1–6.0 on EL7 (InfluxDB, Grafana)",
            Family::El7_61 => "IML 6.1–6.3 on EL7 (PostgreSQL 9.6)",
        }
    }

    /// The shipped recipe's path in the source tree.
    pub fn plan(self) -> &'static str {
        match self {
            Family::El6 => "plans/iml-manager.hcl",
            Family::El7_409 => "plans/iml-manager-el7.hcl",
            Family::El7_51 => "plans/iml-manager-el7-5.1.hcl",
            Family::El7_61 => "plans/iml-manager-el7-6.1.hcl",
        }
    }

    /// The shipped recipe, embedded so that an installed binary has it.
    pub fn text(self) -> &'static str {
        match self {
            Family::El6 => include_str!("../../plans/iml-manager.hcl"),
            Family::El7_409 => include_str!("../../plans/iml-manager-el7.hcl"),
            Family::El7_51 => include_str!("../../plans/iml-manager-el7-5.1.hcl"),
            Family::El7_61 => include_str!("../../plans/iml-manager-el7-6.1.hcl"),
        }
    }

    /// The family of a release version ("4.0.10.1", "6.2.0").
    pub fn of_version(version: &str) -> Option<Family> {
        let v = version_key(version)?;
        Some(if v < [4, 0, 9] {
            Family::El6
        } else if v < [5, 1, 0] {
            Family::El7_409
        } else if v < [6, 1, 0] {
            Family::El7_51
        } else {
            Family::El7_61
        })
    }

    /// The family a recipe is written for, told by the services it
    /// manages: `chroma-supervisor` is EL6; `iml-manager.target` is EL7,
    /// 6.1+ with `postgresql-9.6`, 5.1+ with `influxdb` or
    /// `grafana-server`. `None`: not an IML manager recipe we can tell.
    pub fn of_recipe(recipe: &Recipe) -> Option<Family> {
        let names = service_names(recipe);
        let has = |n: &str| names.iter().any(|s| s == n);
        if has("chroma-supervisor") {
            Some(Family::El6)
        } else if has("iml-manager.target") {
            Some(if has("postgresql-9.6") {
                Family::El7_61
            } else if has("influxdb") || has("grafana-server") {
                Family::El7_51
            } else {
                Family::El7_409
            })
        } else {
            None
        }
    }
}

/// `-o FILE`: written whole or not at all; an existing file is kept unless
/// `force` (then replaced by a rename, never truncated in place).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum WriteError {
    #[error("{} exists; nothing was written", .0.display())]
    #[diagnostic(
        code(imlrecover::init_exists),
        help("choose another -o FILE, or pass --force to replace it")
    )]
    Exists(std::path::PathBuf),
    #[error("cannot write {}: {}", .0.display(), .1)]
    #[diagnostic(code(imlrecover::init_write))]
    Io(std::path::PathBuf, std::io::Error),
}

pub fn write(path: &std::path::Path, text: &str, force: bool) -> Result<(), WriteError> {
    use std::io::Write;
    let io = |e| WriteError::Io(path.to_path_buf(), e);
    if !force && path.symlink_metadata().is_ok() {
        return Err(WriteError::Exists(path.to_path_buf()));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    tmp.write_all(text.as_bytes()).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    if force {
        tmp.persist(path).map_err(|e| io(e.error))?;
    } else {
        // Refuses a file that appeared meanwhile, as the check above does.
        tmp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                WriteError::Exists(path.to_path_buf())
            } else {
                io(e.error)
            }
        })?;
    }
    Ok(())
}

/// The names of the local services a recipe manages.
pub fn service_names(recipe: &Recipe) -> Vec<String> {
    recipe
        .resources
        .iter()
        .filter_map(|r| crate::resources::registry::service_name(r).map(str::to_string))
        .collect()
}

/// The first three numbers of a version, for ordering ("4.0.9.1-1.el7" →
/// [4, 0, 9]).
pub fn version_key(version: &str) -> Option<[u32; 3]> {
    let mut parts = version
        .split(['.', '-', '_'])
        .map(|p| p.parse::<u32>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some([major, minor, patch])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_fall_into_their_family() {
        for (v, f) in [
            ("3.1.1.0", Family::El6),
            ("4.0.8.0", Family::El6),
            ("4.0.9.0", Family::El7_409),
            ("4.0.10.2-1.el7", Family::El7_409),
            ("5.0.0", Family::El7_409),
            ("5.1.0", Family::El7_51),
            ("6.0.0", Family::El7_51),
            ("6.1.0", Family::El7_61),
            ("6.3.0-1.el7", Family::El7_61),
        ] {
            assert_eq!(Family::of_version(v), Some(f), "{v}");
        }
        assert_eq!(Family::of_version("x"), None);
    }

    #[test]
    fn each_shipped_recipe_is_of_its_own_family() {
        for f in Family::ALL {
            let recipe = crate::recipe::load_str(
                f.plan(),
                f.text().to_string(),
                &crate::recipe::VarInput::default(),
            )
            .unwrap();
            assert_eq!(Family::of_recipe(&recipe), Some(f), "{}", f.plan());
        }
    }
}
