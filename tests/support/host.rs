//! A fake EL6 manager host (fixtures/host-el6) copied to a temporary
//! `--root`, a bundle directory beside it, and the backup test recipe.

use std::path::{Path, PathBuf};

pub struct Host {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub bundles: PathBuf,
}

impl Host {
    pub fn new() -> Host {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        copy_tree(&super::cli::fixtures().join("host-el6"), &root);
        let bundles = tmp.path().join("bundles");
        Host { tmp, root, bundles }
    }

    /// `imlrecover backup -r RECIPE` of this host into its bundle dir; must succeed.
    pub fn backup(&self, recipe: &Path) {
        self.backup_with(recipe, &[] as &[&str]);
    }

    /// [`Host::backup`] with more arguments (`--var …`); must succeed.
    pub fn backup_with<S: AsRef<std::ffi::OsStr>>(&self, recipe: &Path, extra: &[S]) {
        super::cli::Imlrecover::new()
            .args(["backup", "-r"])
            .arg(recipe)
            .arg("--root")
            .arg(&self.root)
            .arg("--bundle-dir")
            .arg(&self.bundles)
            .args(extra)
            .run()
            .code(0);
    }

    /// fixtures/backup/el6.hcl without its `database` block, for tests that
    /// need no PostgreSQL.
    pub fn files_recipe(&self) -> PathBuf {
        let text = std::fs::read_to_string(recipe()).expect("read el6.hcl");
        let cut = text.find("database \"chroma\"").expect("database block");
        let path = self.tmp.path().join("files.hcl");
        std::fs::write(&path, &text[..cut]).expect("write recipe");
        path
    }

    pub fn file(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// The bundle `latest` points at, resolved.
    pub fn latest(&self) -> PathBuf {
        std::fs::canonicalize(self.bundles.join("latest")).expect("latest")
    }

    /// Complete bundles (timestamp-named directories), sorted.
    pub fn bundle_names(&self) -> Vec<String> {
        let mut names: Vec<String> = match std::fs::read_dir(&self.bundles) {
            Ok(rd) => rd
                .flatten()
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }
}

pub fn recipe() -> PathBuf {
    super::cli::fixtures().join("backup/el6.hcl")
}

pub fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for entry in std::fs::read_dir(src).expect("read fixture dir") {
        let entry = entry.expect("dir entry");
        let to = dst.join(entry.file_name());
        let ft = entry.file_type().expect("file type");
        if ft.is_dir() {
            copy_tree(&entry.path(), &to);
        } else if ft.is_symlink() {
            let target = std::fs::read_link(entry.path()).expect("readlink");
            std::os::unix::fs::symlink(target, &to).expect("symlink");
        } else {
            std::fs::copy(entry.path(), &to).expect("copy");
        }
    }
}

pub fn manifest(bundle: &Path) -> imlrecover::bundle::Manifest {
    let bytes = std::fs::read(bundle.join("manifest.json")).expect("manifest");
    serde_json::from_slice(&bytes).expect("manifest parses")
}

pub fn write_manifest(bundle: &Path, m: &imlrecover::bundle::Manifest) {
    let json = serde_json::to_vec_pretty(m).expect("serialize");
    std::fs::write(bundle.join("manifest.json"), json).expect("write manifest");
}

pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

pub fn blake3_of(path: &Path) -> String {
    blake3::hash(&std::fs::read(path).expect("read"))
        .to_hex()
        .to_string()
}
