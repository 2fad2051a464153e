//! What every verb of the test world is run against: a recipe with its
//! variables, a root and a bundle directory. [`super::manager::Manager`] is
//! one (the shipped plan on a golden sandbox manager); a topic with its own
//! recipe and root (remote: fixtures/remote/) is another.

use super::cli::{Imlrecover, Output};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub struct World {
    pub recipe: PathBuf,
    /// `--var K=V` / `--var-file F` arguments.
    pub vars: Vec<OsString>,
    pub root: PathBuf,
    /// Where `backup` writes; `latest` in it is the bundle the verbs read.
    pub bundles: PathBuf,
}

impl World {
    /// `latest` in the bundle directory.
    pub fn bundle(&self) -> PathBuf {
        self.bundles.join("latest")
    }

    /// `imlrecover SUB -r RECIPE --root ROOT [--bundle LATEST] VARS`
    /// (`--bundle` for every SUB but backup).
    pub fn cmd(&self, sub: &str) -> Imlrecover {
        self.cmd_on(Imlrecover::new(), sub, &self.bundle())
    }

    /// [`World::cmd`] on `c` (another binary, a seccomp filter…) with
    /// `bundle` (a pulled copy, an import…).
    pub fn cmd_on(&self, c: Imlrecover, sub: &str, bundle: &Path) -> Imlrecover {
        let c = c
            .args([sub, "-r"])
            .arg(&self.recipe)
            .arg("--root")
            .arg(&self.root);
        let c = if sub == "backup" {
            c
        } else {
            c.arg("--bundle").arg(bundle)
        };
        c.args(&self.vars)
    }

    /// `backup … --bundle-dir BUNDLES` on `c`, to be run.
    pub fn backup_on(&self, c: Imlrecover) -> Imlrecover {
        self.cmd_on(c, "backup", &self.bundle())
            .arg("--bundle-dir")
            .arg(&self.bundles)
    }

    /// `imlrecover backup`; must succeed.
    pub fn backup(&self) -> Output {
        let out = self.backup_on(Imlrecover::new()).run();
        out.code(0);
        out
    }
}
